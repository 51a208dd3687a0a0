#!/usr/bin/env python3
"""Every file of ``../shared/data/office-docs`` through ``huisclos index``: indexed or why not.

Indexes the folder (read in place, each first-level folder a client) into a
fresh vault with the default settings, through the CLI as a user runs it
(conversion workers, time and memory limits, network guard on), then reads
back each file's outcome (``Huisclos.files``) and reports, per type, how many
files were indexed and how many failed for which reason, the chunks made, the
total time, and any file on disk missing from the manifest.

Usage (from the repository root)::

    .venv/bin/python bench/office_docs.py            # writes bench/results/office-docs.json
    .venv/bin/python bench/office_docs.py --markdown docs/robustness-table.md

Prints the table (Markdown).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
OFFICE = REPO.parent / "shared" / "data" / "office-docs"


def run(home: Path) -> dict[str, Any]:
    """Index office-docs into ``home``; the outcome of every file, and the time taken."""
    env = {**os.environ, "HUISCLOS_HOME": str(home), "HUISCLOS_KEY_SOURCE": "file"}
    began = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "huisclos.pipeline.cli", "index", "--json", str(OFFICE)],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    seconds = time.monotonic() - began
    if done.returncode != 0:
        raise SystemExit(f"huisclos index failed ({done.returncode}): {done.stderr[-2000:]}")
    from huisclos.config import load_settings
    from huisclos.connectors.scan import ignore_filter, scan_root
    from huisclos.pipeline import Huisclos

    settings = load_settings(home=home, key_source="file")
    with Huisclos(settings) as hc:
        files = hc.files()
    on_disk = {f.rel for f in scan_root(OFFICE, ignore_filter(settings.ignore_patterns))}
    return {"seconds": round(seconds, 1), "files": files, "on_disk": sorted(on_disk)}


def summary(outcome: dict[str, Any]) -> dict[str, Any]:
    """Counts per type: indexed, failed by reason, chunks; files on disk not in the manifest."""
    by_kind: dict[str, dict[str, Any]] = defaultdict(
        lambda: {"files": 0, "indexed": 0, "chunks": 0, "failed": Counter()}
    )
    for entry in outcome["files"]:
        row = by_kind[entry["kind"] or "(none)"]
        row["files"] += 1
        row["chunks"] += entry["chunks"]
        if entry["state"] == "indexed":
            row["indexed"] += 1
        else:
            row["failed"][entry["reason"]] += 1
    known = {entry["path"] for entry in outcome["files"]}
    reasons: Counter[str] = Counter()
    for row in by_kind.values():
        reasons.update(row["failed"])
    return {
        "seconds": outcome["seconds"],
        "files": len(outcome["files"]),
        "indexed": sum(row["indexed"] for row in by_kind.values()),
        "failed": dict(reasons.most_common()),
        "missing_from_manifest": sorted(set(outcome["on_disk"]) - known),
        "by_kind": {
            kind: {**row, "failed": dict(row["failed"].most_common())}
            for kind, row in sorted(by_kind.items(), key=lambda item: (-item[1]["files"], item[0]))
        },
    }


def table(report: dict[str, Any]) -> str:
    lines = [
        "| type | files | indexed | failed, and why | chunks |",
        "|---|---|---|---|---|",
    ]
    for kind, row in report["by_kind"].items():
        why = ", ".join(f"{n} {reason}" for reason, n in row["failed"].items()) or "-"
        lines.append(f"| {kind} | {row['files']} | {row['indexed']} | {why} | {row['chunks']} |")
    failed = ", ".join(f"{n} {reason}" for reason, n in report["failed"].items())
    lines.append(
        f"| **all** | **{report['files']}** | **{report['indexed']}** | {failed} | "
        f"{sum(row['chunks'] for row in report['by_kind'].values())} |"
    )
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=REPO / "bench/results/office-docs.json")
    parser.add_argument("--markdown", type=Path, help="also write the table to this file")
    args = parser.parse_args()
    load = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="huisclos-office-docs-") as tmp:
        outcome = run(Path(tmp) / "vault")
    report = {
        "command": "python bench/office_docs.py " + " ".join(sys.argv[1:]),
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "machine": {
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "loadavg_start": load,
            "loadavg_end": os.getloadavg()[0],
        },
        **summary(outcome),
        "failures": [
            {"path": f["path"], "reason": f["reason"]}
            for f in outcome["files"]
            if f["state"] != "indexed"
        ],
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=1, ensure_ascii=False) + "\n")
    text = table(report)
    if args.markdown:
        args.markdown.write_text(text + "\n")
    print(text)
    print(f"\n{report['files']} files in {report['seconds']} s; "
          f"missing from the manifest: {len(report['missing_from_manifest'])}")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
