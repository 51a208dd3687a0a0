"""The vault: one directory holding the store, the manifest and the keys.

Layout of ``HUISCLOS_HOME`` (mode 0700)::

    vault.json          key source, KDF salt, key-check record (no secret)
    master.key          the master key, 0600 (only with the "file" key source)
    manifest.sqlite3    files, clients, wrapped client keys, intents
    chroma/             the embedded Chroma store (absent with a Chroma server)
    config.toml         optional settings
    writer.lock         held by the one process writing (an index run, the watcher)
    watch.json          the watcher's state, for `huisclos status` (counts, no paths)
"""

from __future__ import annotations

import fcntl
import logging
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from huisclos.config import Settings, StoreError
from huisclos.index.keys import ClientCipher, KeyChain, load_master_key
from huisclos.index.manifest import Manifest
from huisclos.index.store import EncryptedStore

__all__ = ["Vault"]

log = logging.getLogger(__name__)


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
            raise StoreError(f"cannot create the vault directory {home}: {exc}") from exc
        master = load_master_key(settings)
        self.manifest = Manifest(home / "manifest.sqlite3")
        self.keys = KeyChain(master, self.manifest)
        del master
        self.store = EncryptedStore(settings)
        self._registered: set[str] = set()
        self._writer = threading.RLock()
        self._writer_depth = 0
        self._writer_fd = -1

    def close(self) -> None:
        self.manifest.close()

    @contextmanager
    def writing(self) -> Iterator[None]:
        """Hold the writer lock: one writing process per vault, one writing thread in it.

        Re-entrant within a thread. Raises:
            StoreError: another process (a running ``huisclos watch``?) holds it.
        """
        with self._writer:
            if self._writer_depth == 0:
                fd = os.open(self.settings.home / "writer.lock", os.O_RDWR | os.O_CREAT, 0o600)
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    os.close(fd)
                    raise StoreError(
                        "another huisclos process is writing to this vault (a running "
                        "`huisclos watch` keeps it up to date); try again when it is done"
                    ) from None
                self._writer_fd = fd
            self._writer_depth += 1
            try:
                yield
            finally:
                self._writer_depth -= 1
                if self._writer_depth == 0:
                    os.close(self._writer_fd)  # releases the lock
                    self._writer_fd = -1

    def client_cipher(self, client: str) -> ClientCipher:
        """The cipher of a client by name, registering the client on first use."""
        client_id = self.keys.client_id(client)
        cipher = self.keys.cipher(client_id)
        if client_id not in self._registered:  # once per client, not once per file
            self.manifest.put_client(client_id, cipher.encrypt(client, client_id))
            self._registered.add(client_id)
        return cipher

    def client_names(self) -> dict[str, str]:
        """Decrypted client names by client id (clients whose key still exists)."""
        names: dict[str, str] = {}
        for client_id, name_ct in self.manifest.clients().items():
            cipher = self.keys.cipher(client_id, create=False)
            names[client_id] = cipher.decrypt(name_ct, client_id)
        return names
