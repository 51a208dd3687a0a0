"""The vault: one directory holding the store, the manifest and the keys.

Layout of ``HUISCLOS_HOME`` (mode 0700)::

    vault.json          key source, KDF salt, key-check record (no secret)
    master.key          the master key, 0600 (only with the "file" key source)
    manifest.sqlite3    files, clients, wrapped client keys, intents
    chroma/             the embedded Chroma store (absent with a Chroma server)
    config.toml         optional settings
"""

from __future__ import annotations

import logging
import os

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

    def close(self) -> None:
        self.manifest.close()

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
