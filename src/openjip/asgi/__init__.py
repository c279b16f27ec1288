"""Serving an ASGI app (FastAPI) with uvicorn in a background thread: the web and federation
services both run this way, so ``site up`` and the tests can start and stop them in-process.
"""

from openjip.asgi.server import ServerError, ThreadedServer

__all__ = ["ServerError", "ThreadedServer"]
