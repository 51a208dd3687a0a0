"""The local web page and the HTTP API, over :class:`huisclos.pipeline.Huisclos`.

:func:`create_app` builds the FastAPI application; :func:`serve` runs it with
uvicorn beside the folder watcher (``huisclos serve``). The routes live on
routers by area; :mod:`.schemas` holds the request and response bodies, and
``web/`` the page's static files.
"""

from huisclos.pipeline.server.app import (
    DEFAULT_PORT,
    TOKEN_FILE,
    create_app,
    is_loopback,
    new_token,
    openapi_document,
    read_token,
    serve,
)

__all__ = [
    "DEFAULT_PORT",
    "TOKEN_FILE",
    "create_app",
    "is_loopback",
    "new_token",
    "openapi_document",
    "read_token",
    "serve",
]
