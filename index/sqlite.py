"""SQLite databases of the vault: one connection per thread, WAL, erased bytes zeroed."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from huisclos.config import StoreError
from huisclos.index.faults import write_step

__all__ = ["LocalDatabase"]


class LocalDatabase:
    """A SQLite file shared by threads (each its own connection) and processes.

    WAL lets readers go on while a writer writes; ``synchronous=FULL`` makes
    commits durable; ``secure_delete`` zeroes erased rows instead of leaving
    them in free pages.
    """

    def __init__(self, path: Path, what: str) -> None:
        self._path = path
        self._what = what
        self._local = threading.local()
        self._connections: list[sqlite3.Connection] = []
        self._lock = threading.Lock()

    @property
    def db(self) -> sqlite3.Connection:
        """This thread's connection (opened on first use)."""
        db: sqlite3.Connection | None = getattr(self._local, "db", None)
        if db is None:
            try:
                db = sqlite3.connect(
                    self._path, isolation_level=None, timeout=30.0, check_same_thread=False
                )
                db.execute("PRAGMA journal_mode=WAL")
                db.execute("PRAGMA synchronous=FULL")  # key rotations and erasures must last
                db.execute("PRAGMA secure_delete=ON")  # erased rows are zeroed, not left free
            except sqlite3.Error as exc:
                raise StoreError(f"cannot open the {self._what} {self._path}: {exc}") from exc
            self._local.db = db
            with self._lock:
                self._connections.append(db)
        return db

    def close(self) -> None:
        with self._lock:
            connections, self._connections = self._connections, []
        for db in connections:
            db.close()
        self._local = threading.local()

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """Group writes atomically; nested use is not supported."""
        try:
            self.db.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as exc:
            raise StoreError(f"the {self._what} is locked or unwritable: {exc}") from exc
        try:
            yield
            write_step(f"before the {self._what} commit")
            self.db.execute("COMMIT")
        except BaseException as exc:
            if self.db.in_transaction:  # SQLite may have rolled back itself (disk full)
                self.db.execute("ROLLBACK")
            if isinstance(exc, sqlite3.Error):
                raise StoreError(f"the {self._what} could not be written: {exc}") from exc
            raise
        write_step(f"after the {self._what} commit")

    def write_many(self, sql: str, rows: Iterable[Sequence[object]]) -> None:
        """``executemany`` as one transaction (the caller's, if one is open).

        In autocommit mode each row would be its own durable commit: one fsync
        per row, which made recording a batch's intents take 0.5 s.
        """
        if self.db.in_transaction:
            self.db.executemany(sql, rows)
            return
        with self.transaction():
            self.db.executemany(sql, rows)

    def compact(self) -> None:
        """Rewrite the database so that no erased byte remains in it or in its WAL."""
        self.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        self.db.execute("VACUUM")
        self.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
