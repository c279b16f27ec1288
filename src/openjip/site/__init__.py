"""A site's services in one process: the one assembly that builds each service from settings
(:func:`receiver_components`, :func:`web_components`, :func:`local_components`), the
:class:`SiteComponent` protocol and :func:`run_site`, which starts components, says where each
listens, and stops them all on Ctrl-C or SIGTERM.
"""

from openjip.site.components import (
    ReceiverComponent,
    local_components,
    receiver_components,
    web_components,
)
from openjip.site.runner import SiteComponent, run_site

__all__ = [
    "ReceiverComponent",
    "SiteComponent",
    "local_components",
    "receiver_components",
    "run_site",
    "web_components",
]
