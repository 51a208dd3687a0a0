"""Measure retrieval quality on a labelled benchmark, through the real code path.

A benchmark folder in BEIR layout:

- ``corpus.jsonl``: one ``{"_id", "title", "text"}`` per line;
- ``queries.jsonl``: one ``{"_id", "text"}`` per line;
- ``qrels/*.tsv``: tab-separated, header ``query-id corpus-id score``
  (every file is read; ``split`` picks one, e.g. ``test``).

:func:`evaluate_retrieval` writes each corpus document as a text file
(title, blank line, text) into a folder, indexes it with ``Huisclos.index``
(the path of ``huisclos index``), runs every judged query through
``Huisclos.search`` (the path of ``huisclos search``), maps the passages
found to their documents (first passage of each document counts), and
scores the ranking: nDCG@10 (graded gains), Recall@5, Recall@10, MRR@10.

A firm can measure huisclos on its own documents the same way: put them in
``corpus.jsonl`` and label a few dozen real questions in ``qrels``.

Example::

    report = evaluate_retrieval("../shared/data/scifact")
    print(report.ndcg_at_10, report.recall_at_5)
"""

from __future__ import annotations

import csv
import json
import math
import statistics
import tempfile
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote

from huisclos.config import ConfigError, load_settings

__all__ = [
    "RetrievalEvalReport",
    "evaluate_retrieval",
    "load_qrels",
    "ndcg_at",
    "recall_at",
    "reciprocal_rank_at",
]

SEARCH_DEPTH = 40
"""Passages asked per query; enough for 10 distinct documents in practice."""


@dataclass(frozen=True, slots=True)
class RetrievalEvalReport:
    """Scores of one configuration on one benchmark."""

    ndcg_at_10: float
    recall_at_5: float
    recall_at_10: float
    mrr_at_10: float
    queries: int
    seconds: float
    documents: int
    index_seconds: float
    median_query_ms: float
    p95_query_ms: float
    retrieval: str
    embedding_model: str

    def summary(self) -> dict[str, Any]:
        """The ``huisclos eval retrieval --json`` line."""
        return {
            "ndcg@10": self.ndcg_at_10,
            "recall@5": self.recall_at_5,
            "recall@10": self.recall_at_10,
            "mrr@10": self.mrr_at_10,
            "queries": self.queries,
            "seconds": self.seconds,
        }

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# --- metrics ------------------------------------------------------------------


def ndcg_at(ranked: list[str], relevant: dict[str, int], k: int = 10) -> float:
    """Normalised discounted cumulative gain at ``k`` (gain = relevance grade)."""
    dcg = sum(relevant.get(doc, 0) / math.log2(i + 2) for i, doc in enumerate(ranked[:k]))
    ideal = sorted((g for g in relevant.values() if g > 0), reverse=True)[:k]
    idcg = sum(g / math.log2(i + 2) for i, g in enumerate(ideal))
    return dcg / idcg if idcg else 0.0


def recall_at(ranked: list[str], relevant: dict[str, int], k: int) -> float:
    """Share of the relevant documents found in the first ``k``."""
    wanted = {doc for doc, grade in relevant.items() if grade > 0}
    return len(wanted & set(ranked[:k])) / len(wanted) if wanted else 0.0


def reciprocal_rank_at(ranked: list[str], relevant: dict[str, int], k: int = 10) -> float:
    """1 / rank of the first relevant document within ``k`` (0 if none)."""
    for i, doc in enumerate(ranked[:k]):
        if relevant.get(doc, 0) > 0:
            return 1.0 / (i + 1)
    return 0.0


# --- the benchmark folder -------------------------------------------------------


def _jsonl(path: Path) -> Iterator[dict[str, Any]]:
    if not path.is_file():
        raise ConfigError(f"{path} is missing: a BEIR folder has corpus.jsonl and queries.jsonl")
    with path.open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, 1):
            if not line.strip():
                continue
            try:
                item = json.loads(line)
            except ValueError as exc:
                raise ConfigError(f"{path}, line {number}: not JSON ({exc})") from exc
            if not isinstance(item, dict) or "_id" not in item:
                raise ConfigError(f"{path}, line {number}: no _id")
            yield item


def load_qrels(folder: Path, split: str | None = None) -> dict[str, dict[str, int]]:
    """Relevance judgments: query id → {document id: grade}, from ``qrels/*.tsv``."""
    files = sorted((folder / "qrels").glob(f"{split or '*'}.tsv"))
    if not files:
        raise ConfigError(f"no qrels/{split or '*'}.tsv in {folder}")
    qrels: dict[str, dict[str, int]] = {}
    for path in files:
        with path.open(encoding="utf-8", newline="") as handle:
            rows = csv.reader(handle, delimiter="\t")
            header = next(rows, None)
            if header is None or [h.strip() for h in header[:3]] != [
                "query-id",
                "corpus-id",
                "score",
            ]:
                raise ConfigError(f"{path}: the header must be 'query-id corpus-id score'")
            for number, row in enumerate(rows, 2):
                if not row or not "".join(row).strip():
                    continue
                try:
                    query, doc, grade = row[0].strip(), row[1].strip(), int(row[2])
                except (IndexError, ValueError) as exc:
                    raise ConfigError(f"{path}, line {number}: not 'query doc score'") from exc
                qrels.setdefault(query, {})[doc] = grade
    return qrels


def _file_name(doc_id: str) -> str:
    return quote(doc_id, safe="") + ".txt"


def write_corpus(folder: Path, target: Path) -> int:
    """Write each corpus document as ``<id>.txt`` (title, blank line, text); returns how many.

    Files already there with the same content are left alone, so that a kept
    vault re-indexes nothing.
    """
    target.mkdir(parents=True, exist_ok=True)
    count = 0
    for item in _jsonl(folder / "corpus.jsonl"):
        title = str(item.get("title") or "").strip()
        text = str(item.get("text") or "").strip()
        content = f"{title}\n\n{text}\n" if title else f"{text}\n"
        path = target / _file_name(str(item["_id"]))
        if not path.is_file() or path.read_text(encoding="utf-8") != content:
            path.write_text(content, encoding="utf-8")
        count += 1
    return count


# --- the run ----------------------------------------------------------------------


def evaluate_retrieval(
    folder: str | Path,
    *,
    split: str | None = None,
    limit: int | None = None,
    home: str | Path | None = None,
    **overrides: Any,
) -> RetrievalEvalReport:
    """Index a BEIR folder's corpus, run its judged queries, score the rankings.

    Args:
        folder: the benchmark (``corpus.jsonl``, ``queries.jsonl``, ``qrels/``).
        split: read only ``qrels/<split>.tsv``.
        limit: score only the first ``limit`` judged queries.
        home: vault to use and keep (the corpus files go beside it, in
            ``<home>-corpus``), so that later runs with other retrieval
            settings re-index nothing; by default a throw-away vault.
        overrides: settings, e.g. ``retrieval="dense"``, ``embedding_model="minilm"``.

    Raises:
        ConfigError: the folder is not in BEIR layout.
    """
    from huisclos.pipeline.api import Huisclos

    folder = Path(folder)
    qrels = load_qrels(folder, split)
    queries = [
        (str(q["_id"]), str(q.get("text") or ""))
        for q in _jsonl(folder / "queries.jsonl")
        if str(q["_id"]) in qrels and str(q.get("text") or "").strip()
    ]
    if limit is not None:
        queries = queries[:limit]
    if not queries:
        raise ConfigError(f"no query of {folder / 'queries.jsonl'} has a relevance judgment")
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="huisclos-eval-") as scratch:
        vault = Path(home) if home else Path(scratch) / "vault"
        corpus = vault.with_name(vault.name + "-corpus")
        documents = write_corpus(folder, corpus)
        settings = load_settings(
            home=vault, key_source=overrides.pop("key_source", "file"), **overrides
        )
        with Huisclos(settings) as hc:
            hc.index(corpus)
            index_seconds = time.perf_counter() - started
            hc.search("warm up", top_k=1)  # loads the embedding model before the clock runs
            scores: list[tuple[float, float, float, float]] = []
            latencies: list[float] = []
            for query_id, text in queries:
                began = time.perf_counter()
                hits = hc.search(text, top_k=SEARCH_DEPTH)
                latencies.append(time.perf_counter() - began)
                ranked = list(dict.fromkeys(unquote(hit.path[: -len(".txt")]) for hit in hits))
                relevant = qrels[query_id]
                scores.append(
                    (
                        ndcg_at(ranked, relevant, 10),
                        recall_at(ranked, relevant, 5),
                        recall_at(ranked, relevant, 10),
                        reciprocal_rank_at(ranked, relevant, 10),
                    )
                )
    count = len(scores)
    means = [round(sum(column) / count, 4) for column in zip(*scores, strict=True)]
    latencies.sort()
    return RetrievalEvalReport(
        ndcg_at_10=means[0],
        recall_at_5=means[1],
        recall_at_10=means[2],
        mrr_at_10=means[3],
        queries=count,
        seconds=round(time.perf_counter() - started, 3),
        documents=documents,
        index_seconds=round(index_seconds, 3),
        median_query_ms=round(statistics.median(latencies) * 1000, 1),
        p95_query_ms=round(latencies[int(0.95 * (count - 1))] * 1000, 1),
        retrieval=settings.retrieval,
        embedding_model=settings.embedding_model,
    )
