"""A viewer front for the viewer benchmark: the OHIF build openjip serves, with openjip's own
``app-config.js``, on a loopback origin of its own, and ``/dicom-web/`` reverse-proxied to a
DICOMweb server (Orthanc's plugin, or openjip for a like-for-like check). OHIF can then be timed
over Orthanc with nothing else different from the same build over openjip: Orthanc's
ServeFolders cannot serve OHIF's client-side routes, and the bundled viewer needs no CORS.

The proxy passes the Host header on, so the URLs Orthanc writes into its answers
(RetrieveURL, BulkDataURI) point back at this front. Answers stream through unbuffered.

Usage: ``python bench/viewer_front.py --port 8044 --backend http://127.0.0.1:8043/dicom-web``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import httpx
import uvicorn
from starlette.applications import Starlette
from starlette.background import BackgroundTask
from starlette.requests import Request
from starlette.responses import FileResponse, Response, StreamingResponse
from starlette.routing import Route

from openjip.web.viewer import app_config

HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "te", "upgrade", "content-length"}


def front(viewer: Path, backend: str) -> Starlette:
    client = httpx.AsyncClient(base_url=backend, timeout=300)

    async def config(_: Request) -> Response:
        body = f"window.config = {json.dumps(app_config())};\n"
        return Response(body, media_type="text/javascript")

    async def viewer_file(request: Request) -> Response:
        candidate = (viewer / request.path_params["path"]).resolve()
        if candidate.is_file() and candidate.is_relative_to(viewer.resolve()):
            return FileResponse(candidate)
        return FileResponse(viewer / "index.html")  # OHIF's client-side routes

    async def proxy(request: Request) -> Response:
        headers = {k: v for k, v in request.headers.items() if k.lower() not in HOP_BY_HOP}
        upstream = await client.send(
            client.build_request(
                request.method,
                "/" + request.path_params["path"],
                params=request.query_params.multi_items(),
                headers=headers,
                content=await request.body(),
            ),
            stream=True,
        )
        answer = {k: v for k, v in upstream.headers.items() if k.lower() not in HOP_BY_HOP}
        return StreamingResponse(
            upstream.aiter_raw(),
            status_code=upstream.status_code,
            headers=answer,
            background=BackgroundTask(upstream.aclose),
        )

    return Starlette(
        routes=[
            Route("/viewer/app-config.js", config),
            Route("/viewer/{path:path}", viewer_file),
            Route("/dicom-web/{path:path}", proxy, methods=["GET", "POST"]),
            Route("/healthz", lambda _: Response("ok")),
        ]
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--backend", required=True, help="DICOMweb root URL to proxy to")
    parser.add_argument("--viewer", type=Path, required=True, help="OHIF folder (make viewer)")
    args = parser.parse_args()
    app = front(args.viewer, args.backend)
    uvicorn.run(app, host="127.0.0.1", port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
