"""Keys and encryption: master key, per-client data keys, blind indexes.

Envelope scheme:

- The *master key* (32 bytes) comes from the OS keyring, a key file with
  0600 permissions, or a passphrase stretched with scrypt; never from code.
  A key-check record in ``vault.json`` tells a wrong key from a right one.
- From the master key, HKDF derives a *wrap key* (wraps client data keys)
  and an *index key* (keyed hashes used as blind indexes for filtering).
- Each client has its own random 256-bit *data key*, stored only wrapped.
  Chunk text, paths and client names are AES-256-GCM ciphertext under it,
  with the record's id as associated data, so a record cannot be swapped
  for another. Destroying a client's wrapped key makes its records unreadable.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import os
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

from huisclos.config import Settings, TamperedError, VaultKeyError

__all__ = ["ClientCipher", "KeyChain", "WrappedKeyStore", "load_master_key"]

log = logging.getLogger(__name__)

KEYRING_SERVICE = "huisclos"
VAULT_FILE = "vault.json"
_CHECK_PLAINTEXT = b"huisclos master key check v1"
_NONCE = 12


def _hkdf(master: bytes, purpose: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=purpose).derive(master)


def _seal(key: bytes, plaintext: bytes, aad: bytes) -> bytes:
    nonce = os.urandom(_NONCE)
    return nonce + AESGCM(key).encrypt(nonce, plaintext, aad)


def _open(key: bytes, blob: bytes, aad: bytes) -> bytes:
    try:
        return AESGCM(key).decrypt(blob[:_NONCE], blob[_NONCE:], aad)
    except (InvalidTag, ValueError) as exc:
        raise TamperedError(
            "an encrypted record failed authentication (altered, swapped, or a "
            "different key); run `huisclos index` to rebuild it from the files"
        ) from exc


class WrappedKeyStore(Protocol):
    """Where wrapped client data keys are kept (the manifest implements it)."""

    def get_wrapped_key(self, client_id: str) -> bytes | None: ...

    def put_wrapped_key(self, client_id: str, wrapped: bytes) -> None: ...


@dataclass(frozen=True, slots=True)
class ClientCipher:
    """Authenticated encryption under one client's data key."""

    client_id: str
    _key: bytes

    def encrypt(self, plaintext: str, record_id: str) -> str:
        """Encrypt text bound to ``record_id``; returns base64 text."""
        sealed = _seal(self._key, plaintext.encode(), record_id.encode())
        return base64.b64encode(sealed).decode("ascii")

    def decrypt(self, token: str, record_id: str) -> str:
        """Decrypt what :meth:`encrypt` produced for the same ``record_id``.

        Raises:
            TamperedError: the record was altered, swapped or is under another key.
        """
        try:
            blob = base64.b64decode(token, validate=True)
        except ValueError as exc:
            raise TamperedError("an encrypted record is not valid base64") from exc
        return _open(self._key, blob, record_id.encode()).decode()


class KeyChain:
    """Derived keys and per-client data keys for one vault."""

    def __init__(self, master_key: bytes, store: WrappedKeyStore) -> None:
        if len(master_key) != 32:
            raise VaultKeyError("the master key must be 32 bytes")
        self._wrap_key = _hkdf(master_key, b"huisclos key wrap v1")
        self._index_key = _hkdf(master_key, b"huisclos blind index v1")
        self._vault_key = _hkdf(master_key, b"huisclos vault records v1")
        self._store = store
        self._ciphers: dict[str, ClientCipher] = {}

    def blind(self, kind: str, value: str) -> str:
        """Keyed hash of ``value`` (a blind index): equal inputs, equal outputs."""
        mac = hmac.new(self._index_key, f"{kind}\x00{value}".encode(), hashlib.sha256)
        return mac.hexdigest()[:32]

    def client_id(self, client: str) -> str:
        """The opaque id under which a client's records are filed."""
        return self.blind("client", client)

    @property
    def vault_cipher(self) -> ClientCipher:
        """Cipher for vault-level records (root paths)."""
        return ClientCipher("vault", self._vault_key)

    def cipher(self, client_id: str, *, create: bool = True) -> ClientCipher:
        """The cipher of a client, creating its data key on first use.

        Raises:
            VaultKeyError: the client has no key and ``create`` is false (it was
                erased, or never indexed).
        """
        cached = self._ciphers.get(client_id)
        if cached is not None:
            return cached
        wrapped = self._store.get_wrapped_key(client_id)
        if wrapped is None:
            if not create:
                raise VaultKeyError("this client has no data key (erased or never indexed)")
            data_key = AESGCM.generate_key(bit_length=256)
            self._store.put_wrapped_key(
                client_id, _seal(self._wrap_key, data_key, client_id.encode())
            )
            log.info("created data key for client %s", client_id)
        else:
            try:
                data_key = _open(self._wrap_key, wrapped, client_id.encode())
            except TamperedError as exc:
                raise VaultKeyError(
                    "a client data key cannot be unwrapped: the master key does not match"
                ) from exc
        cipher = ClientCipher(client_id, data_key)
        self._ciphers[client_id] = cipher
        return cipher


# --- master key -------------------------------------------------------------


def _read_vault_file(home: Path) -> dict[str, str]:
    path = home / VAULT_FILE
    if not path.exists():
        return {}
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise VaultKeyError(f"{path} is unreadable; restore it from a backup") from exc
    if not isinstance(data, dict):
        raise VaultKeyError(f"{path} is not a huisclos vault file")
    return data


def _write_private(path: Path, content: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(content)
    os.chmod(path, 0o600)


def _keyring_backend_usable() -> bool:
    try:
        import keyring
        from keyring.backends import fail

        backend = keyring.get_keyring()
    except Exception:  # noqa: BLE001 - any keyring import/config failure means "not usable"
        return False
    name = type(backend).__module__ + "." + type(backend).__name__
    return not isinstance(backend, fail.Keyring) and "null" not in name.lower()


def _from_keyring(home: Path, create: bool) -> bytes | None:
    import keyring

    account = hashlib.sha256(str(home).encode()).hexdigest()[:24]
    try:
        stored = keyring.get_password(KEYRING_SERVICE, account)
        if stored is None and create:
            stored = base64.b64encode(secrets.token_bytes(32)).decode()
            keyring.set_password(KEYRING_SERVICE, account, stored)
    except Exception as exc:
        raise VaultKeyError(
            "the OS keyring could not be used; set HUISCLOS_KEY_SOURCE=file"
        ) from exc
    return None if stored is None else base64.b64decode(stored)


def _from_file(path: Path, create: bool) -> bytes | None:
    if not path.exists():
        if not create:
            return None
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        _write_private(path, base64.b64encode(secrets.token_bytes(32)) + b"\n")
        log.info("created master key file")
    mode = path.stat().st_mode & 0o777
    if mode & 0o077:
        raise VaultKeyError(f"the key file {path} is readable by others; run chmod 600 on it")
    try:
        key = base64.b64decode(path.read_bytes().strip(), validate=True)
    except ValueError as exc:
        raise VaultKeyError(f"the key file {path} is not a huisclos key") from exc
    if len(key) != 32:
        raise VaultKeyError(f"the key file {path} is not a huisclos key")
    return key


def _from_passphrase(settings: Settings, salt_b64: str | None) -> tuple[bytes, str]:
    if settings.passphrase is None:
        raise VaultKeyError("key source is 'passphrase' but HUISCLOS_PASSPHRASE is not set")
    salt = base64.b64decode(salt_b64) if salt_b64 else secrets.token_bytes(16)
    kdf = Scrypt(salt=salt, length=32, n=2**15, r=8, p=1)
    key = kdf.derive(settings.passphrase.get_secret_value().encode())
    return key, base64.b64encode(salt).decode()


def load_master_key(settings: Settings) -> bytes:
    """Obtain the vault's master key, creating it on first run.

    Order for ``key_source="auto"``: the source recorded when the vault was
    created; for a new vault, the passphrase if one is set, else the OS
    keyring if a real backend is available, else a 0600 key file.

    Raises:
        VaultKeyError: the key is missing or does not open this vault.
    """
    home = settings.home
    vault = _read_vault_file(home)
    is_new = "check" not in vault
    source: str = settings.key_source
    if source == "auto":
        source = vault.get("key_source") or (
            "passphrase"
            if settings.passphrase is not None
            else ("keyring" if _keyring_backend_usable() else "file")
        )
    salt = vault.get("salt")
    key: bytes | None
    if source == "passphrase":
        key, salt = _from_passphrase(settings, salt)
    elif source == "keyring":
        key = _from_keyring(home, create=is_new)
    else:
        key = _from_file(settings.resolved_key_file, create=is_new)
    if key is None:
        raise VaultKeyError(
            f"no master key found for the vault {home} (source: {source}); restore the "
            "key file or keyring entry, or set HUISCLOS_KEY_SOURCE/HUISCLOS_KEY_FILE"
        )
    if is_new:
        record = {"version": "1", "key_source": source, "check": ""}
        if salt and source == "passphrase":
            record["salt"] = salt
        check = _seal(_hkdf(key, b"huisclos key check v1"), _CHECK_PLAINTEXT, b"check")
        record["check"] = base64.b64encode(check).decode()
        home.mkdir(parents=True, exist_ok=True, mode=0o700)
        _write_private(home / VAULT_FILE, json.dumps(record, indent=2).encode())
        return key
    try:
        _open(_hkdf(key, b"huisclos key check v1"), base64.b64decode(vault["check"]), b"check")
    except TamperedError as exc:
        raise VaultKeyError(
            f"the master key ({source}) does not open the vault {home}: wrong key file, "
            "keyring entry or passphrase"
        ) from exc
    return key
