"""The manifest: what huisclos knows about every file it has seen.

A SQLite database in the vault (WAL mode). Paths and client names are held
only as ciphertext (under the client's data key) and as keyed hashes for
lookups; sizes, times, states and counts are in clear.

Crash safety rests on *intents*: before chunks of a new ``file_id`` are
written to the store, the id is recorded as an intent. A committed file row
clears it. After a crash, an intent whose id no row holds names orphaned
chunks, which :meth:`Manifest.pending_intents` returns for deletion.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from huisclos.config import StoreError
from huisclos.index.sqlite import LocalDatabase

__all__ = ["FileRecord", "Manifest"]

SCHEMA = """
CREATE TABLE IF NOT EXISTS files(
    path_id    TEXT PRIMARY KEY,
    root_id    TEXT NOT NULL,
    client_id  TEXT NOT NULL,
    file_id    TEXT NOT NULL UNIQUE,
    path_ct    TEXT NOT NULL,
    content_id TEXT,
    kind       TEXT NOT NULL,
    size       INTEGER NOT NULL,
    mtime_ns   INTEGER NOT NULL,
    state      TEXT NOT NULL CHECK (state IN ('indexed', 'failed')),
    reason     TEXT,
    chunks     INTEGER NOT NULL DEFAULT 0,
    updated    REAL NOT NULL,
    personal   TEXT
);
CREATE INDEX IF NOT EXISTS files_root ON files(root_id);
CREATE INDEX IF NOT EXISTS files_content ON files(content_id);
CREATE INDEX IF NOT EXISTS files_client ON files(client_id);
CREATE TABLE IF NOT EXISTS clients(client_id TEXT PRIMARY KEY, name_ct TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS client_keys(client_id TEXT PRIMARY KEY, wrapped BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS wrapped_keys(
    name    TEXT NOT NULL,
    kek     TEXT NOT NULL,
    wrapped BLOB NOT NULL,
    PRIMARY KEY (name, kek)
);
CREATE TABLE IF NOT EXISTS exclusions(
    kind    TEXT NOT NULL CHECK (kind IN ('client', 'path')),
    id      TEXT NOT NULL,
    created REAL NOT NULL,
    PRIMARY KEY (kind, id)
);
CREATE TABLE IF NOT EXISTS roots(
    root_id   TEXT PRIMARY KEY,
    path_ct   TEXT NOT NULL,
    last_seen REAL
);
CREATE TABLE IF NOT EXISTS intents(file_id TEXT PRIMARY KEY, created REAL NOT NULL);
CREATE TABLE IF NOT EXISTS watch_queue(
    id      INTEGER PRIMARY KEY AUTOINCREMENT,
    root_id TEXT NOT NULL,
    rel_ct  TEXT NOT NULL,
    added   REAL NOT NULL
);
"""


@dataclass(frozen=True, slots=True)
class FileRecord:
    """One row of the manifest. ``path_ct`` is ciphertext of the relative path."""

    path_id: str
    root_id: str
    client_id: str
    file_id: str
    path_ct: str
    content_id: str | None
    kind: str
    size: int
    mtime_ns: int
    state: str
    reason: str | None
    chunks: int
    updated: float
    personal: str | None = None
    """Counts of personal identifiers found in the text, as JSON (``{"email": 2}``)."""


_COLUMNS = ", ".join(FileRecord.__slots__)


class Manifest(LocalDatabase):
    """Access to the manifest database.

    Each thread gets its own SQLite connection (WAL: readers never block the
    writer), so a question can be answered while an index run writes.
    """

    def __init__(self, path: Path) -> None:
        super().__init__(path, "manifest")
        try:
            self._db.executescript(SCHEMA)
            columns = {row[1] for row in self._db.execute("PRAGMA table_info(files)")}
            if "personal" not in columns:  # a manifest from before personal-data counts
                self._db.execute("ALTER TABLE files ADD COLUMN personal TEXT")
            columns = {row[1] for row in self._db.execute("PRAGMA table_info(roots)")}
            if "last_seen" not in columns:  # a manifest from before retention
                self._db.execute("ALTER TABLE roots ADD COLUMN last_seen REAL")
        except sqlite3.Error as exc:
            raise StoreError(f"cannot open the manifest {path}: {exc}") from exc
        path.chmod(0o600)

    @property
    def _db(self) -> sqlite3.Connection:
        return self.db

    # files ------------------------------------------------------------------

    def _rows(self, sql: str, args: Iterable[object] = ()) -> list[FileRecord]:
        return [FileRecord(*row) for row in self._db.execute(sql, tuple(args))]

    def files_under(self, root_id: str) -> dict[str, FileRecord]:
        """Every file recorded for a root, by ``path_id``."""
        rows = self._rows(f"SELECT {_COLUMNS} FROM files WHERE root_id = ?", [root_id])
        return {row.path_id: row for row in rows}

    def all_files(self) -> list[FileRecord]:
        return self._rows(f"SELECT {_COLUMNS} FROM files")

    def _rows_where_in(self, column: str, values: Iterable[str]) -> list[FileRecord]:
        ids = list(dict.fromkeys(values))
        rows: list[FileRecord] = []
        for start in range(0, len(ids), 500):
            part = ids[start : start + 500]
            marks = ",".join("?" * len(part))
            rows += self._rows(f"SELECT {_COLUMNS} FROM files WHERE {column} IN ({marks})", part)
        return rows

    def by_file_ids(self, file_ids: Iterable[str]) -> dict[str, FileRecord]:
        return {row.file_id: row for row in self._rows_where_in("file_id", file_ids)}

    def by_content(self, content_id: str) -> list[FileRecord]:
        return self._rows_where_in("content_id", [content_id])

    def by_path_ids(self, path_ids: Iterable[str]) -> dict[str, FileRecord]:
        return {row.path_id: row for row in self._rows_where_in("path_id", path_ids)}

    def put_file(self, record: FileRecord) -> None:
        """Insert or replace the row of ``record.path_id``; clears its intent."""
        marks = ",".join("?" * len(FileRecord.__slots__))
        self._db.execute(
            f"INSERT OR REPLACE INTO files({_COLUMNS}) VALUES ({marks})",
            [getattr(record, name) for name in FileRecord.__slots__],
        )
        self._db.execute("DELETE FROM intents WHERE file_id = ?", (record.file_id,))

    def delete_file(self, path_id: str) -> None:
        self._db.execute("DELETE FROM files WHERE path_id = ?", (path_id,))

    def invalidate(self, file_ids: Iterable[str]) -> None:
        """Make the next index run re-read these files (their stored records are bad)."""
        self.write_many(
            "UPDATE files SET content_id = NULL, size = -1 WHERE file_id = ?",
            [(file_id,) for file_id in file_ids],
        )

    def forget_chunks(self, file_ids: Iterable[str]) -> None:
        """Record that these files have no chunk left; the next index run re-reads them."""
        self.write_many(
            "UPDATE files SET content_id = NULL, size = -1, chunks = 0 WHERE file_id = ?",
            [(file_id,) for file_id in file_ids],
        )

    def touch(self, path_id: str, size: int, mtime_ns: int) -> None:
        self._db.execute(
            "UPDATE files SET size = ?, mtime_ns = ?, updated = ? WHERE path_id = ?",
            (size, mtime_ns, time.time(), path_id),
        )

    # the watcher's queue: changes accepted, not yet indexed -------------------

    def queue_add(self, entries: Iterable[tuple[str, str]]) -> list[int]:
        """Record (root_id, encrypted relative path) entries; returns their ids."""
        now = time.time()
        ids = []
        with self.transaction():
            for root_id, rel_ct in entries:
                cursor = self._db.execute(
                    "INSERT INTO watch_queue(root_id, rel_ct, added) VALUES (?, ?, ?)",
                    (root_id, rel_ct, now),
                )
                ids.append(int(cursor.lastrowid or 0))
        return ids

    def queue_remove(self, ids: Iterable[int]) -> None:
        self.write_many("DELETE FROM watch_queue WHERE id = ?", [(i,) for i in ids])

    def queue_length(self) -> int:
        return int(self._db.execute("SELECT count(*) FROM watch_queue").fetchone()[0])

    def queued(self) -> list[tuple[int, str, str]]:
        """Every queued (id, root_id, rel_ct), oldest first."""
        cursor = self._db.execute("SELECT id, root_id, rel_ct FROM watch_queue ORDER BY id")
        return [(int(i), str(r), str(c)) for i, r, c in cursor]

    # intents ----------------------------------------------------------------

    def add_intents(self, file_ids: Iterable[str]) -> None:
        now = time.time()
        self.write_many(
            "INSERT OR IGNORE INTO intents(file_id, created) VALUES (?, ?)",
            [(file_id, now) for file_id in file_ids],
        )

    def clear_intents(self, file_ids: Iterable[str]) -> None:
        self.write_many("DELETE FROM intents WHERE file_id = ?", [(f,) for f in file_ids])

    def pending_intents(self) -> list[str]:
        """File ids whose chunks may be in the store but belong to no file."""
        rows = self._db.execute(
            "SELECT file_id FROM intents WHERE file_id NOT IN (SELECT file_id FROM files)"
        )
        return [row[0] for row in rows]

    # clients, roots, keys -----------------------------------------------------

    def put_client(self, client_id: str, name_ct: str) -> None:
        self._db.execute(
            "INSERT OR IGNORE INTO clients(client_id, name_ct) VALUES (?, ?)", (client_id, name_ct)
        )

    def clients(self) -> dict[str, str]:
        """Encrypted client names by client id."""
        return dict(self._db.execute("SELECT client_id, name_ct FROM clients").fetchall())

    def put_root(self, root_id: str, path_ct: str) -> None:
        self._db.execute(
            "INSERT OR IGNORE INTO roots(root_id, path_ct) VALUES (?, ?)", (root_id, path_ct)
        )

    def roots(self) -> dict[str, str]:
        """Encrypted root paths by root id."""
        return dict(self._db.execute("SELECT root_id, path_ct FROM roots").fetchall())

    def root_seen(self, root_id: str, when: float) -> None:
        """Record that a full scan of the root saw every file it holds at ``when``."""
        self._db.execute("UPDATE roots SET last_seen = ? WHERE root_id = ?", (when, root_id))

    def roots_last_seen(self) -> dict[str, float | None]:
        return dict(self._db.execute("SELECT root_id, last_seen FROM roots").fetchall())

    def files_of_client(self, client_id: str) -> list[FileRecord]:
        return self._rows(f"SELECT {_COLUMNS} FROM files WHERE client_id = ?", [client_id])

    def has_key(self, name: str) -> bool:
        row = self._db.execute("SELECT 1 FROM wrapped_keys WHERE name = ? LIMIT 1", (name,))
        return row.fetchone() is not None

    def get_wrapped_key(self, name: str, kek: str) -> bytes | None:
        row = self._db.execute(
            "SELECT wrapped FROM wrapped_keys WHERE name = ? AND kek = ?", (name, kek)
        ).fetchone()
        return None if row is None else bytes(row[0])

    def put_wrapped_key(self, name: str, kek: str, wrapped: bytes) -> None:
        """Store a wrapped key unless one is there already (the first writer wins)."""
        self._db.execute(
            "INSERT OR IGNORE INTO wrapped_keys(name, kek, wrapped) VALUES (?, ?, ?)",
            (name, kek, wrapped),
        )

    def wrapped_keys(self, kek: str) -> dict[str, bytes]:
        rows = self._db.execute("SELECT name, wrapped FROM wrapped_keys WHERE kek = ?", (kek,))
        return {name: bytes(wrapped) for name, wrapped in rows}

    def has_wrapped_keys(self) -> bool:
        return self._db.execute("SELECT 1 FROM wrapped_keys LIMIT 1").fetchone() is not None

    def adopt_legacy_keys(self, kek: str, vault_keys: bytes) -> None:
        """Store the vault keys under ``kek`` and, for a vault made before keys were
        wrapped per master key, move its client keys there: one transaction."""
        with self.transaction():
            self._db.execute(
                "INSERT OR IGNORE INTO wrapped_keys(name, kek, wrapped) "
                "SELECT client_id, ?, wrapped FROM client_keys",
                (kek,),
            )
            self._db.execute("DELETE FROM client_keys")
            self._db.execute(
                "INSERT OR IGNORE INTO wrapped_keys(name, kek, wrapped) VALUES (?, ?, ?)",
                ("__vault__", kek, vault_keys),
            )

    def drop_keys_except(self, kek: str) -> int:
        """Delete keys wrapped under any other master key; returns how many.

        Raises:
            StoreError: some key has no copy under ``kek`` (nothing is deleted).
        """
        uncovered = self._db.execute(
            "SELECT COUNT(DISTINCT name) FROM wrapped_keys WHERE name NOT IN "
            "(SELECT name FROM wrapped_keys WHERE kek = ?)",
            (kek,),
        ).fetchone()[0]
        if uncovered:
            raise StoreError(
                f"{uncovered} key(s) are not wrapped under the new master key; old keys kept"
            )
        cursor = self._db.execute("DELETE FROM wrapped_keys WHERE kek != ?", (kek,))
        return cursor.rowcount

    def delete_client(self, client_id: str) -> None:
        """Delete a client's files, name and data key (in the caller's transaction)."""
        for sql in (
            "DELETE FROM files WHERE client_id = ?",
            "DELETE FROM clients WHERE client_id = ?",
            "DELETE FROM wrapped_keys WHERE name = ?",
        ):
            self._db.execute(sql, (client_id,))

    def delete_file_ids(self, file_ids: Iterable[str]) -> None:
        self.write_many("DELETE FROM files WHERE file_id = ?", [(f,) for f in file_ids])

    # exclusions: what was forgotten and must not be indexed again unasked ----

    def exclude(self, kind: str, blind_id: str) -> None:
        self._db.execute(
            "INSERT OR IGNORE INTO exclusions(kind, id, created) VALUES (?, ?, ?)",
            (kind, blind_id, time.time()),
        )

    def include(self, kind: str, blind_id: str) -> bool:
        cursor = self._db.execute(
            "DELETE FROM exclusions WHERE kind = ? AND id = ?", (kind, blind_id)
        )
        return cursor.rowcount > 0

    def exclusions(self) -> dict[str, set[str]]:
        """Blind ids of excluded clients and paths: ``{"client": {...}, "path": {...}}``."""
        found: dict[str, set[str]] = {"client": set(), "path": set()}
        for kind, blind_id in self._db.execute("SELECT kind, id FROM exclusions"):
            found[kind].add(blind_id)
        return found

    # statistics -----------------------------------------------------------

    def counts_by_client(self) -> list[tuple[str, int, int, int]]:
        """(client_id, files, chunks, failed) for each client with files."""
        rows = self._db.execute(
            "SELECT client_id, COUNT(*), SUM(chunks), SUM(state = 'failed') "
            "FROM files GROUP BY client_id"
        )
        return [(cid, int(n), int(c or 0), int(f or 0)) for cid, n, c, f in rows]

    def chunk_total(self) -> int:
        """Chunks the indexed files have, in all."""
        row = self._db.execute("SELECT COALESCE(SUM(chunks), 0) FROM files").fetchone()
        return int(row[0])

    def last_update(self) -> float | None:
        """When a file was last recorded (indexed, failed or re-checked), if ever."""
        row = self._db.execute("SELECT MAX(updated) FROM files").fetchone()
        return float(row[0]) if row and row[0] is not None else None

    def failures(self) -> list[FileRecord]:
        return self._rows(f"SELECT {_COLUMNS} FROM files WHERE state = 'failed'")
