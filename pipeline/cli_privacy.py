"""The privacy commands of ``huisclos``: forget, include, keys, audit, register, retention.

A thin layer over :class:`huisclos.pipeline.Huisclos`, like the rest of the CLI.
"""

from __future__ import annotations

import argparse
import getpass
import json
import os
import sys
from typing import Any

from huisclos.config import ConfigError

__all__ = ["COMMANDS", "add_parsers", "run"]

COMMANDS = frozenset({"forget", "include", "keys"})


def add_parsers(sub: Any) -> None:
    """Add the privacy sub-commands to the ``huisclos`` parser."""
    forget = sub.add_parser(
        "forget",
        help="erase a client (destroying its key) or the files at or under a path",
        description="Right to erasure. Deletes the records, the manifest entries and, for a "
        "client, its data key; rotates the master key so that older copies of the vault "
        "cannot be read; compacts the store. What still exists on disk is no longer indexed "
        "until `huisclos include`.",
    )
    target = forget.add_mutually_exclusive_group(required=True)
    target.add_argument("--client", help="the client's folder name")
    target.add_argument("--path", help="a file or folder inside an indexed root")
    forget.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    forget.add_argument("--json", action="store_true")

    include = sub.add_parser(
        "include", help="let a forgotten client or path be indexed again (next index run)"
    )
    again = include.add_mutually_exclusive_group(required=True)
    again.add_argument("--client")
    again.add_argument("--path")

    keys = sub.add_parser("keys", help="master key operations")
    keys_sub = keys.add_subparsers(dest="keys_command", required=True)
    keys_sub.add_parser(
        "rotate",
        help="replace the master key (re-wraps data keys; no record re-encrypted); a "
        "passphrase vault reads the new passphrase from HUISCLOS_NEW_PASSPHRASE or asks",
    )


def run(hc: Any, args: argparse.Namespace) -> None:
    """Run one privacy command on an opened :class:`Huisclos`."""
    if args.command == "forget":
        _forget(hc, args)
    elif args.command == "include":
        if hc.include(client=args.client, path=args.path):
            print("included again: it will be indexed by the next index run or the watcher")
        else:
            print("it was not excluded: nothing to do")
    elif args.command == "keys":
        _rotate(hc)


def _confirm(question: str) -> bool:
    if not sys.stdin.isatty():
        return False
    return input(f"{question} [y/N] ").strip().lower() in {"y", "yes", "o", "oui"}


def _forget(hc: Any, args: argparse.Namespace) -> None:
    what = f"client {args.client!r}" if args.client else f"{args.path}"
    if not args.yes and not _confirm(f"Erase {what} from the index for good?"):
        raise ConfigError("nothing erased: confirm with --yes (or answer y)")
    report = hc.forget(client=args.client, path=args.path)
    if args.json:
        print(json.dumps(report.to_dict(), ensure_ascii=False))
        return
    print(f"erased {what}: {report.files} files, {report.chunks} chunks")
    if report.key_destroyed:
        print("  its data key was destroyed: what any copy holds of it can no longer be read")
    if report.master_key.startswith("not rotated"):
        print(f"  master key {report.master_key}")
    elif report.target == "client":
        print(f"  master key rotated (new key in the {report.master_key}): older copies of the "
              "vault can no longer be opened with it")  # fmt: skip
    print(f"  store compacted: {report.chunks_kept} chunks kept, erased ones leave no trace")
    for path in report.still_on_disk:
        print(f"  still on disk, no longer indexed: {path}")
        flag = f"--client {args.client!r}" if args.client else f"--path {path!r}"
        print(f"    to index it again: huisclos include {flag}")


def _rotate(hc: Any) -> None:
    new_passphrase = None
    if hc.settings.passphrase is not None or hc.settings.key_source == "passphrase":
        new_passphrase = os.environ.get("HUISCLOS_NEW_PASSPHRASE")
        if not new_passphrase and sys.stdin.isatty():
            new_passphrase = getpass.getpass("New passphrase: ")
            if getpass.getpass("Again: ") != new_passphrase:
                raise ConfigError("the two passphrases differ; nothing changed")
    source = hc.rotate_master_key(new_passphrase)
    if source == "passphrase":
        print("master key rotated: use the new passphrase from now on")
    else:
        print(f"master key rotated; the new key is in the {source}")
