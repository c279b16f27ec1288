"""The OHIF viewer at ``/viewer/``: its built files, an ``app-config.js`` generated from the
settings, and ``index.html`` for every client-side route (``/viewer/viewer?StudyInstanceUIDs=``),
all behind the site's login (a browser without a session is sent to ``/login``).

OHIF's npm package (``@ohif/app``) ships ``dist/`` built for the root path. :func:`install`
(``python -m openjip.web.viewer TARBALL FOLDER``, what ``make viewer`` runs) unpacks it into
the folder the web service serves (``settings.viewer_path``) rebased under ``/viewer/``:
absolute URLs of index.html, manifest.json and the stylesheets, ``window.PUBLIC_URL`` and
webpack's public path in the bundles. The viewer talks to the site's own DICOMweb, same origin.
"""

from __future__ import annotations

import json
import mimetypes
import re
import shutil
import sys
import tarfile
import tempfile
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import FileResponse, JSONResponse, RedirectResponse, Response

from openjip.access import Principal
from openjip.web.access import current_principal
from openjip.web.dicomweb.urls import PREFIX as DICOMWEB_PREFIX

LoggedIn = Annotated[Principal, Depends(current_principal)]
"""Anyone logged in may load the viewer; what it shows is what DICOMweb lets them retrieve."""

BASE = "/viewer/"
"""Where the viewer is served; OHIF's router basename is this without the trailing slash."""
DIST = "package/dist/"
OHIF_VERSION = "3.13.2"
"""The ``@ohif/app`` release ``make viewer`` installs (with its integrity pinned there)."""
MARKER = ".openjip-viewer"
"""File :func:`install` writes last, naming the release: a folder without it is not ready."""
HASHED_NAME = re.compile(r"\.[0-9a-f]{16}\.(js|wasm|woff2)$|^[0-9a-f]{16}\.(wasm|woff2)$")
_WEBPACK_PUBLIC_PATH = re.compile(rb'(__webpack_require__\.p = )"/"')
_HTML_ROOT_URL = re.compile(rb'(=)"/(?!/)')
_JSON_ROOT_URL = re.compile(rb'"/(?!/)')
_CSS_ROOT_URL = re.compile(rb"url\(/(?!/)")
mimetypes.add_type("application/wasm", ".wasm")
mimetypes.add_type("text/javascript", ".js")

router = APIRouter(tags=["viewer"])


def _rebase(name: str, data: bytes) -> bytes:
    """``data`` of the dist file ``name`` with its root-relative URLs moved under :data:`BASE`."""
    base = BASE.encode()
    if name == "index.html":
        data = _HTML_ROOT_URL.sub(rb'\1"' + base, data)
        return data.replace(b'window.PUBLIC_URL="/"', b'window.PUBLIC_URL="' + base + b'"')
    if name == "manifest.json":
        return _JSON_ROOT_URL.sub(b'"' + base, data)
    if name.endswith(".js"):
        return _WEBPACK_PUBLIC_PATH.sub(rb'\1"' + base + b'"', data)
    if name.endswith(".css"):
        return _CSS_ROOT_URL.sub(b"url(" + base, data)
    return data


def install(tarball: Path, target: Path) -> int:
    """Unpack OHIF's ``dist/`` from the npm ``tarball`` into ``target``, rebased; the old
    ``target`` is replaced only once the new one is complete. Returns the number of files."""
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".viewer-", dir=target.parent))
    count = 0
    with tarfile.open(tarball, "r:gz") as archive:
        for member in archive:
            if not member.isfile() or not member.name.startswith(DIST):
                continue
            relative = Path(member.name[len(DIST) :])
            if relative.is_absolute() or ".." in relative.parts:
                raise ValueError(f"{tarball} holds a path outside dist/: {member.name}")
            source = archive.extractfile(member)
            if source is None:
                continue
            destination = staging / relative
            destination.parent.mkdir(parents=True, exist_ok=True)
            destination.write_bytes(_rebase(relative.as_posix(), source.read()))
            count += 1
    if not (staging / "index.html").is_file():
        shutil.rmtree(staging)
        raise ValueError(f"{tarball} is not an @ohif/app package: no {DIST}index.html")
    (staging / MARKER).write_text(f"@ohif/app from {tarball.name}\n")
    if target.exists():
        shutil.rmtree(target)
    staging.rename(target)
    return count


def app_config(dicomweb_root: str = DICOMWEB_PREFIX) -> dict[str, Any]:
    """OHIF's ``window.config``: one DICOMweb data source, the site's own, on the same origin."""
    return {
        "routerBasename": BASE.rstrip("/"),
        "extensions": [],
        "modes": [],
        "customizationService": {},
        "showStudyList": True,
        "maxNumberOfWebWorkers": 3,
        "showLoadingIndicator": True,
        "showWarningMessageForCrossOrigin": False,
        "showCPUFallbackMessage": True,
        "strictZSpacingForVolumeViewport": True,
        "investigationalUseDialog": {"option": "never"},
        # A result opened from a run should show at once, not ask "open this segmentation?".
        "disableConfirmationPrompts": True,
        "maxNumRequests": {"interaction": 100, "thumbnail": 5, "prefetch": 25},
        "defaultDataSourceName": "openjip",
        "dataSources": [
            {
                "namespace": "@ohif/extension-default.dataSourcesModule.dicomweb",
                "sourceName": "openjip",
                "configuration": {
                    "friendlyName": "openjip",
                    "name": "openjip",
                    "qidoRoot": dicomweb_root,
                    "wadoRoot": dicomweb_root,
                    "wadoUriRoot": dicomweb_root,
                    "qidoSupportsIncludeField": True,
                    "supportsFuzzyMatching": True,
                    "supportsWildcard": True,
                    "imageRendering": "wadors",
                    "thumbnailRendering": "wadors",
                    "enableStudyLazyLoad": True,
                    "staticWado": False,
                    "singlepart": "video",
                    "bulkDataURI": {"enabled": True, "relativeResolution": "studies"},
                    "omitQuotationForMultipartRequest": True,
                },
            }
        ],
    }


def _folder(request: Request) -> Path:
    return Path(request.app.state.settings.viewer_path)


@router.get("/viewer", include_in_schema=False)
def viewer_root(_: LoggedIn) -> RedirectResponse:
    """The viewer lives under ``/viewer/``."""
    return RedirectResponse(BASE)


@router.get(BASE + "app-config.js", summary="OHIF's configuration for this site")
def viewer_config(_: LoggedIn) -> Response:
    """``window.config`` generated from the settings (never the file OHIF ships)."""
    body = f"window.config = {json.dumps(app_config(), indent=2)};\n"
    return Response(body, media_type="text/javascript", headers={"Cache-Control": "no-cache"})


@router.get(BASE + "{path:path}", summary="The OHIF viewer")
def viewer_file(path: str, request: Request, _: LoggedIn) -> Response:
    """A file of the viewer, or index.html for a client-side route; 503 when not installed."""
    folder = _folder(request)
    if not (folder / MARKER).is_file():
        return JSONResponse(
            {"detail": f"the viewer is not installed in {folder}; run `make viewer`"},
            status_code=503,
        )
    candidate = (folder / path).resolve()
    if path and candidate.is_file() and candidate.is_relative_to(folder.resolve()):
        immutable = HASHED_NAME.search(candidate.name) is not None
        cache = "public, max-age=31536000, immutable" if immutable else "no-cache"
        return FileResponse(candidate, headers={"Cache-Control": cache})
    return FileResponse(folder / "index.html", headers={"Cache-Control": "no-cache"})


def main(argv: list[str]) -> int:
    """``python -m openjip.web.viewer TARBALL FOLDER``: install OHIF for the web service."""
    if len(argv) != 2:
        print("usage: python -m openjip.web.viewer OHIF_APP_TARBALL FOLDER", file=sys.stderr)
        return 2
    try:
        count = install(Path(argv[0]), Path(argv[1]))
    except (OSError, ValueError, tarfile.TarError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    print(f"installed {count} viewer files into {argv[1]}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
