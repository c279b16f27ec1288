"""The HTTP face of a site: ``create_app(settings)`` (health, metrics, later DICOMweb under
``/dicom-web``) and ``WebService``, which serves that app with uvicorn in a background thread.
"""

from openjip.web.app import create_app
from openjip.web.backends import Backends
from openjip.web.service import WebService

__all__ = ["Backends", "WebService", "create_app"]
