"""Ingest benchmark: end-to-end throughput against the embedding model alone.

For each corpus (read in place from ../shared/data, copied into a temporary
client tree), in one run:

1. index it into a fresh vault through the real path (``Huisclos.index``):
   files/s, chunks/s, seconds;
2. re-run on the unchanged tree: seconds (nothing converted or embedded);
3. embed the very same chunk texts with the model alone, same threads:
   chunks/s; the ratio pipeline/raw is the share of time not spent embedding.

Usage::

    .venv/bin/python bench/ingest.py [--corpus piaf-txt office-french] [--out FILE]

Writes JSON (default ``bench/results/ingest.json``) and prints a table.
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import huisclos.config
from huisclos.pipeline import Huisclos
from huisclos.pipeline.embedding import load_model

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
CORPORA = {
    # name: (folder, clients) - files are spread over `clients` client folders
    "piaf-txt": (DATA / "piaf-fr" / "articles-txt", 8),
    "office-french": (DATA / "office-docs" / "french", 6),
}


def build_tree(source: Path, clients: int, root: Path) -> int:
    files = sorted(p for p in source.rglob("*") if p.is_file())
    for i, path in enumerate(files):
        target = root / f"Client {i % clients:02d}" / path.relative_to(source)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(path, target)
    return len(files)


def decrypted_chunks(hc: Huisclos) -> list[str]:
    store = hc.vault.store
    got = store._collection.get(include=["metadatas"])
    texts = []
    for chunk_id, meta in zip(got["ids"], got["metadatas"], strict=True):
        cipher = hc.vault.keys.cipher(meta["client"], create=False)
        texts.append(json.loads(cipher.decrypt(meta["ct"], chunk_id))["text"])
    return texts


def run_corpus(name: str, workers: int) -> dict[str, object]:
    source, clients = CORPORA[name]
    with tempfile.TemporaryDirectory(prefix="huisclos-bench-") as tmp:
        root, home = Path(tmp) / "Clients", Path(tmp) / "vault"
        n_files = build_tree(source, clients, root)
        settings = huisclos.config.load_settings(
            home=home, key_source="file", convert_workers=workers
        )
        with Huisclos(settings) as hc:
            load_model(settings.embedding_model, settings.threads)  # load outside the timing
            first = hc.index(root)
            second = hc.index(root)
            texts = decrypted_chunks(hc)
        model = load_model(settings.embedding_model, settings.threads)
        raw = []
        for _ in range(3):
            started = time.perf_counter()
            model.embed(texts)
            raw.append(time.perf_counter() - started)
        tokens = model.count_tokens(texts)
    raw_s = statistics.median(raw)
    return {
        "corpus": name,
        "source": str(source.relative_to(DATA.parent.parent)),
        "files": n_files,
        "indexed": first.added,
        "failed": first.failed,
        "chunks": first.chunks_written,
        "median_chunk_tokens": statistics.median(tokens) if tokens else 0,
        "index_seconds": first.seconds,
        "files_per_s": round(n_files / first.seconds, 2),
        "chunks_per_s": round(first.chunks_written / first.seconds, 2),
        "rerun_seconds": second.seconds,
        "rerun_unchanged": second.unchanged,
        "raw_embed_seconds_median": round(raw_s, 3),
        "raw_chunks_per_s": round(len(texts) / raw_s, 2),
        "pipeline_over_raw_time": round(first.seconds / raw_s, 2),
        "convert_workers": workers,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", nargs="+", default=list(CORPORA), choices=list(CORPORA))
    parser.add_argument("--workers", type=int, default=1, help="conversion processes")
    parser.add_argument("--out", type=Path, default=Path("bench/results/ingest.json"))
    args = parser.parse_args()
    results = [run_corpus(name, args.workers) for name in args.corpus]
    report = {
        "machine": {"cpus": __import__("os").cpu_count(), "python": platform.python_version()},
        "embedding_model": huisclos.config.load_settings().embedding_model,
        "results": results,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    cols = ["corpus", "files", "failed", "chunks", "index_seconds", "files_per_s", "chunks_per_s"]
    cols += ["rerun_seconds", "raw_chunks_per_s", "pipeline_over_raw_time"]
    print(" | ".join(cols))
    for row in results:
        print(" | ".join(str(row[c]) for c in cols))
    return 0


if __name__ == "__main__":
    sys.exit(main())
