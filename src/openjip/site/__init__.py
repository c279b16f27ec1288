"""A local site in one process: the :class:`SiteComponent` protocol and :func:`run_site`,
which starts components, says where each listens, and stops them all on Ctrl-C or SIGTERM.
"""

from openjip.site.components import ReceiverComponent, local_components
from openjip.site.runner import SiteComponent, run_site

__all__ = ["ReceiverComponent", "SiteComponent", "local_components", "run_site"]
