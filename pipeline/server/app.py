"""The FastAPI application: the routers by area, behind the security layer.

:func:`create_app` assembles it over an opened vault:

* :mod:`.page`: the web page and its static files;
* :mod:`.questions`: asking (server-sent events) and searching;
* :mod:`.vault`: status, clients, forgetting, the audit trail, the register;
* :mod:`.openai_compat`: the OpenAI-compatible routes;
* the OpenAPI description, kept in ``docs/openapi.json`` by a test
  (``python -m huisclos.pipeline.server docs/openapi.json`` writes it).

:mod:`.security` decides who may call, before any route. Routes reach the
vault through the :data:`~.core.Vault` dependency (``app.state.huisclos``).
What the app answers is :func:`route_table` (derived from ``app.routes``:
anything that lists the routes reads it, never a copy). Errors are
``{"error": {"message", "type", "code"}}`` with the right status.

Example::

    with Huisclos() as hc:
        app = create_app(hc)            # uvicorn.run(app, host="127.0.0.1", port=8765)
        route_table(app)                # [(method, path), ...]: what it answers
"""

from __future__ import annotations

import json
import sys
import threading
from collections.abc import Sequence
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fastapi import FastAPI
from fastapi.routing import iter_route_contexts

from huisclos.pipeline.server import openai_compat, page, questions, vault
from huisclos.pipeline.server.core import EXCEPTION_HANDLERS
from huisclos.pipeline.server.security import Policy, check_binding

if TYPE_CHECKING:
    from huisclos.pipeline.api import Huisclos

__all__ = ["VERSION", "create_app", "main", "openapi_document", "route_table"]

VERSION = metadata.version("huisclos")
"""The installed huisclos's version, as the server states it (OpenAPI ``info.version``)."""
_DESCRIPTION = (
    "Private document assistant: ask questions over client files indexed in "
    "an encrypted local vault, answered by a local model with citations. Nothing leaves "
    "the machine. Bound beyond loopback, every /api and /v1 request needs "
    "'Authorization: Bearer <token>'; POST /api/* needs 'X-Huisclos: 1' (or the token)."
)


def _build(hc: Huisclos | None, *, token: str | None, host: str) -> FastAPI:
    app = FastAPI(
        title="huisclos",
        version=VERSION,
        description=_DESCRIPTION,
        docs_url=None,  # Swagger UI and ReDoc load scripts from a CDN
        redoc_url=None,
        openapi_url="/openapi.json",
        exception_handlers=EXCEPTION_HANDLERS,
    )
    app.state.huisclos = hc  # None: only the OpenAPI description is built
    app.state.search_lock = threading.Lock()
    for area in (page, questions, vault, openai_compat):
        app.include_router(area.router)
    app.add_middleware(Policy, token=token, bound=host, routes=app.routes)
    return app


def create_app(hc: Huisclos, *, token: str | None = None, host: str = "127.0.0.1") -> FastAPI:
    """The web page and HTTP API over an opened vault.

    Args:
        hc: the opened :class:`Huisclos` (the app calls its methods; it does not close it).
        token: if given, every ``/api`` and ``/v1`` request must carry
            ``Authorization: Bearer <token>`` (compared in constant time).
        host: the address the server is bound to. Beyond loopback a token is required.

    Raises:
        ConfigError: ``host`` is not loopback and no token is given, or the token is too short.
    """
    check_binding(host, token)
    return _build(hc, token=token, host=host)


def route_table(app: FastAPI) -> list[tuple[str, str]]:
    """Every (method, path template) ``app`` answers, sorted; ``HEAD`` aside."""
    return sorted(
        (method, route.path)
        for route in iter_route_contexts(app.routes)
        if route.path is not None
        for method in route.methods or ()
        if method != "HEAD"
    )


def openapi_document() -> dict[str, Any]:
    """The OpenAPI description the server publishes at ``/openapi.json``."""
    document: dict[str, Any] = _build(None, token=None, host="127.0.0.1").openapi()
    return document


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m huisclos.pipeline.server FILE``: write the OpenAPI description to FILE."""
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) != 1:
        print("usage: python -m huisclos.pipeline.server docs/openapi.json", file=sys.stderr)
        return 2
    text = json.dumps(openapi_document(), ensure_ascii=False, indent=2, sort_keys=True) + "\n"
    Path(args[0]).write_text(text, encoding="utf-8")
    return 0
