"""The right to erasure: forget a client, or a file or folder, for good.

Forgetting a client deletes its chunks, its manifest rows and its name, and
destroys its data key; then the master key is rotated, so that a copy of the
vault taken before (a backup) cannot be opened with the keys in use, and the
store and manifest are compacted, so that no erased byte (ciphertext, or an
embedding, which is stored in clear) stays on disk. Forgetting a path does
the same for the files at or under it, without key destruction: the client's
other files keep their key.

What was forgotten is excluded from indexing by a blind id (no name is
kept): a folder still on disk is not indexed again until the user says so
with :meth:`Forgetter.include` (``huisclos include``).

Crash safety: the manifest rows go in one transaction that also records the
chunks' file ids as intents; if the process dies before the store deletion,
the next writer's recovery deletes those chunks.
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from huisclos.config import ConfigError, VaultKeyError
from huisclos.connectors.scan import SHARED_CLIENT, client_of
from huisclos.index.keys import key_source, write_durably
from huisclos.index.manifest import FileRecord
from huisclos.index.vault import Vault
from huisclos.pipeline.indexing.ingest import recover

__all__ = ["ForgetReport", "Forgetter"]

log = logging.getLogger(__name__)

_LOCK_WAIT_SECONDS = 120.0
_PENDING = "erasure.pending"
"""Present from just before an erasure commits until it is rotated and compacted."""


@dataclass(slots=True)
class ForgetReport:
    """What an erasure removed."""

    target: str
    """"client" or "path"."""
    client_ids: list[str] = field(default_factory=list)
    file_ids: list[str] = field(default_factory=list)
    files: int = 0
    chunks: int = 0
    key_destroyed: bool = False
    master_key: str = "unchanged"
    """Where the rotated master key now is ("file", "keyring"), or why not rotated."""
    still_on_disk: list[str] = field(default_factory=list)
    """Folders or files that still exist: excluded from indexing until included again."""
    chunks_kept: int = 0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class Forgetter:
    """Erasure and re-inclusion on one vault."""

    def __init__(self, vault: Vault) -> None:
        self.vault = vault

    def forget_client(
        self, client: str, *, rotate: bool = True, compact: bool = True, trigger: str = "forget"
    ) -> ForgetReport:
        """Erase everything of ``client`` and destroy its data key.

        Args:
            client: the client's name, as its folder is named (``_shared`` for
                files directly in a root).
            rotate: rotate the master key afterwards (default), so that old
                copies of the vault cannot be read with the keys in use.
            compact: rebuild the store without the erased records (default);
                several erasures in a row call :meth:`finish` once instead.

        Raises:
            ConfigError: no client of that name was ever indexed.
            StoreError: another process kept the vault busy for two minutes.
        """
        vault = self.vault
        client, client_id = vault.find_client(client)
        report = ForgetReport("client", client_ids=[client_id])
        with vault.writing(wait=_LOCK_WAIT_SECONDS):
            self.finish_pending()
            recover(vault)
            rows = vault.manifest.files_of_client(client_id)
            known = client_id in vault.manifest.clients() or bool(rows)
            if not known and not vault.manifest.has_key(client_id):
                if client_id in vault.manifest.exclusions()["client"]:
                    raise ConfigError(f"the client {client!r} was already forgotten")
                raise ConfigError(
                    f"no client named {client!r} in the index (names are case-sensitive; "
                    "`huisclos status` lists them)"
                )
            roots = self.vault.roots().values()
            if client == SHARED_CLIENT:
                report.still_on_disk = [
                    str(root) for root in roots if any(p.is_file() for p in root.iterdir())
                ]
            else:
                report.still_on_disk = [
                    str(root / client) for root in roots if (root / client).exists()
                ]
            self._drop_queued(lambda rel: client_of(rel) == client)
            self._set_pending(rotate=rotate or not compact)
            with vault.manifest.transaction():
                vault.manifest.add_intents(row.file_id for row in rows)
                vault.manifest.delete_client(client_id)
                vault.manifest.exclude("client", client_id)
            vault.keys.forget(client_id)
            report.key_destroyed = True
            self._fill(report, rows)
            self._audit(report, trigger)
            vault.delete_client(client_id)
            recover(vault)
            if rotate:
                report.master_key = self.rotate()
            if compact:
                report.chunks_kept = self.compact()
                self.done()
        log.info("forgot client %s: %d files, %d chunks", client_id, report.files, report.chunks)
        return report

    def forget_files(self, rows: list[FileRecord], *, trigger: str = "forget") -> ForgetReport:
        """Erase these files' records (retention: their sources are gone); no exclusion.

        The caller holds the writer lock and compacts afterwards (:meth:`compact`).
        """
        vault = self.vault
        report = ForgetReport("path", client_ids=sorted({row.client_id for row in rows}))
        with vault.writing(wait=_LOCK_WAIT_SECONDS):
            self._set_pending(rotate=False)
            with vault.manifest.transaction():
                vault.manifest.add_intents(row.file_id for row in rows)
                vault.manifest.delete_file_ids(row.file_id for row in rows)
            self._fill(report, rows)
            self._audit(report, trigger)
            recover(vault)
        return report

    def compact(self) -> int:
        """Rebuild the store, the keyword index and the manifest: erased bytes leave no trace."""
        with self.vault.writing(wait=_LOCK_WAIT_SECONDS):
            kept = self.vault.store.compact()
            self.vault.keywords.compact()
            self.vault.manifest.compact()
        return kept

    def rotate(self) -> str:
        """Rotate the master key after erasures; says where the new key is, or why not."""
        if key_source(self.vault.settings) == "passphrase":  # only the user can choose a new one
            return "not rotated: passphrase (run `huisclos keys rotate`)"
        return self.vault.rotate_master_key()

    def done(self) -> None:
        """Every step of the erasures is finished: clear the pending mark."""
        self._pending_path.unlink(missing_ok=True)

    # --- an erasure is finished even if the process dies half-way -------------------

    @property
    def _pending_path(self) -> Path:
        return self.vault.settings.home / _PENDING

    def _set_pending(self, *, rotate: bool) -> None:
        path = self._pending_path
        if path.exists() and json.loads(path.read_text() or "{}").get("rotate"):
            rotate = True
        write_durably(path, json.dumps({"rotate": rotate}).encode())

    def finish_pending(self) -> bool:
        """Rotate and compact after an erasure that was cut short; returns whether one was.

        Called before any erasure, index run, retention pass or watcher start.
        """
        path = self._pending_path
        if not path.exists():
            return False
        with self.vault.writing(wait=_LOCK_WAIT_SECONDS):
            if not path.exists():
                return False
            try:
                rotate = bool(json.loads(path.read_text() or "{}").get("rotate"))
            except ValueError:
                rotate = True
            recover(self.vault)
            master_key = self.rotate() if rotate else "unchanged"
            kept = self.compact()
            self.vault.audit.append(
                "erasure.finish", details={"master_key": master_key, "chunks_kept": kept}
            )
            path.unlink()
            log.info("finished an interrupted erasure")
        return True

    def _audit(self, report: ForgetReport, trigger: str) -> None:
        """The erasure is committed: record it now, whatever happens next."""
        self.vault.audit.append(
            trigger,
            clients=report.client_ids,
            files=report.file_ids,
            details={
                "target": report.target,
                "files": report.files,
                "chunks": report.chunks,
                "key_destroyed": report.key_destroyed,
                "still_on_disk": len(report.still_on_disk),
            },
        )

    def forget_path(self, path: str | Path) -> ForgetReport:
        """Erase the files at or under ``path`` (a file or a folder inside a root).

        Raises:
            ConfigError: the path is in no indexed root, or nothing is indexed there.
        """
        vault = self.vault
        root_id, root, rel = self._locate(Path(path))
        report = ForgetReport("path")
        with vault.writing(wait=_LOCK_WAIT_SECONDS):
            self.finish_pending()
            recover(vault)
            rows = self._rows_at(root_id, rel)
            if not rows:
                raise ConfigError(f"nothing is indexed at {path}")
            if (root / rel).exists():
                report.still_on_disk = [str(root / rel)]
            self._drop_queued(lambda queued: queued == rel or queued.startswith(rel + "/"))
            self._set_pending(rotate=False)
            with vault.manifest.transaction():
                vault.manifest.add_intents(row.file_id for row in rows)
                vault.manifest.delete_file_ids(row.file_id for row in rows)
                vault.manifest.exclude("path", vault.keys.blind("path", f"{root_id}\x00{rel}"))
            report.client_ids = sorted({row.client_id for row in rows})
            self._fill(report, rows)
            self._audit(report, "forget")
            recover(vault)
            report.chunks_kept = self.compact()
            self.done()
        log.info("forgot a path: %d files, %d chunks", report.files, report.chunks)
        return report

    def include(self, *, client: str | None = None, path: str | Path | None = None) -> bool:
        """Let a forgotten client or path be indexed again; returns whether it was excluded."""
        vault = self.vault
        if client is not None:
            kind, blind_id = "client", vault.find_client(client)[1]
        elif path is not None:
            root_id, _, rel = self._locate(Path(path))
            kind, blind_id = "path", vault.keys.blind("path", f"{root_id}\x00{rel}")
        else:
            raise ConfigError("say which client or path to include again")
        with vault.writing(wait=_LOCK_WAIT_SECONDS), vault.manifest.transaction():
            return vault.manifest.include(kind, blind_id)

    # --- helpers -------------------------------------------------------------------

    def _locate(self, path: Path) -> tuple[str, Path, str]:
        """(root id, root, path relative to it) of a path inside an indexed root."""
        target = path.expanduser().resolve()
        for root_id, root in self.vault.roots().items():
            if target == root:
                raise ConfigError(
                    f"{path} is a whole root: forget its clients one by one, or stop "
                    "indexing it and delete the vault"
                )
            if target.is_relative_to(root):
                return root_id, root, target.relative_to(root).as_posix()
        raise ConfigError(f"{path} is not inside a folder that huisclos indexes")

    def _rows_at(self, root_id: str, rel: str) -> list[FileRecord]:
        vault = self.vault
        rows = []
        for row in vault.manifest.files_under(root_id).values():
            try:
                cipher = vault.keys.cipher(row.client_id, create=False)
            except VaultKeyError:
                continue
            found = cipher.decrypt(row.path_ct, row.file_id)
            if found == rel or found.startswith(rel + "/"):
                rows.append(row)
        return rows

    def _drop_queued(self, matches: Any) -> None:
        """Remove changes the watcher accepted but has not indexed yet."""
        manifest, cipher = self.vault.manifest, self.vault.keys.vault_cipher
        drop = [
            queue_id
            for queue_id, root_id, rel_ct in manifest.queued()
            if matches(cipher.decrypt(rel_ct, root_id))
        ]
        if drop:
            manifest.queue_remove(drop)

    @staticmethod
    def _fill(report: ForgetReport, rows: list[FileRecord]) -> None:
        report.file_ids = sorted(row.file_id for row in rows)
        report.files = len(rows)
        report.chunks = sum(row.chunks for row in rows)
