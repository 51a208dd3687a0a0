"""The keyword index: BM25 over keyed term hashes, no plaintext term on disk.

A SQLite file in the vault (``sparse.sqlite3``) holds, per chunk, its length
in terms and, per (term, chunk), how often the term occurs; per term, in how
many chunks it occurs. A term is never stored as text: it is a 64-bit keyed
hash under a key derived from the chunk's client data key
(:meth:`ClientCipher.term_ids`). So the file cannot be searched for a word
without that client's key, the postings of two clients cannot be linked, and
erasing a client (its key destroyed) leaves nothing that can ever be matched
against a word, even in old backups.

What it does reveal, like the embeddings: how many distinct terms a chunk
has, and how often each opaque term recurs (frequency analysis could guess
the most common ones); see the README.

A query term is hashed under the key of each client searched; its document
frequency is the sum over those clients, so scores are the same as those of
one BM25 index over the searched chunks (Lucene's idf and saturation).

Large indexes. Within a term, postings are kept in order of *impact* (the
term's BM25 saturation in the chunk, for a chunk of typical length), each with
the chunk's length, so that a term's best postings can be read first and
scored without looking up their chunks. A query whose terms have at most
``budget`` postings in all (any query on an index of a few ten thousand
chunks) reads them all: exact BM25. A larger one reads about ``budget``:
rare terms whole, what they leave to the common terms by impact (more to the
rarer of them); the ``rescore`` best chunks found then get the postings that
were not read, so that their scores, and the order of the ``top_k`` returned,
are exact; a chunk missed by the reading can be missing. On a million chunks,
where a common word occurs in a third of them, this reads some 5 % of the
postings and keeps most of the exact five best (``bench/scale.py``).
"""

from __future__ import annotations

import logging
import math
import sqlite3
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from huisclos.config import StoreError
from huisclos.index.keys import ClientCipher
from huisclos.index.sqlite import LocalDatabase
from huisclos.index.terms import analyse, document_terms

__all__ = ["KeywordEntry", "KeywordIndex", "keyword_entry"]

log = logging.getLogger(__name__)

SCHEMA = """
CREATE TABLE IF NOT EXISTS chunks(
    id      INTEGER PRIMARY KEY,
    chunk   TEXT NOT NULL UNIQUE,
    file    TEXT NOT NULL,
    client  TEXT NOT NULL,
    length  INTEGER NOT NULL,
    lang    TEXT NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS chunks_file ON chunks(file);
CREATE INDEX IF NOT EXISTS chunks_client ON chunks(client);
CREATE TABLE IF NOT EXISTS terms(
    term    INTEGER PRIMARY KEY,
    df      INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS stats(
    client  TEXT PRIMARY KEY,
    chunks  INTEGER NOT NULL,
    terms   INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS meta(
    key     TEXT PRIMARY KEY,
    value   TEXT NOT NULL
);
"""

POSTINGS = """
CREATE TABLE IF NOT EXISTS postings(
    term    INTEGER NOT NULL,
    impact  INTEGER NOT NULL,
    chunk   INTEGER NOT NULL,
    tf      INTEGER NOT NULL,
    length  INTEGER NOT NULL,
    PRIMARY KEY (term, impact, chunk)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS postings_by_chunk ON postings(chunk, term, tf);
"""
"""Postings in impact order within a term (with their chunk's length, to be scored alone);
by chunk for deletions and for the postings a bounded reading left."""

ANALYSIS = "3"
"""Version of the text analysis (:mod:`huisclos.index.terms`) and of the postings' layout
the index was made with. A change makes the index outdated: the next index run rebuilds it
from the store. 3: postings in impact order with lengths, document frequencies kept."""

_PARAMS = 900
"""Bound parameters per statement (SQLite allows more; this keeps plans simple)."""
_IMPACT_SCALE = 1000
"""Impacts are BM25 saturations (0 to 1) in thousandths."""
_REFERENCE_LENGTH = 100.0
"""Chunk length (in terms) for which impacts are computed: about that of a 200-token chunk.
Impacts only order the postings; scores use the index's real average length."""
_COLUMNS = 500
"""Scalar subqueries per statement when finding where a term's reading stops."""


@dataclass(frozen=True, slots=True)
class KeywordEntry:
    """A chunk for the keyword index: its ids and its term ids with counts."""

    chunk_id: str
    file_id: str
    client_id: str
    terms: Mapping[int, int]
    language: str = ""
    """The passage's language ("fr", "en"), as the analysis told it."""


@dataclass(frozen=True, slots=True)
class _Term:
    """A query term as a search sees it: document frequency, idf, its hashes."""

    df: int
    idf: float
    hashes: dict[int, int]
    """Hash → its document frequency (the hashes that occur)."""
    by_client: dict[str, int]
    """Client id → the term's hash under that client's key (the hashes that occur)."""


class KeywordIndex(LocalDatabase):
    """BM25 search over keyed term hashes (see the module docstring).

    Args:
        path: the SQLite file.
        k1, b: BM25 term-frequency saturation and length normalisation.
        budget: a query with at most this many postings reads them all (exact BM25);
            a larger one reads about as many.
        rescore: chunks of a larger query that get the postings it did not read.
    """

    def __init__(
        self,
        path: Path,
        *,
        k1: float = 1.2,
        b: float = 0.75,
        budget: int = 40_000,
        rescore: int = 500,
    ) -> None:
        super().__init__(path, "keyword index")
        self.k1, self.b = k1, b
        self.budget, self.rescore = budget, rescore
        try:
            self.db.executescript(SCHEMA)
            columns = {row[1] for row in self.db.execute("PRAGMA table_info(chunks)")}
            if "lang" not in columns:  # made before languages were kept: rebuild it
                self.db.execute("ALTER TABLE chunks ADD COLUMN lang TEXT NOT NULL DEFAULT ''")
                self.db.execute("DELETE FROM meta WHERE key = 'analysis'")
            self.db.execute("CREATE INDEX IF NOT EXISTS chunks_lang ON chunks(lang)")
            postings = {row[1] for row in self.db.execute("PRAGMA table_info(postings)")}
            self._legacy = bool(postings) and "length" not in postings
            """Postings of the earlier layout: searched exactly until clear() rebuilds them."""
            if self._legacy:
                self.db.execute("DELETE FROM meta WHERE key = 'analysis'")
            else:
                self.db.executescript(POSTINGS)
            self.db.execute(  # a new index takes the current analysis; an unversioned one is old
                "INSERT OR IGNORE INTO meta(key, value) SELECT 'analysis', ? "
                "WHERE NOT EXISTS (SELECT 1 FROM chunks)",
                (ANALYSIS,),
            )
        except sqlite3.Error as exc:
            raise StoreError(f"cannot open the keyword index {path}: {exc}") from exc
        path.chmod(0o600)

    @property
    def outdated(self) -> bool:
        """Whether the postings were made by another version of the text analysis."""
        rows = self._run("read its version", "SELECT value FROM meta WHERE key = 'analysis'")
        return not rows or rows[0][0] != ANALYSIS

    def _run(self, action: str, sql: str, args: Sequence[object] = ()) -> list[tuple[Any, ...]]:
        try:
            return self.db.execute(sql, tuple(args)).fetchall()
        except sqlite3.Error as exc:
            raise StoreError(f"the keyword index failed to {action}: {exc}") from exc

    def count(self) -> int:
        """Chunks in the index."""
        row = self._run("count", "SELECT COALESCE(SUM(chunks), 0) FROM stats")
        return int(row[0][0])

    def languages(self, chunk_ids: Sequence[str]) -> dict[str, str]:
        """The language of each of these chunks that the index holds."""
        found: dict[str, str] = {}
        for start in range(0, len(chunk_ids), _PARAMS):
            part = list(chunk_ids[start : start + _PARAMS])
            marks = ",".join("?" * len(part))
            for chunk, lang in self._run(
                "read languages", f"SELECT chunk, lang FROM chunks WHERE chunk IN ({marks})", part
            ):
                found[str(chunk)] = str(lang)
        return found

    def count_in(self, language: str) -> int:
        """Chunks in ``language``."""
        rows = self._run("count", "SELECT COUNT(*) FROM chunks WHERE lang = ?", [language])
        return int(rows[0][0])

    def holds(self, language: str) -> bool:
        """Whether any chunk is in ``language`` (at once, however large the index)."""
        rows = self._run(
            "look up a language", "SELECT EXISTS(SELECT 1 FROM chunks WHERE lang = ?)", [language]
        )
        return bool(rows[0][0])

    def chunks_in(self, language: str) -> dict[str, str]:
        """Chunk id → file id of every chunk in ``language``."""
        rows = self._run("list chunks", "SELECT chunk, file FROM chunks WHERE lang = ?", [language])
        return {str(chunk): str(file) for chunk, file in rows}

    def file_ids(self) -> set[str]:
        """Files with chunks in the index."""
        return {str(row[0]) for row in self._run("list files", "SELECT DISTINCT file FROM chunks")}

    def chunks_by_file(self) -> dict[str, int]:
        """How many chunks the index holds for each file id."""
        rows = self._run("count chunks", "SELECT file, COUNT(*) FROM chunks GROUP BY file")
        return {str(file_id): int(n) for file_id, n in rows}

    def impact(self, tf: int, length: int) -> int:
        """The order of a posting within its term: BM25 saturation for a typical length."""
        norm = self.k1 * (1.0 - self.b + self.b * length / _REFERENCE_LENGTH)
        return round(_IMPACT_SCALE * tf / (tf + norm))

    # --- writes -----------------------------------------------------------------

    def add(self, entries: Iterable[KeywordEntry]) -> int:
        """Add chunks (replacing any with the same chunk id); returns how many."""
        entries = list(entries)
        if not entries:
            return 0
        try:
            with self.transaction():
                self._delete_where("chunk", [e.chunk_id for e in entries])
                db = self.db
                rows: list[tuple[int, ...]] = []
                frequencies: Counter[int] = Counter()
                totals: dict[str, list[int]] = {}
                for entry in entries:
                    length = sum(entry.terms.values())
                    cursor = db.execute(
                        "INSERT INTO chunks(chunk, file, client, length, lang) "
                        "VALUES (?, ?, ?, ?, ?)",
                        (entry.chunk_id, entry.file_id, entry.client_id, length, entry.language),
                    )
                    rowid = int(cursor.lastrowid or 0)
                    if self._legacy:
                        rows.extend((term, rowid, tf) for term, tf in entry.terms.items())
                    else:
                        rows.extend(
                            (term, self.impact(tf, length), rowid, tf, length)
                            for term, tf in entry.terms.items()
                        )
                    frequencies.update(entry.terms.keys())
                    total = totals.setdefault(entry.client_id, [0, 0])
                    total[0] += 1
                    total[1] += length
                rows.sort()  # in key order: each B-tree page is visited once
                columns: tuple[str, ...] = ("term", "chunk", "tf")
                if not self._legacy:
                    columns = ("term", "impact", "chunk", "tf", "length")
                db.executemany(
                    f"INSERT INTO postings({', '.join(columns)}) "
                    f"VALUES ({', '.join('?' * len(columns))})",
                    rows,
                )
                if not self._legacy:
                    db.executemany(
                        "INSERT INTO terms(term, df) VALUES (?, ?) "
                        "ON CONFLICT(term) DO UPDATE SET df = df + excluded.df",
                        sorted(frequencies.items()),
                    )
                db.executemany(
                    "INSERT INTO stats(client, chunks, terms) VALUES (?, ?, ?) "
                    "ON CONFLICT(client) DO UPDATE SET chunks = chunks + excluded.chunks, "
                    "terms = terms + excluded.terms",
                    [(client, chunks, terms) for client, (chunks, terms) in totals.items()],
                )
        except sqlite3.Error as exc:
            raise StoreError(f"the keyword index failed to write chunks: {exc}") from exc
        return len(entries)

    def _delete_where(self, column: str, values: Sequence[str]) -> None:
        """Delete chunks whose ``column`` is in ``values`` (inside a transaction)."""
        db = self.db
        for start in range(0, len(values), _PARAMS):
            part = list(values[start : start + _PARAMS])
            where = f"{column} IN ({','.join('?' * len(part))})"
            totals = db.execute(
                f"SELECT client, COUNT(*), SUM(length) FROM chunks WHERE {where} GROUP BY client",
                part,
            ).fetchall()
            if not totals:
                continue
            chunks = f"SELECT id FROM chunks WHERE {where}"
            if not self._legacy:  # the earlier layout kept no document frequencies
                gone = db.execute(
                    f"SELECT term, COUNT(*) FROM postings WHERE chunk IN ({chunks}) GROUP BY term",
                    part,
                ).fetchall()
                db.executemany(
                    "UPDATE terms SET df = df - ? WHERE term = ?", [(n, t) for t, n in gone]
                )
                db.executemany(
                    "DELETE FROM terms WHERE term = ? AND df <= 0", [(t,) for t, _ in gone]
                )
            db.execute(f"DELETE FROM postings WHERE chunk IN ({chunks})", part)
            db.execute(f"DELETE FROM chunks WHERE {where}", part)
            db.executemany(
                "UPDATE stats SET chunks = chunks - ?, terms = terms - ? WHERE client = ?",
                [(chunks, terms, client) for client, chunks, terms in totals],
            )
        db.execute("DELETE FROM stats WHERE chunks <= 0")

    def delete_files(self, file_ids: Sequence[str]) -> None:
        """Delete every chunk of these files (idempotent)."""
        self._delete("file", list(file_ids))

    def delete_client(self, client_id: str) -> None:
        """Delete every chunk of one client (idempotent)."""
        self._delete("client", [client_id])

    def _delete(self, column: str, values: Sequence[str]) -> None:
        try:
            with self.transaction():
                self._delete_where(column, values)
        except sqlite3.Error as exc:
            raise StoreError(f"the keyword index failed to delete chunks: {exc}") from exc

    def clear(self) -> None:
        """Delete everything, and take the current text analysis and layout (before a rebuild)."""
        try:
            with self.transaction():
                if self._legacy:
                    self.db.execute("DROP TABLE postings")
                    for statement in POSTINGS.split(";"):
                        if statement.strip():
                            self.db.execute(statement)
                else:
                    self.db.execute("DELETE FROM postings")
                self.db.execute("DELETE FROM terms")
                self.db.execute("DELETE FROM chunks")
                self.db.execute("DELETE FROM stats")
                self.db.execute(
                    "INSERT OR REPLACE INTO meta(key, value) VALUES ('analysis', ?)", (ANALYSIS,)
                )
        except sqlite3.Error as exc:
            raise StoreError(f"the keyword index failed to clear: {exc}") from exc
        self._legacy = False

    # --- search -----------------------------------------------------------------

    def search(
        self,
        query: Sequence[Sequence[int]],
        top_k: int,
        client_ids: Sequence[str],
    ) -> list[tuple[str, float]]:
        """The ``top_k`` chunks of ``client_ids`` with the best BM25 score.

        Args:
            query: for each query term, its hashes under the key of each
                client searched.
            client_ids: the clients searched (their chunks only are scored).

        Returns:
            (chunk id, score) pairs, best first; chunks sharing no term with
            the query are not returned. Exact BM25 scores; on a large index,
            the chunks are those of the bounded reading (module docstring).
        """
        if not client_ids or not query:
            return []
        marks = ",".join("?" * len(client_ids))
        got = self._run(
            "read statistics",
            f"SELECT COALESCE(SUM(chunks), 0), COALESCE(SUM(terms), 0) FROM stats "
            f"WHERE client IN ({marks})",
            list(client_ids),
        )
        total_chunks, total_terms = (int(v) for v in got[0])
        if not total_chunks:
            return []
        frequencies = self._document_frequencies({h for hashes in query for h in hashes})
        terms: list[_Term] = []
        for hashes in query:
            df = sum(frequencies.get(h, 0) for h in hashes)
            if df:
                idf = math.log(1.0 + (total_chunks - df + 0.5) / (df + 0.5))
                pairs = [
                    (c, h) for c, h in zip(client_ids, hashes, strict=False) if h in frequencies
                ]
                terms.append(_Term(df, idf, {h: frequencies[h] for _, h in pairs}, dict(pairs)))
        if not terms:
            return []
        average = total_terms / total_chunks
        if self._legacy:
            scope = client_ids[0] if len(client_ids) == 1 else None
            return self._legacy_search(terms, top_k, average, scope)
        exact = sum(term.df for term in terms) <= self.budget
        floors = {} if exact else self._floors(terms)
        idfs: dict[int, float] = {}
        for term in terms:
            for h in term.hashes:
                idfs[h] = idfs.get(h, 0.0) + term.idf
        limit = top_k if exact else max(top_k, self.rescore)
        found = self._read(idfs, floors, limit, average)
        chunks = self._chunk_rows(list(found))
        searched = set(client_ids)
        scores = {  # of the clients searched (another: a 64-bit collision; none: just deleted)
            rowid: score
            for rowid, score in found.items()
            if rowid in chunks and chunks[rowid][1] in searched
        }
        if floors:
            self._complete(scores, chunks, terms, floors, idfs, average)
        best = sorted(scores, key=lambda rowid: -scores[rowid])[:top_k]
        return [(chunks[rowid][0], scores[rowid]) for rowid in best]

    def _complete(
        self,
        scores: dict[int, float],
        chunks: dict[int, tuple[str, str, int]],
        terms: list[_Term],
        floors: dict[int, int],
        idfs: dict[int, float],
        average: float,
    ) -> None:
        """Add to the chunks found the postings that a bounded reading left (below floors)."""
        left: dict[str, list[int]] = {}  # client → its hashes read in part
        for term in terms:
            for client, h in term.by_client.items():
                if h in floors:
                    left.setdefault(client, []).append(h)
        pairs = [(rowid, h) for rowid in scores for h in left.get(chunks[rowid][1], ())]
        k1, b = self.k1, self.b
        for rowid, h, tf, impact in self._postings(pairs):
            if impact < floors[h]:
                norm = k1 * (1.0 - b + b * chunks[rowid][2] / average)
                scores[rowid] += idfs[h] * tf * (k1 + 1.0) / (tf + norm)

    def _read(
        self, idfs: dict[int, float], floors: dict[int, int], limit: int, average: float
    ) -> dict[int, float]:
        """BM25 over the postings read (those at or above each hash's floor) of the ``limit``
        best chunks, by rowid."""
        k1, b, average = float(self.k1), float(self.b), float(average)
        # our own ints and floats, inlined: no limit on the number of bound parameters
        values = ",".join(f"({h:d}, {w!r}, {floors.get(h, 0):d})" for h, w in idfs.items())
        rows = self._run(
            "search",
            f"WITH q(term, idf, floor) AS (VALUES {values}) "
            f"SELECT p.chunk, SUM(q.idf * p.tf * {k1 + 1.0!r} / "
            f"(p.tf + {k1!r} * (1.0 - {b!r} + {b!r} * p.length / {average!r}))) AS score "
            "FROM q JOIN postings p ON p.term = q.term AND p.impact >= q.floor "
            "GROUP BY p.chunk ORDER BY score DESC LIMIT ?",
            [limit],
        )
        return {int(rowid): float(score) for rowid, score in rows}

    def _legacy_search(
        self, terms: list[_Term], top_k: int, average: float, scope: str | None
    ) -> list[tuple[str, float]]:
        """Exact BM25 over postings of the earlier layout (no lengths in them)."""
        weights: dict[int, float] = {}
        for term in terms:
            for h in term.hashes:
                weights[h] = weights.get(h, 0.0) + term.idf
        values = ",".join(f"({h:d}, {idf!r})" for h, idf in weights.items())
        k1, b, average = float(self.k1), float(self.b), float(average)
        where, params = ("WHERE c.client = ?", [scope]) if scope else ("", [])
        rows = self._run(
            "search",
            f"WITH q(term, idf) AS (VALUES {values}) "
            f"SELECT c.chunk, SUM(q.idf * p.tf * {k1 + 1.0!r} / "
            f"(p.tf + {k1!r} * (1.0 - {b!r} + {b!r} * c.length / {average!r}))) AS score "
            "FROM q JOIN postings p ON p.term = q.term JOIN chunks c ON c.id = p.chunk "
            f"{where} GROUP BY c.id ORDER BY score DESC LIMIT ?",
            [*params, top_k],
        )
        return [(str(chunk), float(score)) for chunk, score in rows]

    def _floors(self, terms: list[_Term]) -> dict[int, int]:
        """The impact below which each hash's postings are not read (hashes read whole: none).

        The budget goes to the terms rarest first, in shares weighted by idf squared
        (a rare term is read whole, what it leaves goes to the others); a term's share
        goes to its hashes (one per client) in proportion to their postings.
        """
        order = sorted(terms, key=lambda term: term.df)
        shares = [term.idf**2 for term in order]
        left, weight = float(self.budget), sum(shares)
        floors: dict[int, int] = {}
        probes: list[tuple[int, int]] = []  # (hash, how many of its best postings to read)
        for term, share in zip(order, shares, strict=True):
            take = min(term.df, int(left * share / weight)) if weight > 0 else 0
            left, weight = left - take, weight - share
            if take >= term.df:
                continue
            for h, df in term.hashes.items():
                wanted = math.ceil(take * df / term.df)
                if wanted <= 0:
                    floors[h] = _IMPACT_SCALE + 1  # none read
                elif wanted < df:
                    probes.append((h, wanted))
        for start in range(0, len(probes), _COLUMNS):
            part = probes[start : start + _COLUMNS]
            columns = ", ".join(
                f"(SELECT impact FROM postings WHERE term = {h:d} "
                f"ORDER BY impact DESC LIMIT 1 OFFSET {wanted - 1:d})"
                for h, wanted in part
            )
            row = self._run("plan a search", f"SELECT {columns}")[0]
            for (h, _), floor in zip(part, row, strict=True):
                if floor is not None:  # None: fewer postings than counted (read them all)
                    floors[h] = int(floor)
        return floors

    def _chunk_rows(self, rowids: list[int]) -> dict[int, tuple[str, str, int]]:
        """Rowid → (chunk id, client id, length) of these chunks."""
        found: dict[int, tuple[str, str, int]] = {}
        for start in range(0, len(rowids), _PARAMS):
            part = rowids[start : start + _PARAMS]
            marks = ",".join("?" * len(part))
            for rowid, chunk, client, length in self._run(
                "read chunks",
                f"SELECT id, chunk, client, length FROM chunks WHERE id IN ({marks})",
                part,
            ):
                found[int(rowid)] = (str(chunk), str(client), int(length))
        return found

    def _postings(self, pairs: list[tuple[int, int]]) -> list[tuple[int, int, int, int]]:
        """(rowid, hash, tf, impact) of the postings among these (rowid, hash) pairs."""
        found: list[tuple[int, int, int, int]] = []
        step = 5_000
        for start in range(0, len(pairs), step):
            values = ",".join(f"({rowid:d}, {h:d})" for rowid, h in pairs[start : start + step])
            found.extend(
                self._run(
                    "read postings",
                    f"WITH k(chunk, term) AS (VALUES {values}) "
                    "SELECT k.chunk, k.term, p.tf, p.impact FROM k "
                    "JOIN postings p INDEXED BY postings_by_chunk "
                    "ON p.chunk = k.chunk AND p.term = k.term",
                )
            )
        return found

    def _document_frequencies(self, hashes: set[int]) -> dict[int, int]:
        """Document frequency of each hash that occurs (counted, in an earlier layout)."""
        found: dict[int, int] = {}
        ordered = sorted(hashes)
        sql = (
            "SELECT term, COUNT(*) FROM postings WHERE term IN ({}) GROUP BY term"
            if self._legacy
            else "SELECT term, df FROM terms WHERE term IN ({})"
        )
        for start in range(0, len(ordered), _PARAMS):
            part = ordered[start : start + _PARAMS]
            for term, df in self._run(
                "read term statistics", sql.format(",".join("?" * len(part))), part
            ):
                found[int(term)] = int(df)
        return found


def keyword_entry(
    cipher: ClientCipher, chunk_id: str, file_id: str, text: str, labels: str = ""
) -> KeywordEntry:
    """The keyword-index entry of a chunk: its text's terms, plus those of ``labels``.

    ``labels`` are words that describe the chunk without being in it (the
    file's path, the attachment's name, the sheet or slide title), counted
    once each so that "contrat Dupont" finds Dupont's contract.
    """
    language, terms = analyse(text)
    for term in document_terms(labels, language):
        terms[term] += 1
    ids = cipher.term_ids(terms)
    counts = dict(zip(ids, terms.values(), strict=True))
    return KeywordEntry(chunk_id, file_id, cipher.client_id, counts, language)
