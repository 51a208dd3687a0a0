"""The privacy commands of ``huisclos``: forget, include, keys, audit, register, retention.

A thin layer over :class:`huisclos.pipeline.Huisclos`, like the rest of the CLI:
every leaf command has its handler on its parser (see :mod:`.command`), and all
of them work on the opened vault. ``audit verify`` exits 1 when the trail was
tampered with; ``forget`` asks for confirmation unless ``--yes``.
"""

from __future__ import annotations

import argparse
import getpass
import json
import os
import sys
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from huisclos.config import ConfigError
from huisclos.pipeline.cli.command import Subcommands, on_the_vault

if TYPE_CHECKING:
    from huisclos.pipeline.api import Huisclos

__all__ = ["add_parsers"]


def add_parsers(sub: Subcommands) -> None:
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
    forget.set_defaults(handler=on_the_vault(_forget))

    include = sub.add_parser(
        "include", help="let a forgotten client or path be indexed again (next index run)"
    )
    again = include.add_mutually_exclusive_group(required=True)
    again.add_argument("--client")
    again.add_argument("--path")
    include.set_defaults(handler=on_the_vault(_include))

    audit = sub.add_parser("audit", help="the audit trail: who did what, when")
    audit_sub = audit.add_subparsers(dest="audit_command", required=True)
    show = audit_sub.add_parser("show", help="list audit records, oldest first")
    show.add_argument("--client", help="only records concerning this client")
    show.add_argument("--since", help="only records from this date (YYYY-MM-DD or ISO time)")
    show.add_argument("--action", action="append", help="only this action (repeatable)")
    show.add_argument(
        "--questions", action="store_true", help="decrypt the questions (this is audited too)"
    )
    show.add_argument("--json", action="store_true", help="one JSON object per line")
    show.set_defaults(handler=on_the_vault(_audit_show))
    verify = audit_sub.add_parser(
        "verify", help="check the hash chain: edited, removed, reordered records (exit 1 if so)"
    )
    verify.set_defaults(handler=on_the_vault(_audit_verify))

    register = sub.add_parser(
        "register", help="the processing register (GDPR art. 30) an inspector asks for"
    )
    register.add_argument("--format", choices=("md", "json"), default="md")
    register.add_argument("--lang", choices=("fr", "en"), default="fr")
    register.set_defaults(handler=on_the_vault(_register))

    retention = sub.add_parser("retention", help="erase what the retention settings call for")
    retention_sub = retention.add_subparsers(dest="retention_command", required=True)
    apply = retention_sub.add_parser("apply", help="apply the retention rules now")
    apply.add_argument("--dry-run", action="store_true", help="only list what would be erased")
    apply.add_argument("--json", action="store_true")
    apply.set_defaults(handler=on_the_vault(_retention))

    keys = sub.add_parser("keys", help="master key operations")
    keys_sub = keys.add_subparsers(dest="keys_command", required=True)
    rotate = keys_sub.add_parser(
        "rotate",
        help="replace the master key (re-wraps data keys; no record re-encrypted); a "
        "passphrase vault reads the new passphrase from HUISCLOS_NEW_PASSPHRASE or asks",
    )
    rotate.set_defaults(handler=on_the_vault(_rotate))


def _include(hc: Huisclos, args: argparse.Namespace) -> int:
    if hc.include(client=args.client, path=args.path):
        print("included again: it will be indexed by the next index run or the watcher")
    else:
        print("it was not excluded: nothing to do")
    return 0


def _retention(hc: Huisclos, args: argparse.Namespace) -> int:
    from huisclos.pipeline.privacy.retention import retention_configured

    report = hc.apply_retention(dry_run=args.dry_run)
    if args.json:
        print(json.dumps(report.to_dict(), ensure_ascii=False))
        return 0
    if not report.actions:
        configured = retention_configured(hc.settings)
        print("nothing to erase" if configured else "no retention rule is set: nothing to do")
        return 0
    verb = "would erase" if report.dry_run else "erased"
    for action in report.actions:
        item = action.to_dict()
        what = (
            "client (inactive)" if action.rule == "inactive_years" else "files whose source is gone"
        )
        print(f"{verb} {action.client}: {what}, {item['files']} files, {item['chunks']} chunks")
    if not report.dry_run and report.master_key != "unchanged":
        print(f"  master key: {report.master_key}")
    return 0


def _since(text: str | None) -> datetime | None:
    if text is None:
        return None
    try:
        when = datetime.fromisoformat(text)
    except ValueError as exc:
        raise ConfigError(f"--since {text!r}: give a date like 2026-11-30") from exc
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def _audit_verify(hc: Huisclos, args: argparse.Namespace) -> int:
    report = hc.verify_audit()
    for problem in report.problems:
        where = f"line {problem.line}" + (f" (seq {problem.seq})" if problem.seq else "")
        print(f"{where}: {problem.kind}: {problem.message}")
    if report.ok:
        print(f"audit trail intact: {report.records} records")
        return 0
    print(f"audit trail NOT intact: {len(report.problems)} problem(s) in {report.records} "
          "records", file=sys.stderr)  # fmt: skip
    return 1


def _audit_show(hc: Huisclos, args: argparse.Namespace) -> int:
    entries = hc.audit(
        client=args.client, since=_since(args.since), actions=args.action, questions=args.questions
    )
    for entry in entries:
        row = entry.to_dict()
        if not args.questions:
            row["question"] = "(kept, encrypted)" if entry.record.question else None
        if args.json:
            print(json.dumps(row, ensure_ascii=False))
            continue
        details = ", ".join(f"{k}={v}" for k, v in row["details"].items())
        clients = ", ".join(row["clients"]) or "-"
        model = f" {row['backend']}/{row['model']}" if row["backend"] else ""
        local = "" if row["local"] else " NOT LOCAL"
        counts = f"files={len(row['files'])} chunks={len(row['chunks'])}"
        print(
            f"{row['seq']:>6} {row['time']} {row['user']} {row['action']} [{clients}]"
            f"{model}{local} {counts} {details}"
        )
        if args.questions and entry.question:
            print(f"       question: {entry.question}")
    return 0


def _register(hc: Huisclos, args: argparse.Namespace) -> int:
    from huisclos.pipeline.privacy.register import render_markdown

    register = hc.register()
    if args.format == "json":
        print(json.dumps(register, ensure_ascii=False, indent=2))
    else:
        print(render_markdown(register, args.lang))
    return 0


def _confirm(question: str) -> bool:
    if not sys.stdin.isatty():
        return False
    return input(f"{question} [y/N] ").strip().lower() in {"y", "yes", "o", "oui"}


def _forget(hc: Huisclos, args: argparse.Namespace) -> int:
    what = f"client {args.client!r}" if args.client else f"{args.path}"
    if not args.yes and not _confirm(f"Erase {what} from the index for good?"):
        raise ConfigError("nothing erased: confirm with --yes (or answer y)")
    report = hc.forget(client=args.client, path=args.path)
    if args.json:
        print(json.dumps(report.to_dict(), ensure_ascii=False))
        return 0
    print(f"erased {what}: {report.files} files, {report.chunks} chunks")
    if report.key_destroyed:
        print("  its data key was destroyed: what any copy holds of it can no longer be read")
    if report.master_key.startswith("not rotated"):
        print(f"  master key {report.master_key}")
    elif report.target == "client":
        print(f"  master key rotated (new key in the {report.master_key}): older copies of the "
              "vault can no longer be opened with it")  # fmt: skip
    if hc.settings.chroma_host:
        print(f"  store rebuilt on the Chroma server ({report.chunks_kept} chunks kept); "
              "its disk is not under huisclos's control")  # fmt: skip
    else:
        print(f"  store compacted: {report.chunks_kept} chunks kept, erased ones leave no trace")
    for path in report.still_on_disk:
        print(f"  still on disk, no longer indexed: {path}")
        flag = f"--client {args.client!r}" if args.client else f"--path {path!r}"
        print(f"    to index it again: huisclos include {flag}")
    return 0


def _rotate(hc: Huisclos, args: argparse.Namespace) -> int:
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
    return 0
