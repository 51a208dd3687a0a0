"""The ``huisclos`` command: a thin layer over :class:`huisclos.pipeline.Huisclos`.

:func:`build_parser` assembles the subcommands of every area (each puts its
handler on its parsers, see :mod:`.command`); :func:`main` loads the settings
once, turns the network guard on, calls the handler, and is the only place
where errors become exit codes.

Exit codes: 0 success (even when some files failed: they are listed in the
summary and in ``status``), 1 the run could not proceed (bad settings, key,
store, language model) or a check failed (``audit verify``), 2 usage error,
130 interrupted.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from typing import Any

from huisclos.config import HuisclosError, install_network_guard, load_settings
from huisclos.pipeline.cli import answering, indexing, models, privacy, serve
from huisclos.pipeline.cli import eval as evaluation
from huisclos.pipeline.cli.command import Handler

__all__ = ["build_parser", "main"]


def build_parser() -> argparse.ArgumentParser:
    """The ``huisclos`` argument parser, with every subcommand and its help text.

    Each leaf subcommand's parser has a ``handler`` default (a
    :data:`~huisclos.pipeline.cli.command.Handler`); the CLI reference in
    ``docs/`` is generated from this parser.
    """
    parser = argparse.ArgumentParser(
        prog="huisclos",
        description="Private document assistant: index client folders into an encrypted "
        "local store, search them and ask questions answered by a local model, with "
        "citations. Nothing leaves the machine.",
    )
    parser.add_argument("--home", help="vault directory (default: $HUISCLOS_HOME)")
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress (ids, counts)")
    sub = parser.add_subparsers(dest="command", required=True)
    for area in (indexing, answering, serve, models, privacy, evaluation):  # the order of --help
        area.add_parsers(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``huisclos`` console script; returns the exit code.

    Example: ``main(["search", "résiliation", "--client", "Dupont SARL"])``.
    A usage error exits (``SystemExit``) with code 2, as argparse does.
    """
    for stream in (sys.stdout, sys.stderr):  # a file name that is not UTF-8 prints as \udce9
        reconfigure = getattr(stream, "reconfigure", None)
        if reconfigure is not None:
            reconfigure(errors="backslashreplace")
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    handler: Handler = args.handler
    try:
        overrides: dict[str, Any] = {"home": args.home} if args.home else {}
        if getattr(args, "polling", False):
            overrides["watch_mode"] = "polling"
        settings = load_settings(**overrides)
        install_network_guard(settings.network_hosts())
        return handler(args, settings)
    except HuisclosError as exc:
        print(f"huisclos: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:  # a disk that fails under us (full, read-only, gone)
        print(f"huisclos: {exc.strerror or exc} ({exc.filename or 'the vault'})", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("huisclos: interrupted", file=sys.stderr)
        return 130
