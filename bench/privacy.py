"""Privacy benchmark: erasure, key rotation, audit trail, personal data, register.

In one run, on client trees built from the PIAF articles (191 files over 8
client folders, replicated ``--copies`` times into more clients), each
indexed into a fresh vault through ``Huisclos.index``:

1. forget one client, timed step by step with ``Forgetter``: (a) deletion and
   key destruction, (b) master-key rotation, (c) compaction (store rebuild +
   VACUUM, then manifest VACUUM); then a whole ``Huisclos.forget`` of another
   client as a check; at every store size;
2. forget one file by path (wall time; mostly compaction);
3. master-key rotation alone (median of 5), with the number of wrapped keys;

on the biggest vault:

4. audit: append latency over 500 appends (each fsync'd), verify throughput
   on a log of 10,000 records, bytes per record on disk;
5. search latency (median of 20 PIAF questions) before and after the audit
   trail holds 10,000 records;
6. the processing register (it verifies the audit trail), at both log sizes;

and on the PIAF texts (191 files, 8 clients):

7. personal-data counting, patterns only: characters/s and ms per 200-word
   chunk; its share of indexing, from the time spent in the calls during an
   index run, and against an index run with counting disabled.

Usage::

    .venv/bin/python bench/privacy.py [--copies 1 5] [--out FILE]

Writes JSON (default ``bench/results/privacy.json``) and prints a table.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from unittest import mock

import huisclos.pipeline.indexing.ingest
from huisclos.config import load_settings
from huisclos.connectors.personal_data import count_personal_data
from huisclos.pipeline import Huisclos
from huisclos.pipeline.privacy.erasure import Forgetter

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
SOURCE = DATA / "piaf-fr" / "articles-txt"
CLIENTS = 8  # client folders per copy of the corpus
AUDIT_RECORDS = 10_000
APPENDS = 500
SEARCHES = 20


def timed(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> tuple[Any, float]:
    started = time.perf_counter()
    result = fn(*args, **kwargs)
    return result, time.perf_counter() - started


def median_of(runs: int, fn: Callable[..., Any], *args: Any) -> float:
    return statistics.median(timed(fn, *args)[1] for _ in range(runs))


def build_tree(root: Path, copies: int) -> int:
    """Copy the articles into ``copies * 8`` client folders ("Client 00", ...)."""
    files = sorted(p for p in SOURCE.rglob("*") if p.is_file())
    for copy in range(copies):
        for i, path in enumerate(files):
            client = f"Client {copy * CLIENTS + i % CLIENTS:02d}"
            target = root / client / path.relative_to(SOURCE)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, target)
    return len(files) * copies


def size_mb(folder: Path) -> float:
    return round(sum(p.stat().st_size for p in folder.rglob("*") if p.is_file()) / 2**20, 1)


def open_vault(base: Path, name: str, copies: int) -> tuple[Huisclos, Path, int]:
    root = base / name / "Clients"
    files = build_tree(root, copies)
    settings = load_settings(home=base / name / "vault", key_source="file")
    return Huisclos(settings), root, files


def erasure(hc: Huisclos, root: Path, copies: int, files: int) -> dict[str, Any]:
    """Steps 1-3 on an indexed vault (three clients and one file are forgotten)."""
    vault, forgetter = hc.vault, Forgetter(hc.vault)
    chunks = vault.store.count()
    store_mb = size_mb(vault.settings.home / "chroma")
    gone, delete_s = timed(forgetter.forget_client, "Client 03", rotate=False, compact=False)
    _, rotate_s = timed(forgetter.rotate)
    with vault.writing():
        kept, store_s = timed(vault.store.compact)
        _, manifest_s = timed(vault.manifest.compact)
    whole, whole_s = timed(hc.forget, client="Client 05")
    one_file = sorted((root / "Client 04").iterdir())[0]
    by_path, path_s = timed(hc.forget, path=one_file)
    rotation_s = median_of(5, hc.rotate_master_key)
    compact_s = store_s + manifest_s
    return {
        "copies": copies,
        "clients": copies * CLIENTS,
        "files": files,
        "chunks": chunks,
        "store_mb": store_mb,
        "forget_client": {
            "files": gone.files,
            "chunks": gone.chunks,
            "key_destroyed": gone.key_destroyed,
            "delete_and_key_seconds": round(delete_s, 3),
            "rotate_seconds": round(rotate_s, 3),
            "store_compact_seconds": round(store_s, 3),
            "manifest_compact_seconds": round(manifest_s, 3),
            "compact_seconds": round(compact_s, 3),
            "seconds": round(delete_s + rotate_s + compact_s, 3),
            "chunks_kept": kept,
            "compact_chunks_per_s": round(kept / store_s, 1),
        },
        "forget_client_whole": {
            "chunks": whole.chunks,
            "chunks_kept": whole.chunks_kept,
            "master_key": whole.master_key,
            "seconds": round(whole_s, 3),
        },
        "forget_path": {
            "files": by_path.files,
            "chunks": by_path.chunks,
            "chunks_kept": by_path.chunks_kept,
            "seconds": round(path_s, 3),
        },
        "rotate_alone": {
            "wrapped_keys": len(vault.manifest.wrapped_keys(vault.keys.kek)),
            "median_seconds": round(rotation_s, 3),
        },
        "store_mb_after": size_mb(vault.settings.home / "chroma"),
    }


def search_ms(hc: Huisclos, queries: list[str]) -> float:
    return round(1000 * statistics.median(timed(hc.search, q, top_k=5)[1] for q in queries), 1)


def audit_trail(hc: Huisclos, queries: list[str]) -> dict[str, Any]:
    """Steps 4-6 on the biggest vault."""
    audit = hc.vault.audit
    hc.search("échauffement")  # the query embedder loads outside the timing
    before_ms = search_ms(hc, queries)
    register_small = median_of(3, hc.register)
    small_records = hc.verify_audit().records
    appends = sorted(timed(audit.append, "bench", details={"n": n})[1] for n in range(APPENDS))
    for n in range(hc.verify_audit().records, AUDIT_RECORDS):
        audit.append("bench", details={"n": n})
    report = hc.verify_audit()
    assert report.ok and report.records == AUDIT_RECORDS, report.problems[:3]
    verify_s = median_of(3, hc.verify_audit)
    bytes_per_record = audit.path.stat().st_size / report.records
    after_ms = search_ms(hc, queries)
    register_s = median_of(3, hc.register)
    totals = hc.register()["totals"]
    return {
        "append_median_ms": round(1000 * statistics.median(appends), 2),
        "append_p95_ms": round(1000 * appends[round(0.95 * len(appends)) - 1], 2),
        "verify_records": report.records,
        "verify_seconds": round(verify_s, 3),
        "verify_records_per_s": round(report.records / verify_s),
        "bytes_per_record": round(bytes_per_record),
        "search_before_ms": before_ms,
        "search_after_ms": after_ms,
        "search_after_over_before": round(after_ms / before_ms, 2),
        "register_records_before": small_records,
        "register_seconds_before": round(register_small, 3),
        "register_seconds_10k_records": round(register_s, 3),
        "register_clients": totals["clients"],
        "register_chunks": totals["chunks"],
    }


def chunks_of(words: int) -> list[str]:
    chunks = []
    for path in sorted(SOURCE.glob("*.txt")):
        tokens = path.read_text(encoding="utf-8").split()
        chunks += [" ".join(tokens[i : i + words]) for i in range(0, len(tokens), words)]
    return chunks


def personal_data(base: Path) -> dict[str, Any]:
    """Step 7: counting alone, then its share of indexing the 191-file tree."""
    chunks = chunks_of(200)
    chars = sum(len(c) for c in chunks)
    alone = statistics.median(
        timed(lambda: [count_personal_data(c) for c in chunks])[1] for _ in range(3)
    )
    spent = [0.0]
    real = huisclos.pipeline.indexing.ingest.count_personal_data

    def counting(text: str, **kwargs: Any) -> dict[str, int]:
        result, seconds = timed(real, text, **kwargs)
        spent[0] += seconds
        return result

    seconds = {}
    for name, fn in (("off", lambda text, **kwargs: {}), ("on", counting)):
        hc, root, _ = open_vault(base, f"personal-{name}", 1)
        with hc, mock.patch.object(huisclos.pipeline.indexing.ingest, "count_personal_data", fn):
            seconds[name] = hc.index(root).seconds
    return {
        "chunks": len(chunks),
        "characters": chars,
        "seconds": round(alone, 3),
        "chars_per_s": round(chars / alone),
        "ms_per_chunk": round(1000 * alone / len(chunks), 3),
        "index_seconds_counting_off": round(seconds["off"], 2),
        "index_seconds_counting_on": round(seconds["on"], 2),
        "index_on_over_off": round(seconds["on"] / seconds["off"], 3),
        "seconds_counting_during_index": round(spent[0], 3),
        "counting_share_of_index": round(spent[0] / seconds["on"], 4),
    }


def table(results: dict[str, Any]) -> None:
    print("copies | chunks | store MB | delete+key s | rotate s | compact s (store+VACUUM, "
          "manifest) | kept | compact chunks/s | total s | whole forget s | forget path s | "
          "rotate alone s (keys)")  # fmt: skip
    for row in results["erasure"]:
        fc = row["forget_client"]
        cells = [
            row["copies"], row["chunks"], row["store_mb"], fc["delete_and_key_seconds"],
            fc["rotate_seconds"], f"{fc['compact_seconds']} ({fc['store_compact_seconds']}, "
            f"{fc['manifest_compact_seconds']})", fc["chunks_kept"], fc["compact_chunks_per_s"],
            fc["seconds"], row["forget_client_whole"]["seconds"], row["forget_path"]["seconds"],
            f"{row['rotate_alone']['median_seconds']} ({row['rotate_alone']['wrapped_keys']})",
        ]  # fmt: skip
        print(" | ".join(map(str, cells)))
    for section in ("audit", "personal_data"):
        print(f"\n{section}")
        for key, value in results[section].items():
            print(f"  {key:32} {value}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--copies", type=int, nargs="+", default=[1, 5])
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results/privacy.json")
    args = parser.parse_args()
    questions = [json.loads(line)["question"] for line in (DATA / "piaf-fr" / "qa.jsonl").open()]
    queries = questions[:: len(questions) // SEARCHES][:SEARCHES]
    results: dict[str, Any] = {
        "meta": {
            "command": " ".join(["bench/privacy.py", *sys.argv[1:]]),
            "when": time.strftime("%Y-%m-%d %H:%M"),
            "machine": f"{platform.machine()}, {os.cpu_count()} cores",
            "python": platform.python_version(),
            "embedding_model": load_settings().embedding_model,
        },
        "erasure": [],
    }
    with tempfile.TemporaryDirectory(prefix="huisclos-bench-privacy-") as scratch:
        base = Path(scratch)
        for n, copies in enumerate(sorted(args.copies)):
            hc, root, files = open_vault(base, f"copies-{copies}", copies)
            with hc:
                report = hc.index(root)
                print(f"indexed {files} files, {report.chunks_written} chunks "
                      f"in {report.seconds:.1f} s", file=sys.stderr, flush=True)  # fmt: skip
                results["erasure"].append(erasure(hc, root, copies, files))
                if n == len(args.copies) - 1:
                    results["audit"] = audit_trail(hc, queries)
        results["personal_data"] = personal_data(base)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    table(results)
    print(f"\nwritten {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
