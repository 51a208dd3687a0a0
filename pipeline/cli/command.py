"""What every ``huisclos`` subcommand is: a handler with one signature, found on its parser.

Each area module (:mod:`.indexing`, :mod:`.answering`, :mod:`.serve`,
:mod:`.models`, :mod:`.privacy`, :mod:`.eval`) adds its subcommands with
``add_parsers(subcommands)`` and puts the handler of each leaf on it with
``parser.set_defaults(handler=...)``; :func:`huisclos.pipeline.cli.main` calls
``args.handler(args, settings)`` and nothing else. A handler returns the exit
code (0, or 1 when the command's own check failed) and lets
:class:`huisclos.config.HuisclosError` go up: only ``main`` turns errors into
exit codes.

Most commands work on an opened vault: :func:`on_the_vault` wraps them so that
the vault is opened (and closed) around them; the others (``models``, ``eval``,
``repair``) take the settings and open what they need themselves.
"""

from __future__ import annotations

import argparse
import functools
import signal
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, TypeAlias

from huisclos.config import Settings

if TYPE_CHECKING:
    from huisclos.pipeline.api import Huisclos

__all__ = ["Handler", "Subcommands", "on_the_vault", "stop_on_signals"]

Handler: TypeAlias = Callable[[argparse.Namespace, Settings], int]
"""Runs one subcommand with the parsed arguments and the settings; returns the exit code."""

Subcommands: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"
"""What ``add_subparsers()`` returns: where an area adds its subcommands."""

VaultHandler: TypeAlias = "Callable[[Huisclos, argparse.Namespace], int]"


def on_the_vault(run: VaultHandler) -> Handler:
    """A :data:`Handler` that opens the vault, calls ``run(hc, args)`` and closes the vault."""

    @functools.wraps(run)
    def handler(args: argparse.Namespace, settings: Settings) -> int:
        from huisclos.pipeline.api import Huisclos

        with Huisclos(settings) as hc:
            return run(hc, args)

    return handler


def stop_on_signals() -> threading.Event:
    """An event that Ctrl-C (SIGINT) or SIGTERM sets, for the commands that run until stopped."""
    stop = threading.Event()

    def request_stop(signum: int, frame: object) -> None:
        stop.set()

    signal.signal(signal.SIGINT, request_stop)
    signal.signal(signal.SIGTERM, request_stop)
    return stop
