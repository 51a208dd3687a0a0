"""Watcher benchmark: latency from file close to searchable, and a burst of files.

In one run, with the real watcher (``Huisclos.watch`` in a thread) over a
temporary root and a fresh vault:

1. latency: ``--saves`` one-page documents (the first ~2,500 characters of
   PIAF articles, French) are saved one at a time into a client folder; for
   each, the time from the writer's ``close()`` to the moment its manifest row
   is committed (after its chunks are in the store: searchable), polled every
   5 ms; median and p95, per observer (inotify, then polling);
2. burst: ``--burst`` new files (PIAF articles, copied under new names) are
   written at once into a new client folder, like an unpacked archive; time
   until all are indexed, peak resident memory of the process and of its
   conversion worker (sampled every 50 ms), and the latency of searches run
   every second meanwhile.

Usage::

    .venv/bin/python bench/watch.py [--saves 60] [--burst 2000] [--out FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from huisclos.config import load_settings
from huisclos.pipeline import Huisclos

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
ARTICLES = sorted((DATA / "piaf-fr" / "articles-txt").glob("*.txt"))


def page(n: int) -> str:
    """About one page of real French text (differs for every n)."""
    text = ARTICLES[n % len(ARTICLES)].read_text(encoding="utf-8")[:2500]
    return f"Document {n}.\n{text}\n"


def rss_mb(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def children(pid: int) -> list[int]:
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except OSError:
        return []
    return [int(p) for p in text.split()]


class Bench:
    def __init__(self, base: Path, mode: str) -> None:
        self.root = base / "Clients"
        (self.root / "Cabinet").mkdir(parents=True)
        settings = load_settings(home=base / "vault", key_source="file", watch_mode=mode)
        self.hc = Huisclos(settings)
        self.hc.index(self.root)  # models loaded before the clock starts
        self.hc.search("warm up")
        self.stop = threading.Event()
        self.thread = threading.Thread(
            target=self.hc.watch, args=(self.root,), kwargs={"stop_event": self.stop}
        )
        self.thread.start()
        while (watcher := self.hc.status().watcher) is None or watcher.state != "running":
            time.sleep(0.05)
        keys = self.hc.vault.keys
        self.root_id = keys.blind("root", str(self.root.resolve()))

    def indexed(self, rels: list[str]) -> int:
        keys = self.hc.vault.keys
        ids = [keys.blind("path", f"{self.root_id}\x00{rel}") for rel in rels]
        return len(self.hc.vault.manifest.by_path_ids(ids))

    def latency(self, saves: int, offset: int) -> list[float]:
        seconds = []
        for n in range(saves):
            rel = f"Cabinet/note-{offset + n:04}.txt"
            with (self.root / rel).open("w", encoding="utf-8") as handle:
                handle.write(page(offset + n))
            closed = time.perf_counter()
            while not self.indexed([rel]):
                time.sleep(0.005)
            seconds.append(time.perf_counter() - closed)
            time.sleep(0.3)
        hits = self.hc.search(page(offset)[:200], client="Cabinet", top_k=3)
        assert any(hit.path == f"Cabinet/note-{offset:04}.txt" for hit in hits), "not searchable"
        return seconds

    def burst(self, count: int) -> dict[str, Any]:
        rels = [f"Archive/{n // 200:02}/piece-{n:05}.txt" for n in range(count)]
        peak = {"main": 0.0, "workers": 0.0}
        sampling = threading.Event()
        pid = os.getpid()

        def sample() -> None:
            while not sampling.is_set():
                peak["main"] = max(peak["main"], rss_mb(pid))
                peak["workers"] = max(peak["workers"], sum(rss_mb(c) for c in children(pid)))
                time.sleep(0.05)

        baseline = rss_mb(pid)
        sampler = threading.Thread(target=sample)
        sampler.start()
        started = time.perf_counter()
        for n, rel in enumerate(rels):
            path = self.root / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(page(n), encoding="utf-8")
        written = time.perf_counter() - started
        queries = []
        while (done := self.indexed(rels)) < count:
            asked = time.perf_counter()
            self.hc.search("honoraires de la mission", top_k=5)
            queries.append(time.perf_counter() - asked)
            print(f"  burst: {done}/{count} indexed", file=sys.stderr)
            time.sleep(1.0)
        seconds = time.perf_counter() - started
        sampling.set()
        sampler.join()
        return {
            "files": count,
            "write_seconds": round(written, 2),
            "seconds_to_all_indexed": round(seconds, 1),
            "files_per_second": round(count / seconds, 1),
            "rss_before_mb": round(baseline),
            "peak_rss_mb": round(peak["main"]),
            "peak_worker_rss_mb": round(peak["workers"]),
            "queries_during": len(queries),
            "query_median_seconds": round(statistics.median(queries), 3) if queries else None,
            "query_max_seconds": round(max(queries), 3) if queries else None,
        }

    def close(self) -> None:
        self.stop.set()
        self.thread.join()
        self.hc.close()


def summary(seconds: list[float]) -> dict[str, float]:
    ordered = sorted(seconds)
    return {
        "saves": len(ordered),
        "median_seconds": round(statistics.median(ordered), 3),
        "p95_seconds": round(ordered[max(0, round(0.95 * len(ordered)) - 1)], 3),
        "max_seconds": round(ordered[-1], 3),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--saves", type=int, default=60)
    parser.add_argument("--polling-saves", type=int, default=20)
    parser.add_argument("--burst", type=int, default=2000)
    parser.add_argument(
        "--out", type=Path, default=Path(__file__).parent / "results" / "watch.json"
    )
    args = parser.parse_args()
    results: dict[str, Any] = {
        "meta": {
            "command": " ".join(["bench/watch.py", *sys.argv[1:]]),
            "when": time.strftime("%Y-%m-%d"),
            "machine": f"{platform.machine()}, {os.cpu_count()} cores",
        }
    }
    with tempfile.TemporaryDirectory(prefix="huisclos-bench-watch-") as scratch:
        bench = Bench(Path(scratch) / "inotify", "inotify")
        try:
            results["inotify"] = summary(bench.latency(args.saves, 0))
            print("inotify", results["inotify"], flush=True)
            if args.burst:
                results["burst"] = bench.burst(args.burst)
                print("burst", results["burst"], flush=True)
        finally:
            bench.close()
        if args.polling_saves:
            bench = Bench(Path(scratch) / "polling", "polling")
            try:
                results["polling"] = summary(bench.latency(args.polling_saves, 1000))
                print("polling", results["polling"], flush=True)
            finally:
                bench.close()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    print(f"written {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
