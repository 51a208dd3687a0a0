"""The keyword index: BM25 over keyed term hashes, no plaintext term on disk.

A SQLite file in the vault (``sparse.sqlite3``) holds, per chunk, its length
in terms and, per (term, chunk), how often the term occurs. A term is never
stored as text: it is a 64-bit keyed hash under a key derived from the
chunk's client data key (:meth:`ClientCipher.term_ids`). So the file cannot
be searched for a word without that client's key, the postings of two clients
cannot be linked, and erasing a client (its key destroyed) leaves nothing
that can ever be matched against a word, even in old backups.

What it does reveal, like the embeddings: how many distinct terms a chunk
has, and how often each opaque term recurs (frequency analysis could guess
the most common ones); see the README.

A query term is hashed under the key of each client searched; its document
frequency is the sum over those clients, so scores are the same as those of
one BM25 index over the searched chunks (Lucene's idf and saturation).
"""

from __future__ import annotations

import logging
import math
import sqlite3
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from huisclos.config import StoreError
from huisclos.index.keys import ClientCipher
from huisclos.index.sqlite import LocalDatabase
from huisclos.index.terms import analyse, document_terms

__all__ = ["SparseEntry", "SparseIndex", "sparse_entry"]

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
CREATE TABLE IF NOT EXISTS postings(
    term    INTEGER NOT NULL,
    chunk   INTEGER NOT NULL,
    tf      INTEGER NOT NULL,
    PRIMARY KEY (term, chunk)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS postings_chunk ON postings(chunk);
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

ANALYSIS = "2"
"""Version of the text analysis (:mod:`huisclos.index.terms`) the postings were made with.
A change makes the index outdated: the next index run rebuilds it from the store."""

_PARAMS = 900
"""Bound parameters per statement (SQLite allows more; this keeps plans simple)."""


@dataclass(frozen=True, slots=True)
class SparseEntry:
    """A chunk for the keyword index: its ids and its term ids with counts."""

    chunk_id: str
    file_id: str
    client_id: str
    terms: Mapping[int, int]
    language: str = ""
    """The passage's language ("fr", "en"), as the analysis told it."""


class SparseIndex(LocalDatabase):
    """BM25 search over keyed term hashes (see the module docstring).

    Args:
        path: the SQLite file.
        k1, b: BM25 term-frequency saturation and length normalisation.
    """

    def __init__(self, path: Path, *, k1: float = 1.2, b: float = 0.75) -> None:
        super().__init__(path, "keyword index")
        self.k1, self.b = k1, b
        try:
            self.db.executescript(SCHEMA)
            columns = {row[1] for row in self.db.execute("PRAGMA table_info(chunks)")}
            if "lang" not in columns:  # made before languages were kept: rebuild it
                self.db.execute("ALTER TABLE chunks ADD COLUMN lang TEXT NOT NULL DEFAULT ''")
                self.db.execute("DELETE FROM meta WHERE key = 'analysis'")
            self.db.execute("CREATE INDEX IF NOT EXISTS chunks_lang ON chunks(lang)")
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

    def chunks_in(self, language: str) -> dict[str, str]:
        """Chunk id → file id of every chunk in ``language``."""
        rows = self._run("list chunks", "SELECT chunk, file FROM chunks WHERE lang = ?", [language])
        return {str(chunk): str(file) for chunk, file in rows}

    def file_ids(self) -> set[str]:
        """Files with chunks in the index."""
        return {str(row[0]) for row in self._run("list files", "SELECT DISTINCT file FROM chunks")}

    # --- writes -----------------------------------------------------------------

    def add(self, entries: Iterable[SparseEntry]) -> int:
        """Add chunks (replacing any with the same chunk id); returns how many."""
        entries = list(entries)
        if not entries:
            return 0
        try:
            with self.transaction():
                self._delete_where("chunk", [e.chunk_id for e in entries])
                db = self.db
                for entry in entries:
                    length = sum(entry.terms.values())
                    cursor = db.execute(
                        "INSERT INTO chunks(chunk, file, client, length, lang) "
                        "VALUES (?, ?, ?, ?, ?)",
                        (entry.chunk_id, entry.file_id, entry.client_id, length, entry.language),
                    )
                    rowid = cursor.lastrowid
                    db.executemany(
                        "INSERT INTO postings(term, chunk, tf) VALUES (?, ?, ?)",
                        [(term, rowid, tf) for term, tf in entry.terms.items()],
                    )
                    db.execute(
                        "INSERT INTO stats(client, chunks, terms) VALUES (?, 1, ?) "
                        "ON CONFLICT(client) DO UPDATE SET chunks = chunks + 1, "
                        "terms = terms + excluded.terms",
                        (entry.client_id, length),
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
            db.execute(
                f"DELETE FROM postings WHERE chunk IN (SELECT id FROM chunks WHERE {where})", part
            )
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
        """Delete everything, and take the current text analysis (before a rebuild)."""
        try:
            with self.transaction():
                self.db.execute("DELETE FROM postings")
                self.db.execute("DELETE FROM chunks")
                self.db.execute("DELETE FROM stats")
                self.db.execute(
                    "INSERT OR REPLACE INTO meta(key, value) VALUES ('analysis', ?)", (ANALYSIS,)
                )
        except sqlite3.Error as exc:
            raise StoreError(f"the keyword index failed to clear: {exc}") from exc

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
            the query are not returned.
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
        weights: dict[int, float] = {}
        for hashes in query:
            df = sum(frequencies.get(h, 0) for h in hashes)
            if not df:
                continue
            idf = math.log(1.0 + (total_chunks - df + 0.5) / (df + 0.5))
            for h in hashes:
                if h in frequencies:
                    weights[h] = weights.get(h, 0.0) + idf
        if not weights:
            return []
        # our own ints and floats, inlined: no limit on the number of bound parameters
        values = ",".join(f"({term:d}, {idf!r})" for term, idf in weights.items())
        params: list[object] = [self.k1, self.k1, self.b, self.b, total_terms / total_chunks]
        scope = ""
        if len(client_ids) == 1:
            scope = "WHERE c.client = ?"
            params.append(client_ids[0])
        rows = self._run(
            "search",
            f"WITH q(term, idf) AS (VALUES {values}) "
            "SELECT c.chunk, SUM(q.idf * p.tf * (? + 1.0) / "
            "(p.tf + ? * (1.0 - ? + ? * c.length / ?))) AS score "
            "FROM q JOIN postings p ON p.term = q.term JOIN chunks c ON c.id = p.chunk "
            f"{scope} GROUP BY c.id ORDER BY score DESC LIMIT ?",
            [*params, top_k],
        )
        return [(str(chunk), float(score)) for chunk, score in rows]

    def _document_frequencies(self, hashes: set[int]) -> dict[int, int]:
        found: dict[int, int] = {}
        ordered = sorted(hashes)
        for start in range(0, len(ordered), _PARAMS):
            part = ordered[start : start + _PARAMS]
            marks = ",".join("?" * len(part))
            for term, df in self._run(
                "read term statistics",
                f"SELECT term, COUNT(*) FROM postings WHERE term IN ({marks}) GROUP BY term",
                part,
            ):
                found[int(term)] = int(df)
        return found


def sparse_entry(
    cipher: ClientCipher, chunk_id: str, file_id: str, text: str, labels: str = ""
) -> SparseEntry:
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
    return SparseEntry(chunk_id, file_id, cipher.client_id, counts, language)
