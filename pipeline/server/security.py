"""Who may call the server, and what every response carries.

:class:`Policy` is an ASGI middleware that runs before any route:

* Bound to loopback (the default), a token is optional. The ``Host`` header
  must name a loopback address (a DNS-rebinding page cannot reach the API),
  a browser request from another site is refused (``Origin``,
  ``Sec-Fetch-Site``), and a ``POST`` under ``/api/`` needs the header
  ``X-Huisclos: 1`` or the token, which a cross-site form cannot send.
* Bound beyond loopback, a token is required (:func:`check_binding` refuses
  the app without one) and every request under :data:`PROTECTED` without
  ``Authorization: Bearer <token>`` is refused with 401. The page and
  ``/openapi.json`` hold no data and stay open.

Every response carries a strict Content-Security-Policy (``default-src
'self'``); those under :data:`PROTECTED` also ``Cache-Control: no-store``.
The access log holds the method, the route's template (never the path a
client sent), the status and the time: never a question, a query string,
document text or the token.

The token lives in a file only its owner may read (:func:`new_token`,
:func:`read_token`), in the vault by default (:data:`TOKEN_FILE`).
"""

from __future__ import annotations

import hmac
import ipaddress
import logging
import secrets
import time
from collections.abc import MutableMapping, Sequence
from pathlib import Path
from typing import Any

from fastapi.routing import iter_route_contexts
from starlette.routing import BaseRoute, Match

from huisclos.config import ConfigError
from huisclos.index.keys import write_durably
from huisclos.pipeline.server.core import ApiError

__all__ = [
    "PROTECTED",
    "TOKEN_FILE",
    "Policy",
    "check_binding",
    "is_loopback",
    "new_token",
    "read_token",
]

log = logging.getLogger(__name__)

TOKEN_FILE = "server.token"
"""Where ``huisclos serve --new-token`` writes the access token, in the vault (0600)."""
PROTECTED = ("/api/", "/v1/")
"""The paths that reach the vault's data: the token and the cross-site checks apply."""
_MIN_TOKEN = 16
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
_NO_STORE = [(b"cache-control", b"no-store")]
_LOOPBACK_NAMES = frozenset({"localhost", "localhost.", "ip6-localhost"})
_WRITES = frozenset({"POST", "PUT", "PATCH", "DELETE"})


def is_loopback(host: str) -> bool:
    """Whether binding to ``host`` keeps the server reachable from this machine only."""
    host = host.strip().strip("[]").lower()
    if host in _LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_binding(host: str, token: str | None) -> None:
    """Refuse to serve beyond loopback without a token, or with a short one.

    Raises:
        ConfigError: ``host`` is not loopback and no token is given, or the token is too short.
    """
    if token is not None and len(token) < _MIN_TOKEN:
        raise ConfigError("the access token is too short: use at least 16 characters")
    if token is None and not is_loopback(host):
        raise ConfigError(
            f"binding to {host} makes the vault reachable from the network: an access token "
            "is required (huisclos serve --new-token, or --token-file FILE)"
        )


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
    if len(text) < _MIN_TOKEN:
        raise ConfigError(f"the token file {path} holds no token of 16 characters or more")
    return text


def new_token(path: Path) -> str:
    """Write a new random token to ``path`` (mode 0600, replacing any) and return it."""
    token = secrets.token_urlsafe(32)
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    write_durably(path, (token + "\n").encode())
    return token


def _hostname(host_header: str) -> str:
    """``example:8765`` → ``example``; ``[::1]:8765`` → ``::1``."""
    host = host_header.strip().lower()
    if host.startswith("["):
        return host[1:].split("]", 1)[0]
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


def _route(routes: Sequence[BaseRoute], scope: Any) -> str:
    """The template of the route ``scope`` asks for (whatever the method), or ``-``."""
    for route in iter_route_contexts(routes):
        match, _ = route.matches(scope)
        if match is not Match.NONE and route.path is not None:
            return route.path
    return "-"


class Policy:
    """ASGI middleware: who may call (Host, token, cross-site), security headers, access log.

    Args:
        app: the application it guards.
        token: the access token, if any (compared in constant time).
        bound: the address the server is bound to.
        routes: the application's routes (``app.routes``), named in the access log.
    """

    def __init__(
        self, app: Any, *, token: str | None, bound: str, routes: Sequence[BaseRoute]
    ) -> None:
        self.app = app
        self.token = token
        self.loopback = is_loopback(bound)
        self.bound = bound.strip().strip("[]").lower()
        self.routes = routes

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        path: str = scope["path"]
        protected = path.startswith(PROTECTED)
        status = [0]

        async def send_with_headers(message: MutableMapping[str, Any]) -> None:
            if message["type"] == "http.response.start":
                status[0] = message["status"]
                extra = _SECURITY_HEADERS + (_NO_STORE if protected else [])
                message = {**message, "headers": [*message.get("headers", []), *extra]}
            await send(message)

        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        refusal = self._refusal(scope["method"], path, headers)
        if refusal is not None:
            auth = {"WWW-Authenticate": "Bearer"} if refusal.status == 401 else None
            await refusal.response(auth)(scope, receive, send_with_headers)
        else:
            await self.app(scope, receive, send_with_headers)
        elapsed = (time.perf_counter() - started) * 1000
        log.info(
            "%s %s %d %.0f ms", scope["method"], _route(self.routes, scope), status[0], elapsed
        )

    def _refusal(self, method: str, path: str, headers: dict[str, str]) -> ApiError | None:
        """Why this request is refused, or None: the host, then the token, then the site."""
        host = _hostname(headers.get("host", ""))
        known = host in _LOOPBACK_NAMES or host == self.bound or is_loopback(host)
        if self.loopback and not known:
            return ApiError(
                421, "host_not_allowed", "this server answers to localhost only", "forbidden"
            )
        if not path.startswith(PROTECTED):
            return None
        authorized = self.token is not None and _bearer(headers, self.token)
        if self.token is not None and not authorized:
            return ApiError(
                401,
                "invalid_token",
                "an access token is required: send 'Authorization: Bearer <token>'",
                "authentication_error",
            )
        return _cross_site(headers) or _unsafe_write(method, path, headers, authorized)


def _bearer(headers: dict[str, str], token: str) -> bool:
    """Whether the request carries ``Authorization: Bearer <token>`` (constant-time compare)."""
    scheme, _, credential = headers.get("authorization", "").partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(
        credential.strip().encode(), token.encode()
    )


def _cross_site(headers: dict[str, str]) -> ApiError | None:
    """A browser request from another site's page (``Sec-Fetch-Site``, ``Origin``)."""
    site = headers.get("sec-fetch-site", "")
    origin = headers.get("origin")
    if site in {"cross-site", "same-site"} or (
        origin is not None and origin.split("://", 1)[-1].lower() != headers.get("host", "")
    ):
        return ApiError(403, "cross_origin", "requests from other sites are refused", "forbidden")
    return None


def _unsafe_write(
    method: str, path: str, headers: dict[str, str], authorized: bool
) -> ApiError | None:
    """A write a cross-site form could send: not JSON, or under ``/api/`` without the header."""
    if method not in _WRITES:
        return None
    media = headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if media != "application/json":
        return ApiError(415, "unsupported_media_type", "send a JSON body")
    if path.startswith("/api/") and not authorized and headers.get("x-huisclos") != "1":
        return ApiError(403, "missing_header", "send the header 'X-Huisclos: 1' with POST requests")
    return None
