"""Keys and encryption: master key, per-client data keys, blind indexes.

Envelope scheme:

- The *master key* (32 bytes) comes from the OS keyring, a key file with
  0600 permissions, or a passphrase stretched with scrypt; never from code.
  Key-check records in ``vault.json`` tell a wrong key from a right one.
- From the master key, HKDF derives only a *wrap key* and its id (``kek``).
  Everything else is wrapped by it and stored in the manifest, one row per
  (key, kek): the *vault keys* (blind index, vault records, audit chain) and
  each client's random 256-bit *data key*. Rotating the master key re-wraps
  these rows; no record is re-encrypted and no blind index changes.
- Chunk text, paths and client names are AES-256-GCM ciphertext under the
  client's data key, with the record's id as associated data, so a record
  cannot be swapped for another. Destroying a client's wrapped key (and
  rotating the master key, so that no copy wrapped under a live key remains
  in old backups) makes its records unreadable: crypto-shredding.

Rotation is crash-safe in this order: add the new key's check to
``vault.json``; add rows wrapped under the new key; store the new key in its
source; drop the old rows and check. Whichever key the source holds after a
crash opens the vault.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import os
import secrets
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

from huisclos.config import Settings, TamperedError, VaultKeyError

__all__ = [
    "ClientCipher",
    "KeyChain",
    "WrappedKeyStore",
    "add_key_check",
    "key_source",
    "load_master_key",
    "new_master_key",
    "store_master_key",
    "write_durably",
]

log = logging.getLogger(__name__)

_ANY = "surrogatepass"
"""UTF-8 error handler for text we hash or encrypt: any Python string round-trips, a file
name that is not valid UTF-8 (surrogate escapes, from an old Windows or Mac share) too."""

KEYRING_SERVICE = "huisclos"
VAULT_FILE = "vault.json"
_CHECK_PLAINTEXT = b"huisclos master key check v1"
_NONCE = 12
VAULT_KEYS = "__vault__"
"""Row name of the wrapped vault keys (blind index, vault records, audit chain)."""


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
    """Where wrapped keys are kept, one row per (key name, kek); the manifest implements it."""

    def get_wrapped_key(self, name: str, kek: str) -> bytes | None: ...

    def put_wrapped_key(self, name: str, kek: str, wrapped: bytes) -> None: ...

    def wrapped_keys(self, kek: str) -> dict[str, bytes]: ...

    def has_wrapped_keys(self) -> bool: ...

    def adopt_legacy_keys(self, kek: str, vault_keys: bytes) -> None: ...


@dataclass(frozen=True, slots=True)
class ClientCipher:
    """Authenticated encryption under one client's data key, and its keyed term hashes."""

    client_id: str
    _key: bytes
    _term_key: bytes = field(init=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_term_key", _hkdf(self._key, b"huisclos sparse terms v1"))

    def term_ids(self, terms: Iterable[str]) -> list[int]:
        """Keyed 64-bit hashes of index terms, as the keyword index stores them.

        The key derives from the client's data key: without it a stored term id
        cannot be tested against a guessed word, and once the key is destroyed
        (erasure) nobody can.
        """
        key = self._term_key
        return [
            int.from_bytes(
                hashlib.blake2b(term.encode(errors=_ANY), key=key, digest_size=8).digest(),
                "big",
                signed=True,
            )
            for term in terms
        ]

    def encrypt(self, plaintext: str, record_id: str) -> str:
        """Encrypt text bound to ``record_id``; returns base64 text."""
        sealed = _seal(self._key, plaintext.encode(errors=_ANY), record_id.encode())
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
        return _open(self._key, blob, record_id.encode()).decode(errors=_ANY)


def _kek_id(wrap_key: bytes) -> str:
    return hmac.new(wrap_key, b"huisclos kek id", hashlib.sha256).hexdigest()[:16]


class KeyChain:
    """The vault keys and per-client data keys of one vault, unwrapped on demand.

    Raises (from the constructor):
        VaultKeyError: the master key does not unwrap this vault's keys.
    """

    def __init__(
        self,
        master_key: bytes,
        store: WrappedKeyStore,
        reload: Callable[[], bytes] | None = None,
    ) -> None:
        self._store = store
        self._reload = reload
        self._ciphers: dict[str, tuple[bytes, ClientCipher]] = {}
        self._use(master_key)
        wrapped = store.get_wrapped_key(VAULT_KEYS, self.kek)
        if wrapped is None:
            if store.has_wrapped_keys():
                raise VaultKeyError(
                    "the master key does not unwrap this vault's keys: wrong key file, "
                    "keyring entry or passphrase"
                )
            # a new vault, or one made before the vault keys were wrapped
            vault_keys = b"".join(
                _hkdf(master_key, purpose)
                for purpose in (
                    b"huisclos blind index v1",
                    b"huisclos vault records v1",
                    b"huisclos audit chain v1",
                )
            )
            # one transaction: legacy client keys adopted and the vault keys stored together
            store.adopt_legacy_keys(self.kek, self._wrap(VAULT_KEYS, vault_keys))
            wrapped = store.get_wrapped_key(VAULT_KEYS, self.kek)
            assert wrapped is not None
        vault_keys = self._unwrap(VAULT_KEYS, wrapped)
        self._index_key, self._vault_key, self._audit_key = (
            vault_keys[:32],
            vault_keys[32:64],
            vault_keys[64:96],
        )

    def _use(self, master_key: bytes) -> None:
        if len(master_key) != 32:
            raise VaultKeyError("the master key must be 32 bytes")
        self._wrap_key = _hkdf(master_key, b"huisclos key wrap v1")
        self.kek = _kek_id(self._wrap_key)

    def _wrap(self, name: str, key: bytes, wrap_key: bytes | None = None) -> bytes:
        return _seal(wrap_key or self._wrap_key, key, name.encode())

    def _unwrap(self, name: str, wrapped: bytes) -> bytes:
        try:
            return _open(self._wrap_key, wrapped, name.encode())
        except TamperedError as exc:
            raise VaultKeyError(
                "a key of this vault cannot be unwrapped: the master key does not match, "
                "or the manifest was altered"
            ) from exc

    def blind(self, kind: str, value: str) -> str:
        """Keyed hash of ``value`` (a blind index): equal inputs, equal outputs."""
        mac = hmac.new(self._index_key, f"{kind}\x00{value}".encode(errors=_ANY), hashlib.sha256)
        return mac.hexdigest()[:32]

    def client_id(self, client: str) -> str:
        """The opaque id under which a client's records are filed."""
        return self.blind("client", client)

    @property
    def vault_cipher(self) -> ClientCipher:
        """Cipher for vault-level records (root paths, watch queue, audit questions)."""
        return ClientCipher("vault", self._vault_key)

    @property
    def audit_key(self) -> bytes:
        """The key of the audit trail's hash chain."""
        return self._audit_key

    def cipher(self, client_id: str, *, create: bool = True) -> ClientCipher:
        """The cipher of a client, creating its data key on first use.

        The wrapped key is looked up each time (one indexed read), so that a
        key destroyed or re-wrapped by another process is noticed.

        Raises:
            VaultKeyError: the client has no key and ``create`` is false (it was
                erased, or never indexed).
        """
        wrapped = self._store.get_wrapped_key(client_id, self.kek)
        rotated_elsewhere = (
            wrapped is None
            and self._reload is not None
            and self._store.get_wrapped_key(VAULT_KEYS, self.kek) is None
        )
        if rotated_elsewhere and self._reload is not None:
            self._use(self._reload())
            self._ciphers.clear()
            wrapped = self._store.get_wrapped_key(client_id, self.kek)
        if wrapped is None:
            if not create:
                raise VaultKeyError("this client has no data key (erased or never indexed)")
            self._store.put_wrapped_key(
                client_id, self.kek, self._wrap(client_id, AESGCM.generate_key(bit_length=256))
            )
            log.info("created data key for client %s", client_id)
            wrapped = self._store.get_wrapped_key(client_id, self.kek)
            assert wrapped is not None
        cached = self._ciphers.get(client_id)
        if cached is not None and cached[0] == wrapped:
            return cached[1]
        cipher = ClientCipher(client_id, self._unwrap(client_id, wrapped))
        self._ciphers[client_id] = (wrapped, cipher)
        return cipher

    def forget(self, client_id: str) -> None:
        """Drop a client's cached key (its wrapped rows are deleted by the caller)."""
        self._ciphers.pop(client_id, None)

    def rewrap(self, new_master: bytes) -> str:
        """Store every key of this vault wrapped under ``new_master`` too; returns its kek.

        The rows under the current key stay until :meth:`adopt` and the
        caller's clean-up: a crash in between leaves both keys working.
        """
        self.refresh()
        new_wrap = _hkdf(new_master, b"huisclos key wrap v1")
        new_kek = _kek_id(new_wrap)
        rows = self._store.wrapped_keys(self.kek)
        if VAULT_KEYS not in rows:
            raise VaultKeyError("this vault's keys are not wrapped under the master key in use")
        for name, wrapped in rows.items():
            key = self._unwrap(name, wrapped)
            self._store.put_wrapped_key(name, new_kek, self._wrap(name, key, new_wrap))
        return new_kek

    def refresh(self) -> None:
        """Reload the master key if another process rotated it since this one loaded it."""
        if self._reload is not None and self._store.get_wrapped_key(VAULT_KEYS, self.kek) is None:
            self._use(self._reload())
            self._ciphers.clear()

    def adopt(self, new_master: bytes) -> None:
        """Use ``new_master`` from now on (after :meth:`rewrap` and storing it)."""
        self._use(new_master)
        self._ciphers.clear()


# --- master key -------------------------------------------------------------


def _read_vault_file(home: Path) -> dict[str, object]:
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


def _check_record(key: bytes) -> str:
    check = _seal(_hkdf(key, b"huisclos key check v1"), _CHECK_PLAINTEXT, b"check")
    return base64.b64encode(check).decode()


def _opens(key: bytes, check: str) -> bool:
    try:
        _open(_hkdf(key, b"huisclos key check v1"), base64.b64decode(check), b"check")
    except (TamperedError, ValueError):
        return False
    return True


def _checks(vault: dict[str, object]) -> list[str]:
    checks = vault.get("checks")
    if isinstance(checks, list):
        return [str(c) for c in checks]
    legacy = vault.get("check")  # vaults made before key rotation existed
    return [str(legacy)] if legacy else []


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_durably(path: Path, content: bytes) -> None:
    """Write a 0600 file so that a power cut leaves the old content or the new, whole."""
    temporary = path.with_name(path.name + ".tmp")
    _write_private(temporary, content)
    with open(temporary, "rb") as handle:
        os.fsync(handle.fileno())
    os.replace(temporary, path)
    _fsync_dir(path.parent)


def _write_vault_file(home: Path, vault: dict[str, object]) -> None:
    home.mkdir(parents=True, exist_ok=True, mode=0o700)
    write_durably(home / VAULT_FILE, json.dumps(vault, indent=2).encode())


def _resolve_source(settings: Settings, vault: dict[str, object]) -> str:
    source: str = settings.key_source
    if source == "auto":
        recorded = vault.get("key_source")
        source = (
            str(recorded)
            if recorded
            else (
                "passphrase"
                if settings.passphrase is not None
                else ("keyring" if _keyring_backend_usable() else "file")
            )
        )
    return source


def load_master_key(settings: Settings) -> bytes:
    """Obtain the vault's master key, creating it on first run.

    Order for ``key_source="auto"``: the source recorded when the vault was
    created; for a new vault, the passphrase if one is set, else the OS
    keyring if a real backend is available, else a 0600 key file.

    Raises:
        VaultKeyError: the key is missing or does not open this vault.
    """
    home = settings.home
    vault: dict[str, object] = dict(_read_vault_file(home))
    checks = _checks(vault)
    is_new = not checks
    source = _resolve_source(settings, vault)
    salt = vault.get("salt")
    key: bytes | None
    if source == "passphrase":
        key, salt = _from_passphrase(settings, str(salt) if salt else None)
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
        record: dict[str, object] = {"version": "2", "key_source": source}
        if salt and source == "passphrase":
            record["salt"] = salt
        record["checks"] = [_check_record(key)]
        _write_vault_file(home, record)
        return key
    if not any(_opens(key, check) for check in checks):
        raise VaultKeyError(
            f"the master key ({source}) does not open the vault {home}: wrong key file, "
            "keyring entry or passphrase"
        )
    return key


def new_master_key(settings: Settings, passphrase: str | None = None) -> bytes:
    """A fresh master key: random, or derived from a new passphrase (same salt).

    Raises:
        VaultKeyError: the vault uses a passphrase and no new one was given.
    """
    vault = _read_vault_file(settings.home)
    if _resolve_source(settings, vault) != "passphrase":
        return secrets.token_bytes(32)
    if not passphrase:
        raise VaultKeyError(
            "this vault's master key comes from a passphrase: give the new one "
            "(HUISCLOS_NEW_PASSPHRASE) to rotate it"
        )
    salt = base64.b64decode(str(vault["salt"]))
    return Scrypt(salt=salt, length=32, n=2**15, r=8, p=1).derive(passphrase.encode())


def add_key_check(settings: Settings, key: bytes, *, only: bool = False) -> None:
    """Record that ``key`` opens the vault (beside the others, or as the ``only`` one)."""
    vault: dict[str, object] = dict(_read_vault_file(settings.home))
    checks = [] if only else [c for c in _checks(vault) if not _opens(key, c)]
    vault.pop("check", None)
    vault["version"] = "2"
    vault["checks"] = [*checks, _check_record(key)]
    _write_vault_file(settings.home, vault)


def key_source(settings: Settings) -> str:
    """The source this vault's master key comes from: "file", "keyring" or "passphrase"."""
    return _resolve_source(settings, _read_vault_file(settings.home))


def store_master_key(settings: Settings, key: bytes) -> str:
    """Put ``key`` where the vault's key source keeps it; returns the source's name.

    A passphrase source stores nothing: the user holds the new passphrase.
    """
    vault = _read_vault_file(settings.home)
    source = _resolve_source(settings, vault)
    if source == "keyring":
        import keyring

        account = hashlib.sha256(str(settings.home).encode()).hexdigest()[:24]
        try:
            keyring.set_password(KEYRING_SERVICE, account, base64.b64encode(key).decode())
        except Exception as exc:
            raise VaultKeyError("the OS keyring refused the new master key") from exc
    elif source == "file":
        write_durably(settings.resolved_key_file, base64.b64encode(key) + b"\n")
    return source
