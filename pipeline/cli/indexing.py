"""``huisclos index``, ``watch``, ``status`` and ``repair``: the vault in step with the folders.

``repair`` does not open the vault (its store may not open): it takes the
settings; the others work on the opened vault.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import TYPE_CHECKING, Any

from huisclos.config import Settings
from huisclos.pipeline.cli.command import Subcommands, on_the_vault, stop_on_signals

if TYPE_CHECKING:
    from huisclos.pipeline.api import Huisclos, Status
    from huisclos.pipeline.indexing.ingest import IndexReport

__all__ = ["add_parsers"]


def add_parsers(sub: Subcommands) -> None:
    """Add ``index``, ``watch``, ``status`` and ``repair`` to the ``huisclos`` parser."""
    index = sub.add_parser("index", help="index (or re-index incrementally) client folders")
    index.add_argument("paths", nargs="+", help="root folders (one subfolder per client)")
    index.add_argument("--json", action="store_true", help="print the summary as JSON")
    index.set_defaults(handler=on_the_vault(_index))

    watch = sub.add_parser(
        "watch", help="keep client folders indexed as files change (runs until stopped)"
    )
    watch.add_argument("paths", nargs="+", help="root folders (one subfolder per client)")
    watch.add_argument(
        "--polling", action="store_true", help="poll instead of inotify (network shares)"
    )
    watch.set_defaults(handler=on_the_vault(_watch))

    status = sub.add_parser("status", help="what the vault holds, and failed files")
    status.add_argument("--json", action="store_true")
    status.set_defaults(handler=on_the_vault(_status))

    repair = sub.add_parser(
        "repair",
        help="rebuild a damaged or out-of-step store and keyword index from the indexed folders",
        description="Check the vector store and the keyword index against the manifest; "
        "rebuild what cannot be read, delete chunks of unknown files, read again the files "
        "whose chunks are missing. Keys, forgotten clients and the audit trail are kept.",
    )
    repair.add_argument("--json", action="store_true", help="print the summary as JSON")
    repair.set_defaults(handler=_repair)  # the vault is not opened: its store may not open


def _index(hc: Huisclos, args: argparse.Namespace) -> int:
    bar, update = _progress_bar(sys.stderr.isatty() and not args.json)
    try:
        report = hc.index(*args.paths, progress=update)
    finally:
        if bar is not None:
            bar.close()
    _print_index(report, args.json)
    return 0


def _progress_bar(enabled: bool) -> Any:
    if not enabled:
        return None, None
    from tqdm import tqdm

    bar = tqdm(total=0, unit="file", desc="indexing", file=sys.stderr, leave=False)

    def update(done: int, total: int) -> None:
        bar.total = total
        bar.n = done
        bar.refresh()

    return bar, update


def _print_index(report: IndexReport, as_json: bool) -> None:
    if as_json:
        print(json.dumps(report.to_dict(), ensure_ascii=False))
        return
    print(
        f"{report.added} added, {report.updated} updated, {report.moved} moved, "
        f"{report.removed} removed, {report.unchanged} unchanged, {report.failed} failed; "
        f"{report.chunks_written} chunks written in {report.seconds:.1f} s"
    )
    for failure in report.failures:
        print(f"  failed: {failure['path']}: {failure['reason']}")


def _watch(hc: Huisclos, args: argparse.Namespace) -> int:
    stop = stop_on_signals()
    print(f"huisclos: watching {len(args.paths)} folder(s); Ctrl-C to stop", file=sys.stderr)
    hc.watch(*args.paths, stop_event=stop)
    return 0


def _status(hc: Huisclos, args: argparse.Namespace) -> int:
    status = hc.status()
    if args.json:
        print(json.dumps(status.to_dict(), ensure_ascii=False))
        return 0
    _print_status(status)
    return 0


def _print_status(status: Status) -> None:
    models = status.embedding_model + (
        f" + {status.embedding_model_en} for English" if status.embedding_model_en else ""
    )
    print(f"vault: {status.vault} ({status.store}, {status.retrieval} search, model {models})")
    print(f"answers: {status.generator}")
    print(f"{status.files} files, {status.chunks} chunks, {status.failed} failed")
    for client in status.clients:
        print(f"  {client.name}: {client.files} files, {client.chunks} chunks")
    for failure in status.failures:
        print(f"  failed: {failure['path']}: {failure['reason']}")
    watcher = status.watcher
    if watcher is not None:
        modes = "/".join(watcher.modes) or "-"
        line = f"watcher: {watcher.state} ({modes}), queue {watcher.queue}"
        line += f", {watcher.indexed} files indexed since {_when(watcher.started_at)}"
        line += f", last at {_when(watcher.last_indexed_at)}" if watcher.last_indexed_at else ""
        if watcher.last_error:
            line += f"; last error {watcher.last_error} at {_when(watcher.last_error_at)}"
        print(line)


def _when(timestamp: float | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(timestamp)) if timestamp else "-"


def _repair(args: argparse.Namespace, settings: Settings) -> int:
    from huisclos.pipeline.repair import repair_vault

    report = repair_vault(settings)
    if args.json:
        print(json.dumps(report.to_dict(), ensure_ascii=False))
        return 0
    rebuilt = [
        name
        for name, done in (("vector store", report.store_rebuilt),
                           ("keyword index", report.keyword_index_rebuilt))
        if done
    ]  # fmt: skip
    print(f"rebuilt: {', '.join(rebuilt) or 'nothing'}; chunks of {report.stray_files} unknown "
          f"files deleted; {report.reread} files read again")  # fmt: skip
    for root in report.missing_roots:
        print(f"  folder not found: {root} (its files are read again when it is back)")
    _print_index(report.index, False)
    return 0
