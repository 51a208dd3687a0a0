"""The vault: one directory holding the store, the manifest and the keys.

Layout of ``HUISCLOS_HOME`` (mode 0700)::

    vault.json          key source, KDF salt, key-check records (no secret)
    master.key          the master key, 0600 (only with the "file" key source)
    manifest.sqlite3    files, clients, wrapped keys, intents, exclusions
    sparse.sqlite3      the keyword index: keyed term hashes and counts per chunk
    chroma/             the embedded Chroma store (absent with a Chroma server)
    config.toml         optional settings
    writer.lock         held by the one process writing (an index run, a watcher's batch)
    watcher.lock        held by the one ``huisclos watch`` of this vault
    audit.jsonl         the audit trail, a keyed hash chain (+ .head, .lock)
    watch.json          the watcher's state, for `huisclos status` (counts, no paths)
"""

from __future__ import annotations

import fcntl
import logging
import os
import sqlite3
import threading
import time
import unicodedata
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from huisclos.config import Settings, StoreError, TamperedError, VaultBusyError, VaultKeyError
from huisclos.index.audit_log import AuditLog
from huisclos.index.disk import disk_failure
from huisclos.index.keys import (
    ClientCipher,
    KeyChain,
    add_key_check,
    load_master_key,
    new_master_key,
    store_master_key,
)
from huisclos.index.keywords import KeywordEntry, KeywordIndex
from huisclos.index.manifest import Manifest
from huisclos.index.store import ENGLISH, MAIN, ChunkRecord, EncryptedStore

__all__ = ["AUDIT_FILE", "Vault", "writer_lock"]

AUDIT_FILE = "audit.jsonl"

log = logging.getLogger(__name__)


def _flock(path: Path, wait: float, stop: threading.Event | None, busy: str) -> int:
    """An exclusive ``flock`` on ``path``; returns the descriptor that holds it."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    deadline = time.monotonic() + wait
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return fd
        except BlockingIOError:
            if time.monotonic() >= deadline or (stop is not None and stop.is_set()):
                os.close(fd)
                raise VaultBusyError(busy) from None
            time.sleep(0.05)


@contextmanager
def writer_lock(home: Path, wait: float) -> Iterator[None]:
    """Hold a vault's writer lock without opening the vault (``huisclos repair``).

    Not re-entrant, and not to be held by a process that opens the vault meanwhile.

    Raises:
        VaultBusyError: another process kept it for ``wait`` seconds.
    """
    fd = _flock(home / "writer.lock", wait, None, _BUSY)
    try:
        yield
    finally:
        os.close(fd)


_BUSY = (
    "another huisclos process is writing to this vault (an index run, an erasure, or a "
    "`huisclos watch` indexing a batch); try again when it is done"
)


class Vault:
    """An opened vault: keys unlocked, manifest and store connected.

    Raises (from the constructor):
        VaultKeyError: the master key is missing or wrong.
        StoreError: the manifest or the store cannot be opened.
    """

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        home = settings.home
        try:
            home.mkdir(parents=True, exist_ok=True, mode=0o700)
            os.chmod(home, 0o700)
        except OSError as exc:
            clearer = disk_failure(home, exc) if home.is_dir() else None
            raise clearer or StoreError(f"cannot create the vault directory {home}: {exc}") from exc
        master = load_master_key(settings)
        self.manifest = Manifest(home / "manifest.sqlite3")
        self.keys = KeyChain(master, self.manifest, reload=lambda: load_master_key(settings))
        del master
        self.store = EncryptedStore(settings, owner=self.keys.blind("store", "owner"))
        self.keywords = KeywordIndex(
            home / "sparse.sqlite3", k1=settings.bm25_k1, b=settings.bm25_b
        )
        self.audit = AuditLog(home / AUDIT_FILE, self.keys.audit_key)
        self._registered: dict[str, ClientCipher] = {}
        self._writer = threading.RLock()
        self._writer_depth = 0
        self._writer_fd = -1
        self.reconciled: Counter[str] = Counter()
        """What :meth:`reconcile` found since the vault was opened: "stray", "reread" files."""

    def close(self) -> None:
        self.manifest.close()
        self.keywords.close()

    def write_chunks(
        self,
        records: Sequence[ChunkRecord],
        entries: Sequence[KeywordEntry],
        english: Sequence[ChunkRecord] = (),
    ) -> int:
        """Write chunks to the vector store and the keyword index; returns how many.

        ``english``: second embeddings of English chunks (the store's English space).
        The caller has recorded their file ids as intents: a crash in between
        leaves chunks that the next run's recovery deletes from all of them.
        """
        written = self.store.upsert(records)
        if english:
            self.store.upsert(english, ENGLISH)
        self.keywords.add(entries)
        return written

    def delete_files(self, file_ids: Sequence[str]) -> None:
        """Delete every chunk of these files from the vector store and the keyword index."""
        if file_ids:
            self.store.delete_files(file_ids)
            self.keywords.delete_files(file_ids)

    def delete_client(self, client_id: str) -> None:
        """Delete every chunk of one client from the vector store and the keyword index."""
        self.store.delete_client(client_id)
        self.keywords.delete_client(client_id)

    @contextmanager
    def writing(self, wait: float = 0.0, stop: threading.Event | None = None) -> Iterator[None]:
        """Hold the writer lock: one writing process per vault, one writing thread in it.

        Re-entrant within a thread. ``wait``: seconds to wait for another
        writer to finish (a watcher holds it only while it indexes a batch);
        ``stop``: give up waiting when this event is set.

        Raises:
            StoreError: another process (an index run, a watcher's batch, an
                erasure) kept the lock for ``wait`` seconds; or a write failed,
                with a clear message when the vault is read-only or its disk full.
        """
        with self._writer:
            if self._writer_depth == 0:
                self._writer_fd = _flock(self.settings.home / "writer.lock", wait, stop, _BUSY)
            self._writer_depth += 1
            try:
                yield
            except (StoreError, OSError, sqlite3.Error) as exc:
                # a refusal of our own (busy, tampered, wrong model) is clear already
                ours = isinstance(exc, StoreError) and exc.__cause__ is None
                outermost = self._writer_depth == 1 and not ours
                clearer = disk_failure(self.settings.home, exc) if outermost else None
                if clearer is None:
                    raise
                raise clearer from exc
            finally:
                self._writer_depth -= 1
                if self._writer_depth == 0:
                    os.close(self._writer_fd)  # releases the lock
                    self._writer_fd = -1

    def reconcile(self, *, full: bool = False) -> tuple[int, int]:
        """Make the vector store and the keyword index hold exactly the manifest's chunks.

        The manifest is the reference. Chunks of a file it does not hold (a row
        lost, chunks left behind) are deleted everywhere; a file whose chunks are
        missing or incomplete anywhere has the rest deleted and is marked to be
        read again: the next scan of its root re-indexes it. Unless ``full``, the
        ids are listed only when the counts disagree (counting is cheap, listing a
        million ids is not). The caller holds the writer lock.

        Returns:
            (files whose stray chunks were deleted, files marked to be read again).
        """
        if not full:  # one sum, not every row: this runs before each watcher batch
            total = self.manifest.chunk_total()
            if self.store.count() == total == self.keywords.count():
                return 0, 0
        wanted = {row.file_id: row.chunks for row in self.manifest.all_files() if row.chunks}
        stray: set[str] = set()
        damaged: set[str] = set()
        held_main = Counter(chunk.rsplit("-", 1)[0] for chunk in self.store.ids(MAIN))
        for held in (held_main, Counter(self.keywords.chunks_by_file())):
            stray |= held.keys() - wanted.keys()
            damaged |= {file_id for file_id, n in wanted.items() if held.get(file_id, 0) != n}
        if ENGLISH in self.store.spaces:
            english = {chunk.rsplit("-", 1)[0] for chunk in self.store.ids(ENGLISH)}
            stray |= english - wanted.keys()
        self.reconciled.update(stray=len(stray), reread=len(damaged))
        if stray or damaged:
            self.delete_files(sorted(stray | damaged))
            self.manifest.forget_chunks(sorted(damaged))
            log.warning(
                "store out of step with the manifest: chunks of %d unknown files deleted, "
                "%d files to be read again",
                len(stray),
                len(damaged),
            )
        return len(stray), len(damaged)

    @contextmanager
    def watching(self) -> Iterator[None]:
        """Held by the one ``huisclos watch`` of this vault for as long as it runs.

        Raises:
            StoreError: another watcher runs on this vault.
        """
        fd = _flock(
            self.settings.home / "watcher.lock",
            0.0,
            None,
            "a `huisclos watch` already keeps this vault up to date; stop it first",
        )
        try:
            yield
        finally:
            os.close(fd)

    def client_cipher(self, client: str) -> ClientCipher:
        """The cipher of a client by name, registering the client on first use."""
        client_id = self.keys.client_id(client)
        known = client_id in self._registered or self.manifest.has_key(client_id)
        cipher = self.keys.cipher(client_id)
        if self._registered.get(client_id) is not cipher:  # once per client key, not per file
            self.manifest.put_client(client_id, cipher.encrypt(client, client_id))
            self._registered[client_id] = cipher
            if not known:
                self.audit.append("key.create", clients=[client_id])
        return cipher

    def find_client(self, client: str) -> tuple[str, str]:
        """The client's name as filed and its id, whatever Unicode form it was typed in.

        A folder named "Martin Kiné" on a share may be stored decomposed (NFD)
        while a user types it composed (NFC): both find the same client. An
        unknown name is returned as given, with its id.
        """
        known = set(self.manifest.clients()) | self.manifest.exclusions()["client"]
        for form in dict.fromkeys(
            (client, *(unicodedata.normalize(f, client) for f in ("NFC", "NFD")))
        ):
            client_id = self.keys.client_id(form)
            if client_id in known or self.manifest.has_key(client_id):
                return form, client_id
        return client, self.keys.client_id(client)

    def rotate_master_key(self, new_passphrase: str | None = None) -> str:
        """Replace the master key; every key is re-wrapped, no record re-encrypted.

        Holds the writer lock. Returns the key source that now holds the new
        key ("file", "keyring", or "passphrase": the user holds it). Copies of
        the vault taken before can no longer be opened with the new key.

        Raises:
            VaultKeyError: a passphrase vault and no new passphrase.
            StoreError: another process is writing.
        """
        settings = self.settings
        with self.writing(wait=60.0):
            new_master = new_master_key(settings, new_passphrase)
            add_key_check(settings, new_master)
            with self.manifest.transaction():
                kek = self.keys.rewrap(new_master)
            source = store_master_key(settings, new_master)
            self.keys.adopt(new_master)
            add_key_check(settings, new_master, only=True)
            with self.manifest.transaction():
                dropped = self.manifest.drop_keys_except(kek)
            del new_master
            log.info("master key rotated (%s): %d old wrapped keys dropped", source, dropped)
            self.audit.append("key.rotate", details={"source": source, "keys": dropped})
            return source

    def roots(self) -> dict[str, Path]:
        """The roots this vault has indexed, by root id."""
        cipher = self.keys.vault_cipher
        return {
            root_id: Path(cipher.decrypt(path_ct, root_id))
            for root_id, path_ct in self.manifest.roots().items()
        }

    def client_names(self) -> dict[str, str]:
        """Decrypted client names by client id (clients whose key still exists)."""
        names: dict[str, str] = {}
        for client_id, name_ct in self.manifest.clients().items():
            try:
                names[client_id] = self.keys.cipher(client_id, create=False).decrypt(
                    name_ct, client_id
                )
            except TamperedError:
                log.warning("the name of client %s failed authentication; left out", client_id)
            except VaultKeyError:
                if self.manifest.has_key(client_id):
                    raise
        return names
