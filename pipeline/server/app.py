"""The local web page and the HTTP API, over :class:`huisclos.pipeline.Huisclos`.

``huisclos serve`` runs this app with uvicorn, beside the folder watcher, in
one process. Routes (JSON unless said; errors are ``{"error": {"message",
"type", "code"}}`` with the right status)::

    GET  /                      the web page (static files in ``web/``, no external asset)
    POST /api/ask               server-sent events: ``token`` pieces, then ``answer`` (or ``error``)
    POST /api/search            passages, best first
    GET  /api/status            documents, last update, failed files and why, the watcher
    GET  /api/clients           clients with their counts
    POST /api/forget            erase a client (its key destroyed) or a path
    GET  /api/audit             the audit trail (read only, the last ``limit`` records)
    GET  /api/register          the processing register (JSON, or Markdown with ``format=md``)
    GET  /v1/models, POST /v1/chat/completions   OpenAI-compatible (see ``server_openai``)
    GET  /openapi.json          this description (kept in ``docs/openapi.json``)

Who may call it (:class:`_Policy`, before any route):

* Bound to loopback (the default), a token is optional. The ``Host`` header
  must name a loopback address (a DNS-rebinding page cannot reach the API),
  a browser request from another site is refused (``Origin``,
  ``Sec-Fetch-Site``), and ``POST /api/*`` needs the header ``X-Huisclos: 1``
  or the token, which a cross-site form cannot send.
* Bound beyond loopback, a token is required (:func:`create_app` refuses to
  build the app without one) and every ``/api`` and ``/v1`` request without
  ``Authorization: Bearer <token>`` is refused with 401.

Every response carries a strict Content-Security-Policy (``default-src
'self'``). Logs hold the method, the route, the status and the time: never a
question, a query string, document text or the token.

Example::

    with Huisclos() as hc:
        app = create_app(hc)            # uvicorn.run(app, host="127.0.0.1", port=8765)
"""

from __future__ import annotations

import hmac
import ipaddress
import json
import logging
import os
import secrets
import socket
import sys
import threading
import time
from collections.abc import AsyncIterator, Callable, MutableMapping, Sequence
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import anyio
from fastapi import FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse, Response, StreamingResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from huisclos.config import ConfigError, HuisclosError, VaultBusyError
from huisclos.pipeline.server import openai_compat as server_openai
from huisclos.pipeline.server.core import (
    ApiError,
    answer_out,
    api_error,
    check_client,
    location,
    printable,
    stream_answer,
)
from huisclos.pipeline.server.schemas import (
    AnswerOut,
    AskRequest,
    AuditOut,
    ClientOut,
    ClientsOut,
    ErrorOut,
    ForgetOut,
    ForgetRequest,
    HitOut,
    SearchOut,
    SearchRequest,
    StatusOut,
)

if TYPE_CHECKING:
    from huisclos.pipeline.api import Huisclos

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

log = logging.getLogger(__name__)

DEFAULT_PORT = 8765
TOKEN_FILE = "server.token"
"""Where ``huisclos serve --new-token`` writes the access token, in the vault (0600)."""
_VERSION = "0.1.0"
_WEB_FILES = {
    "app.js": "text/javascript; charset=utf-8",
    "style.css": "text/css; charset=utf-8",
    "favicon.svg": "image/svg+xml",
}
_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; "
    "connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'none'; "
    "form-action 'self'; frame-ancestors 'none'"
)
_SECURITY_HEADERS = [
    (b"content-security-policy", _CSP.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-frame-options", b"DENY"),
    (b"cross-origin-resource-policy", b"same-origin"),
]
_ROUTES = frozenset(
    {
        "/",
        "/openapi.json",
        "/api/ask",
        "/api/search",
        "/api/status",
        "/api/clients",
        "/api/forget",
        "/api/audit",
        "/api/register",
        "/v1/models",
        "/v1/chat/completions",
    }
    | {f"/static/{name}" for name in _WEB_FILES}
)
_LOOPBACK_NAMES = frozenset({"localhost", "localhost.", "ip6-localhost"})
_AUDIT_MAX = 1000


def is_loopback(host: str) -> bool:
    """Whether binding to ``host`` keeps the server reachable from this machine only."""
    host = host.strip().strip("[]").lower()
    if host in _LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _hostname(host_header: str) -> str:
    """``example:8765`` → ``example``; ``[::1]:8765`` → ``::1``."""
    host = host_header.strip().lower()
    if host.startswith("["):
        return host[1:].split("]", 1)[0]
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


class _Policy:
    """ASGI middleware: who may call (Host, token, cross-site), security headers, access log."""

    def __init__(self, app: Any, *, token: str | None, bound: str) -> None:
        self.app = app
        self.token = token
        self.loopback = is_loopback(bound)
        self.bound = bound.strip().strip("[]").lower()

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        method: str = scope["method"]
        path: str = scope["path"]
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        api = path.startswith(("/api/", "/v1/"))
        status = [0]

        async def send_with_headers(message: MutableMapping[str, Any]) -> None:
            if message["type"] == "http.response.start":
                status[0] = message["status"]
                extra = _SECURITY_HEADERS + ([(b"cache-control", b"no-store")] if api else [])
                message = {**message, "headers": [*message.get("headers", []), *extra]}
            await send(message)

        refusal = self._refusal(method, path, headers, api)
        if refusal is not None:
            auth = {"WWW-Authenticate": "Bearer"} if refusal.status == 401 else None
            await refusal.response(auth)(scope, receive, send_with_headers)
        else:
            await self.app(scope, receive, send_with_headers)
        log.info(
            "%s %s %d %.0f ms",
            method,
            path if path in _ROUTES else "-",
            status[0],
            (time.perf_counter() - started) * 1000,
        )

    def _refusal(
        self, method: str, path: str, headers: dict[str, str], api: bool
    ) -> ApiError | None:
        host = _hostname(headers.get("host", ""))
        known = host in _LOOPBACK_NAMES or host == self.bound or is_loopback(host)
        if self.loopback and not known:
            return ApiError(
                421, "host_not_allowed", "this server answers to localhost only", "forbidden"
            )
        if not api:
            return None
        authorized = False
        if self.token is not None:
            given = headers.get("authorization", "")
            scheme, _, credential = given.partition(" ")
            authorized = scheme.lower() == "bearer" and hmac.compare_digest(
                credential.strip().encode(), self.token.encode()
            )
            if not authorized:
                return ApiError(
                    401,
                    "invalid_token",
                    "an access token is required: send 'Authorization: Bearer <token>'",
                    "authentication_error",
                )
        site = headers.get("sec-fetch-site", "")
        origin = headers.get("origin")
        if site in {"cross-site", "same-site"} or (
            origin is not None and origin.split("://", 1)[-1].lower() != headers.get("host", "")
        ):
            return ApiError(
                403, "cross_origin", "requests from other sites are refused", "forbidden"
            )
        if method in {"POST", "PUT", "PATCH", "DELETE"}:
            media = headers.get("content-type", "").split(";", 1)[0].strip().lower()
            if media != "application/json":
                return ApiError(415, "unsupported_media_type", "send a JSON body")
            if path.startswith("/api/") and not authorized and headers.get("x-huisclos") != "1":
                return ApiError(
                    403, "missing_header", "send the header 'X-Huisclos: 1' with POST requests"
                )
        return None


def _web_file(name: str) -> bytes:
    return resources.files("huisclos.pipeline.server").joinpath("web", name).read_bytes()


def _sse(event: str, data: Any) -> str:
    return f"event: {event}\ndata: {json.dumps(data, ensure_ascii=False)}\n\n"


def _error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    return {status: {"model": ErrorOut} for status in statuses}


def _build(hc: Huisclos | None, *, token: str | None, host: str) -> FastAPI:
    app = FastAPI(
        title="huisclos",
        version=_VERSION,
        description="Private document assistant: ask questions over client files indexed in "
        "an encrypted local vault, answered by a local model with citations. Nothing leaves "
        "the machine. Bound beyond loopback, every /api and /v1 request needs "
        "'Authorization: Bearer <token>'; POST /api/* needs 'X-Huisclos: 1' (or the token).",
        docs_url=None,  # Swagger UI and ReDoc load scripts from a CDN
        redoc_url=None,
        openapi_url="/openapi.json",
    )
    search_lock = threading.Lock()

    def vault() -> Huisclos:
        if hc is None:  # only the OpenAPI document is built without a vault
            raise ApiError(503, "no_vault", "no vault is open", "server_error")
        return hc

    @app.exception_handler(ApiError)
    async def _api_error(request: Request, exc: ApiError) -> Response:
        return exc.response()

    @app.exception_handler(HuisclosError)
    async def _huisclos_error(request: Request, exc: HuisclosError) -> Response:
        log.warning("request failed: %s", type(exc).__name__)
        return api_error(exc).response()

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> Response:
        problems = "; ".join(
            ".".join(str(part) for part in error.get("loc", ()) if part != "body")
            + f": {error.get('msg', 'invalid')}"
            for error in exc.errors()
        )
        return ApiError(422, "invalid_request", problems or "invalid request").response()

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> Response:
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        return ApiError(exc.status_code, code, str(exc.detail)).response()

    @app.get("/", include_in_schema=False)
    def page() -> Response:
        return Response(_web_file("index.html"), media_type="text/html; charset=utf-8")

    @app.get("/static/{name}", include_in_schema=False)
    def static(name: str) -> Response:
        if name not in _WEB_FILES:
            raise ApiError(404, "not_found", "no such file")
        return Response(
            _web_file(name), media_type=_WEB_FILES[name], headers={"cache-control": "no-cache"}
        )

    @app.post(
        "/api/ask",
        response_class=StreamingResponse,
        responses={
            200: {
                "description": 'Server-sent events: `event: token` with `{"text"}` for each '
                "piece as the model writes it, then `event: answer` with an AnswerOut (its "
                "`answer` replaces the streamed text), or `event: error` with an ErrorOut.",
                "content": {"text/event-stream": {"schema": AnswerOut.model_json_schema()}},
            },
            **_error_responses(401, 403, 404, 422),
        },
        summary="Ask a question (streamed answer with citations)",
    )
    async def ask(body: AskRequest) -> StreamingResponse:
        opened = vault()
        stream, pieces = await stream_answer(opened, body.question, body.client)

        async def events() -> AsyncIterator[str]:
            try:
                async for piece in pieces:
                    if piece is None:
                        break
                    yield _sse("token", {"text": piece})
                out = await anyio.to_thread.run_sync(lambda: answer_out(opened, stream.result()))
                yield _sse("answer", out.model_dump())
            except Exception as exc:  # noqa: BLE001  (the status line is sent: report in-stream)
                error = api_error(exc)
                log.warning("question failed: %s", type(exc).__name__)
                yield _sse("error", {**error.body(), "status": error.status})
            finally:
                await pieces.aclose()

        return StreamingResponse(
            events(),
            media_type="text/event-stream",
            headers={"cache-control": "no-cache", "x-accel-buffering": "no"},
        )

    @app.post(
        "/api/search",
        response_model=SearchOut,
        responses=_error_responses(401, 403, 404, 422),
        summary="Passages closest to a query",
    )
    def search(body: SearchRequest) -> SearchOut:
        opened = vault()
        check_client(opened, body.client)
        with search_lock:
            hits = opened.search(body.query, client=body.client, top_k=body.top_k)
        return SearchOut(
            hits=[
                HitOut.model_validate(
                    printable({**hit.to_dict(), "location": location(opened, hit.file_id)})
                )
                for hit in hits
            ]
        )

    @app.get(
        "/api/status",
        response_model=StatusOut,
        responses=_error_responses(401, 403),
        summary="What the vault holds: documents, last update, failed files and why",
    )
    def status() -> StatusOut:
        return StatusOut.model_validate(printable(vault().status().to_dict()))

    @app.get(
        "/api/clients",
        response_model=ClientsOut,
        responses=_error_responses(401, 403),
        summary="Indexed clients with their counts",
    )
    def clients() -> ClientsOut:
        found = vault().status().clients
        return ClientsOut(
            clients=[ClientOut.model_validate(c, from_attributes=True) for c in found]
        )

    @app.post(
        "/api/forget",
        response_model=ForgetOut,
        responses=_error_responses(401, 403, 404, 409, 422),
        summary="Erase a client (destroying its key) or the files at or under a path",
    )
    def forget(body: ForgetRequest) -> ForgetOut:
        opened = vault()
        try:
            report = opened.forget(client=body.client, path=body.path)
        except VaultBusyError:
            raise
        except ConfigError as exc:  # no such client or path, or already forgotten
            raise ApiError(404, "not_indexed", str(exc)) from exc
        return ForgetOut.model_validate(report.to_dict())

    @app.get(
        "/api/audit",
        response_model=AuditOut,
        responses=_error_responses(401, 403, 422),
        summary="The audit trail (read only; questions stay encrypted)",
    )
    def audit(
        client: Annotated[str | None, Query(description="Records concerning this client.")] = None,
        since: Annotated[datetime | None, Query(description="From this date or time.")] = None,
        action: Annotated[list[str] | None, Query(description="Only these actions.")] = None,
        limit: Annotated[int, Query(ge=1, le=_AUDIT_MAX, description="The last N.")] = 100,
    ) -> AuditOut:
        if since is not None and since.tzinfo is None:
            since = since.replace(tzinfo=UTC)
        entries = vault().audit(client=client, since=since, actions=action)
        rows = []
        for entry in entries[-limit:]:
            row = entry.to_dict()
            row["question_kept"] = bool(row.pop("question", None) or entry.record.question)
            rows.append(row)
        return AuditOut.model_validate({"entries": rows, "total": len(entries)})

    @app.get(
        "/api/register",
        responses={
            200: {
                "description": "The register (register.schema.json), or Markdown with format=md",
                "content": {"application/json": {}, "text/markdown": {}},
            },
            **_error_responses(401, 403, 422),
        },
        summary="The processing register (GDPR art. 30)",
    )
    def register(
        format: Annotated[str, Query(pattern="^(json|md)$")] = "json",
        lang: Annotated[str, Query(pattern="^(fr|en)$")] = "fr",
    ) -> Response:
        from huisclos.pipeline.privacy.register import render_markdown

        built = vault().register()
        if format == "md":
            text = render_markdown(built, "en" if lang == "en" else "fr")
            return PlainTextResponse(text, media_type="text/markdown; charset=utf-8")
        return JSONResponse(built)

    app.include_router(server_openai.router(vault))
    app.add_middleware(_Policy, token=token, bound=host)
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
    if token is not None and len(token) < 16:
        raise ConfigError("the access token is too short: use at least 16 characters")
    if token is None and not is_loopback(host):
        raise ConfigError(
            f"binding to {host} makes the vault reachable from the network: an access token "
            "is required (huisclos serve --new-token, or --token-file FILE)"
        )
    return _build(hc, token=token, host=host)


def openapi_document() -> dict[str, Any]:
    """The OpenAPI description the server publishes at ``/openapi.json``."""
    document: dict[str, Any] = _build(None, token=None, host="127.0.0.1").openapi()
    return document


def read_token(path: Path) -> str:
    """The access token kept in ``path`` (a file only its owner may read).

    Raises:
        ConfigError: the file is missing, readable by others, or holds no usable token.
    """
    try:
        mode = path.stat().st_mode
        text = path.read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise ConfigError(
            f"cannot read the token file {path}: {exc.strerror}; create one with --new-token"
        ) from exc
    if mode & 0o077:
        raise ConfigError(f"the token file {path} is readable by others: chmod 600 {path}")
    if len(text) < 16:
        raise ConfigError(f"the token file {path} holds no token of 16 characters or more")
    return text


def new_token(path: Path) -> str:
    """Write a new random token to ``path`` (mode 0600, replacing any) and return it."""
    token = secrets.token_urlsafe(32)
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, (token + "\n").encode())
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(temporary, path)
    return token


def _bind(host: str, port: int) -> socket.socket:
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except OSError as exc:
        raise ConfigError(f"cannot bind to {host}: {exc.strerror}") from exc
    family, kind, proto, _, address = infos[0]
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(address)
        sock.listen(128)
    except OSError as exc:
        sock.close()
        raise ConfigError(
            f"cannot listen on {host}:{port}: {exc.strerror} (is another huisclos serve "
            "running? choose another --port)"
        ) from exc
    sock.set_inheritable(True)
    return sock


def _url(host: str, port: int) -> str:
    if host in {"0.0.0.0", "::", ""}:
        host = socket.gethostname()
    elif ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{port}/"


def _watch(hc: Huisclos, roots: Sequence[Path], stop: threading.Event) -> None:
    try:
        hc.watch(*roots, stop_event=stop)
    except HuisclosError as exc:  # the page and the API go on without it
        log.warning("the watcher stopped: %s", type(exc).__name__)
        print(f"huisclos: the watcher stopped: {exc}", file=sys.stderr)


def serve(
    hc: Huisclos,
    *,
    host: str = "127.0.0.1",
    port: int = DEFAULT_PORT,
    token: str | None = None,
    roots: Sequence[Path] = (),
    stop: threading.Event | None = None,
    on_ready: Callable[[str], None] | None = None,
) -> None:
    """Serve the page and the API until SIGINT/SIGTERM or ``stop``; watch ``roots`` meanwhile.

    Args:
        roots: folders kept indexed by :meth:`Huisclos.watch` in a thread (none: no watcher).
        stop: set it to stop (the server and the watcher).
        on_ready: called with the page's URL once the port is bound (``port=0``: a free one).

    Raises:
        ConfigError: no token beyond loopback, or the address cannot be bound.
    """
    import uvicorn

    app = create_app(hc, token=token, host=host)
    sock = _bind(host, port)
    stop = stop or threading.Event()
    config = uvicorn.Config(
        app,
        log_config=None,
        access_log=False,
        lifespan="off",
        server_header=False,
        ws="none",
        timeout_graceful_shutdown=3,
    )
    server = uvicorn.Server(config)

    def stop_server() -> None:
        stop.wait()
        server.should_exit = True

    threading.Thread(target=stop_server, name="huisclos-serve-stop", daemon=True).start()
    watcher = None
    if roots:
        watcher = threading.Thread(
            target=_watch, args=(hc, list(roots), stop), name="huisclos-watch", daemon=True
        )
        watcher.start()
    try:
        if on_ready is not None:
            on_ready(_url(host, sock.getsockname()[1]))
        server.run(sockets=[sock])
    finally:
        stop.set()
        if watcher is not None:
            watcher.join(timeout=120)
        sock.close()


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m huisclos.pipeline.server FILE``: write the OpenAPI description to FILE."""
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) != 1:
        print("usage: python -m huisclos.pipeline.server docs/openapi.json", file=sys.stderr)
        return 2
    text = json.dumps(openapi_document(), ensure_ascii=False, indent=2, sort_keys=True) + "\n"
    Path(args[0]).write_text(text, encoding="utf-8")
    return 0
