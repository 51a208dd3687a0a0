"""The web page: ``GET /`` and its static files, from ``web/`` (no external asset).

The page holds no data: it asks the API for it. Only the files named in
:data:`WEB_FILES` are served, whatever the path asks for.
"""

from __future__ import annotations

from importlib import resources

from fastapi import APIRouter
from fastapi.responses import Response

from huisclos.pipeline.server.core import ApiError

__all__ = ["WEB_FILES", "router"]

WEB_FILES = {
    "app.js": "text/javascript; charset=utf-8",
    "style.css": "text/css; charset=utf-8",
    "favicon.svg": "image/svg+xml",
}
"""The static files beside ``index.html``, with their media types."""

router = APIRouter(include_in_schema=False)


def _web_file(name: str) -> bytes:
    return resources.files("huisclos.pipeline.server").joinpath("web", name).read_bytes()


@router.get("/")
def page() -> Response:
    return Response(_web_file("index.html"), media_type="text/html; charset=utf-8")


@router.get("/static/{name}")
def static(name: str) -> Response:
    if name not in WEB_FILES:
        raise ApiError(404, "not_found", "no such file")
    return Response(
        _web_file(name), media_type=WEB_FILES[name], headers={"cache-control": "no-cache"}
    )
