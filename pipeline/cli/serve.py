"""``huisclos serve``: the web page and HTTP API on this machine, and the folder watcher.

Beyond loopback the vault is reachable from the network, so an access token is
required: ``--new-token`` writes one (mode 0600), ``--token-file`` reads one,
and a token already in the vault is used. Without it the command refuses to
start (exit 1) rather than serve an open vault.
"""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING

from huisclos.config import ConfigError, GeneratorError
from huisclos.pipeline.cli.command import Subcommands, on_the_vault, stop_on_signals

if TYPE_CHECKING:
    from huisclos.pipeline.api import Huisclos

__all__ = ["add_parsers"]


def add_parsers(sub: Subcommands) -> None:
    """Add ``serve`` to the ``huisclos`` parser."""
    serve = sub.add_parser(
        "serve",
        help="the local web page and HTTP API, and the folder watcher (runs until stopped)",
        description="Serve the web page (ask, sources, index status) and the HTTP API on "
        "this machine, and keep the folders indexed meanwhile. Bound to 127.0.0.1 unless "
        "--host says otherwise; beyond loopback an access token is required.",
    )
    serve.add_argument(
        "paths", nargs="*", help="folders to keep indexed (default: those the vault indexed)"
    )
    serve.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    serve.add_argument("--port", type=int, default=8765, help="port (default 8765; 0: any free)")
    serve.add_argument(
        "--token-file",
        help="read the access token from this file (mode 0600); default beyond loopback: "
        "server.token in the vault",
    )
    serve.add_argument(
        "--new-token",
        action="store_true",
        help="write a new random access token to the token file (0600) and require it",
    )
    serve.add_argument("--no-watch", action="store_true", help="do not run the folder watcher")
    serve.add_argument(
        "--polling", action="store_true", help="poll instead of inotify (network shares)"
    )
    serve.set_defaults(handler=on_the_vault(_serve))


def _serve(hc: Huisclos, args: argparse.Namespace) -> int:
    from pathlib import Path

    from huisclos.pipeline import server

    loopback = server.is_loopback(args.host)
    token_path = Path(args.token_file) if args.token_file else hc.settings.home / server.TOKEN_FILE
    token = None
    if args.new_token:
        token = server.new_token(token_path)
        print(f"huisclos: a new access token is in {token_path} (mode 0600)", file=sys.stderr)
    elif args.token_file or (not loopback and token_path.exists()):
        token = server.read_token(token_path)
    if token is None and not loopback:
        raise ConfigError(
            f"--host {args.host} makes the vault reachable from the network: an access token "
            "is required; add --new-token (written to the vault) or --token-file FILE"
        )
    roots = [] if args.no_watch else [Path(p) for p in args.paths] or hc.roots()
    stop = stop_on_signals()
    print("huisclos: loading the models...", file=sys.stderr, flush=True)
    try:
        hc.warm_up()
    except GeneratorError as exc:  # search and status still work; questions will say why
        print(f"huisclos: questions cannot be answered yet: {exc}", file=sys.stderr)

    def ready(url: str) -> None:
        watching = f"watching {len(roots)} folder(s)" if roots else "no folder watched"
        print(f"huisclos: open {url} in a browser ({watching}; Ctrl-C to stop)", flush=True)
        if token is not None:
            print(f"huisclos: requests need the access token kept in {token_path}", flush=True)

    server.serve(
        hc, host=args.host, port=args.port, token=token, roots=roots, stop=stop, on_ready=ready
    )
    return 0
