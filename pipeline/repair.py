"""``huisclos repair``: bring a damaged vault back to exactly the files on disk.

The indexed folders are the source of truth: every chunk can be derived
again by converting its file. What cannot be derived is kept: the keys (in the
manifest), the exclusions of forgotten clients and paths, and the audit trail.

1. With the vault's writer lock held, the embedded vector store and the keyword
   index are opened and read through; one that cannot be (damaged files: a
   truncated or overwritten ``chroma.sqlite3``, a corrupt ``sparse.sqlite3``)
   is deleted, to be rebuilt.
2. The vault is opened and every chunk is checked against the manifest
   (:meth:`Vault.reconcile` with ``full``): chunks of unknown files are
   deleted, files with missing chunks are marked to be read again.
3. Every root the vault indexed is indexed again (an incremental run: only
   the files marked are converted and embedded), and a ``repair`` record is
   added to the audit trail.

A damaged manifest is not repaired (it holds the wrapped keys): restore it
from a backup.
"""

from __future__ import annotations

import logging
import shutil
import sqlite3
from contextlib import closing
from dataclasses import asdict, dataclass, field
from pathlib import Path

from huisclos.config import Settings, StoreError
from huisclos.index.disk import disk_failure
from huisclos.index.store import EncryptedStore
from huisclos.index.vault import writer_lock
from huisclos.pipeline.api import Huisclos
from huisclos.pipeline.indexing.ingest import IndexReport, Progress, recover

__all__ = ["RepairReport", "repair_vault"]

log = logging.getLogger(__name__)

_LOCK_WAIT = 120.0


@dataclass(slots=True)
class RepairReport:
    """What a repair found and did."""

    store_rebuilt: bool = False
    """The embedded vector store could not be read and was rebuilt from the files."""
    keyword_index_rebuilt: bool = False
    """The keyword index could not be read and was rebuilt from the files."""
    stray_files: int = 0
    """Files unknown to the manifest whose chunks were deleted."""
    reread: int = 0
    """Files whose chunks were missing or incomplete, read again."""
    missing_roots: list[str] = field(default_factory=list)
    """Indexed folders not found (their files are read again once they are back)."""
    index: IndexReport = field(default_factory=IndexReport)

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


def _store_unreadable(settings: Settings) -> bool:
    """Whether the embedded store fails to open or to be read through (damaged files)."""
    from chromadb.api.shared_system_client import SharedSystemClient

    try:
        probe = EncryptedStore(settings)
        for space in probe.spaces:
            probe.count(space)
            probe.ids(space)
    except StoreError as exc:
        if exc.__cause__ is None or disk_failure(settings.home, exc) is not None:
            raise  # a refusal (another model's vectors), a full or read-only disk: not damage
        log.warning("the vector store cannot be read (%s)", type(exc.__cause__).__name__)
        return True
    finally:
        SharedSystemClient.clear_system_cache()  # the vault opens it afresh
    return False


def _sparse_unreadable(path: Path) -> bool:
    if not path.exists():
        return False
    try:
        with closing(sqlite3.connect(path, timeout=30.0)) as db:
            result = db.execute("PRAGMA quick_check").fetchone()
    except sqlite3.Error:
        return True
    return result is None or result[0] != "ok"


def repair_vault(settings: Settings, progress: Progress | None = None) -> RepairReport:
    """Rebuild what is damaged or out of step in a vault from the files on disk.

    Returns:
        What was found and done, with the report of the index run.

    Raises:
        VaultBusyError: another process kept the vault busy.
        VaultKeyError, StoreError: the vault cannot be opened even so (a wrong
            key, a damaged manifest).
    """
    home = settings.home
    report = RepairReport()
    if home.is_dir():
        with writer_lock(home, _LOCK_WAIT):
            if not settings.chroma_host and _store_unreadable(settings):
                shutil.rmtree(home / "chroma")
                report.store_rebuilt = True
            sparse = home / "sparse.sqlite3"
            if _sparse_unreadable(sparse):
                for suffix in ("", "-wal", "-shm"):
                    Path(f"{sparse}{suffix}").unlink(missing_ok=True)
                report.keyword_index_rebuilt = True
    with Huisclos(settings, guard=False) as hc:
        vault = hc.vault
        with vault.writing(wait=_LOCK_WAIT):
            recover(vault)  # as every run: interrupted writes, keywords from the store
            vault.reconcile(full=True)
            report.stray_files = vault.reconciled["stray"]
            report.reread = vault.reconciled["reread"]
        roots = hc.roots()
        report.missing_roots = [str(root) for root in roots if not root.is_dir()]
        present = [root for root in roots if root.is_dir()]
        if present:
            report.index = hc.index(*present, progress=progress)
        vault.audit.append(
            "repair",
            details={
                "store_rebuilt": int(report.store_rebuilt),
                "keyword_index_rebuilt": int(report.keyword_index_rebuilt),
                "stray_files": report.stray_files,
                "reread": report.reread,
                "missing_roots": len(report.missing_roots),
                "added": report.index.added,
                "updated": report.index.updated,
                "removed": report.index.removed,
                "chunks_written": report.index.chunks_written,
            },
        )
    log.info(
        "repair: store rebuilt %s, keyword index rebuilt %s, %d stray files, %d re-read",
        report.store_rebuilt,
        report.keyword_index_rebuilt,
        report.stray_files,
        report.reread,
    )
    return report
