"""The local web page and the HTTP API, over :class:`huisclos.pipeline.Huisclos`.

:func:`create_app` builds the FastAPI application (:mod:`.app`) from routers
by area (:mod:`.page`, :mod:`.questions`, :mod:`.vault`, :mod:`.openai_compat`)
behind the security layer (:mod:`.security`); :func:`serve` runs it with
uvicorn beside the folder watcher (``huisclos serve``, :mod:`.serving`).
:mod:`.schemas` holds the request and response bodies, ``web/`` the page's
static files.
"""

from huisclos.pipeline.server.app import create_app, openapi_document
from huisclos.pipeline.server.security import TOKEN_FILE, is_loopback, new_token, read_token
from huisclos.pipeline.server.serving import DEFAULT_PORT, serve

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
