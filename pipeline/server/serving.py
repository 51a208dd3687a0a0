"""``huisclos serve``: the app under uvicorn, beside the folder watcher, in one process.

:func:`serve` binds the socket itself (so ``port=0`` picks a free port and a
taken one is a clear :class:`ConfigError`), runs uvicorn without its access
log (:class:`~.security.Policy` logs what may be logged) and stops the server
and the watcher together.
"""

from __future__ import annotations

import logging
import socket
import sys
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from huisclos.config import ConfigError, HuisclosError
from huisclos.pipeline.server.app import create_app

if TYPE_CHECKING:
    from huisclos.pipeline.api import Huisclos

__all__ = ["DEFAULT_PORT", "serve"]

log = logging.getLogger(__name__)

DEFAULT_PORT = 8765


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
