import base64
import hmac
import json
import sqlite3
import stat
from pathlib import Path

import pytest

from huisclos.config import Settings, TamperedError, VaultKeyError, load_settings
from huisclos.index.keys import ClientCipher, KeyChain, _hkdf, _seal, load_master_key
from huisclos.index.manifest import Manifest
from huisclos.index.vault import Vault


def test_key_file_is_created_private_and_reused(settings: Settings) -> None:
    key = load_master_key(settings)
    key_file = settings.resolved_key_file
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert stat.S_IMODE((settings.home / "vault.json").stat().st_mode) == 0o600
    assert load_master_key(settings) == key


def test_wrong_key_is_a_clear_error(settings: Settings) -> None:
    load_master_key(settings)
    settings.resolved_key_file.write_bytes(base64.b64encode(b"x" * 32))
    with pytest.raises(VaultKeyError, match="does not open the vault"):
        load_master_key(settings)


def test_missing_key_file_on_existing_vault_is_an_error(settings: Settings) -> None:
    load_master_key(settings)
    settings.resolved_key_file.unlink()
    with pytest.raises(VaultKeyError, match="no master key found"):
        load_master_key(settings)


def test_key_file_readable_by_others_is_refused(settings: Settings) -> None:
    load_master_key(settings)
    settings.resolved_key_file.chmod(0o644)
    with pytest.raises(VaultKeyError, match="chmod 600"):
        load_master_key(settings)


def test_passphrase_source(vault_home: Path) -> None:
    settings = load_settings(key_source="auto", passphrase="correct horse battery staple")
    key = load_master_key(settings)
    assert not settings.resolved_key_file.exists()  # nothing secret on disk
    assert load_master_key(settings) == key
    wrong = load_settings(passphrase="wrong horse")
    with pytest.raises(VaultKeyError, match="does not open"):
        load_master_key(wrong)


def test_client_keys_are_separate_and_records_bound_to_their_id(tmp_path: Path) -> None:
    manifest = Manifest(tmp_path / "m.sqlite3")
    chain = KeyChain(b"k" * 32, manifest)
    dupont = chain.cipher(chain.client_id("Dupont"))
    martin = chain.cipher(chain.client_id("Martin"))
    token = dupont.encrypt("Montant TTC : 4 860,00 €", "chunk-1")
    assert "4 860" not in token
    assert dupont.decrypt(token, "chunk-1") == "Montant TTC : 4 860,00 €"
    with pytest.raises(TamperedError):
        martin.decrypt(token, "chunk-1")  # another client's key
    with pytest.raises(TamperedError):
        dupont.decrypt(token, "chunk-2")  # swapped onto another record
    flipped = bytearray(base64.b64decode(token))
    flipped[-1] ^= 1
    with pytest.raises(TamperedError):
        dupont.decrypt(base64.b64encode(bytes(flipped)).decode(), "chunk-1")
    # the wrapped key survives a reopen under the same master key only
    again = KeyChain(b"k" * 32, manifest).cipher(dupont.client_id)
    assert again.decrypt(token, "chunk-1").startswith("Montant")
    with pytest.raises(VaultKeyError):
        KeyChain(b"z" * 32, manifest).cipher(dupont.client_id)


def test_blind_index_is_keyed(tmp_path: Path) -> None:
    one = KeyChain(b"a" * 32, Manifest(tmp_path / "a.sqlite3"))
    two = KeyChain(b"b" * 32, Manifest(tmp_path / "b.sqlite3"))
    assert one.client_id("Dupont") == one.client_id("Dupont")
    assert one.client_id("Dupont") != two.client_id("Dupont")
    assert "Dupont" not in one.client_id("Dupont")


# --- master key rotation ------------------------------------------------------


def _vault_with_client(settings: Settings) -> tuple[Vault, str, str]:
    vault = Vault(settings)
    cipher = vault.client_cipher("Dupont SARL")
    token = cipher.encrypt("IBAN FR76 3000 6000 0112 3456 7890 189", "chunk-1")
    return vault, cipher.client_id, token


def test_rotation_rewraps_keys_and_retires_the_old_master_key(settings: Settings) -> None:
    vault, client_id, token = _vault_with_client(settings)
    blind = vault.keys.client_id("Dupont SARL")
    old_key = load_master_key(settings)

    assert vault.rotate_master_key() == "file"

    new_key = load_master_key(settings)
    assert new_key != old_key
    assert stat.S_IMODE(settings.resolved_key_file.stat().st_mode) == 0o600
    vault.close()
    reopened = Vault(settings)  # a new process: the same records, the same blind index
    assert reopened.keys.client_id("Dupont SARL") == blind
    assert (
        reopened.keys.cipher(client_id, create=False).decrypt(token, "chunk-1").startswith("IBAN")
    )
    settings.resolved_key_file.write_bytes(base64.b64encode(old_key))
    with pytest.raises(VaultKeyError, match="does not open the vault"):
        load_master_key(settings)
    with pytest.raises(VaultKeyError, match="does not unwrap"):
        KeyChain(old_key, reopened.manifest)


def test_a_process_that_was_open_during_a_rotation_keeps_working(settings: Settings) -> None:
    writer, client_id, token = _vault_with_client(settings)
    reader = Vault(settings)
    writer.rotate_master_key()
    assert reader.keys.cipher(client_id, create=False).decrypt(token, "chunk-1")
    created = writer.client_cipher("Martin")  # a key wrapped under the new master only
    assert reader.keys.cipher(created.client_id, create=False).client_id == created.client_id


def test_a_crash_in_the_middle_of_a_rotation_leaves_a_working_key(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    vault, client_id, token = _vault_with_client(settings)
    import huisclos.index.vault as vault_module

    def crash(*args: object) -> str:
        raise KeyboardInterrupt  # after re-wrapping, before the new key is stored

    monkeypatch.setattr(vault_module, "store_master_key", crash)
    with pytest.raises(KeyboardInterrupt):
        vault.rotate_master_key()
    monkeypatch.undo()
    vault.close()
    reopened = Vault(settings)  # the old key, still in the key file, opens the vault
    assert reopened.keys.cipher(client_id, create=False).decrypt(token, "chunk-1")
    reopened.rotate_master_key()  # and a later rotation completes
    reopened.close()
    assert Vault(settings).keys.cipher(client_id, create=False).decrypt(token, "chunk-1")


def test_passphrase_rotation_needs_the_new_passphrase(vault_home: Path) -> None:
    settings = load_settings(key_source="passphrase", passphrase="ancienne phrase secrète")
    vault, client_id, token = _vault_with_client(settings)
    with pytest.raises(VaultKeyError, match="give the new one"):
        vault.rotate_master_key()
    assert vault.rotate_master_key("nouvelle phrase secrète") == "passphrase"
    vault.close()
    with pytest.raises(VaultKeyError, match="does not open"):
        Vault(settings)
    renewed = load_settings(key_source="passphrase", passphrase="nouvelle phrase secrète")
    assert Vault(renewed).keys.cipher(client_id, create=False).decrypt(token, "chunk-1")


def test_a_tampered_wrapped_key_is_reported(settings: Settings) -> None:
    vault, client_id, _ = _vault_with_client(settings)
    vault.close()
    with sqlite3.connect(settings.home / "manifest.sqlite3") as db:
        (wrapped,) = db.execute(
            "SELECT wrapped FROM wrapped_keys WHERE name = ?", (client_id,)
        ).fetchone()
        altered = bytes(wrapped[:-1]) + bytes([wrapped[-1] ^ 1])
        db.execute("UPDATE wrapped_keys SET wrapped = ? WHERE name = ?", (altered, client_id))
    with pytest.raises(VaultKeyError, match="cannot be unwrapped"):
        Vault(settings).keys.cipher(client_id, create=False)


def test_a_vault_from_before_rotation_is_adopted(settings: Settings) -> None:
    """Vaults made by earlier versions: one check, client keys without kek, derived vault keys."""
    key = load_master_key(settings)
    vault_file = settings.home / "vault.json"
    record = json.loads(vault_file.read_text())
    record["check"] = record.pop("checks")[0]
    vault_file.write_text(json.dumps(record))
    manifest = Manifest(settings.home / "manifest.sqlite3")
    wrap = _hkdf(key, b"huisclos key wrap v1")
    data_key = b"d" * 32
    manifest._db.execute(
        "INSERT INTO client_keys(client_id, wrapped) VALUES (?, ?)",
        ("c1", _seal(wrap, data_key, b"c1")),
    )
    manifest.close()
    token = ClientCipher("c1", data_key).encrypt("texte", "r1")
    vault = Vault(settings)
    assert vault.keys.cipher("c1", create=False).decrypt(token, "r1") == "texte"
    legacy_blind = hmac.new(_hkdf(key, b"huisclos blind index v1"), b"client\x00Dupont", "sha256")
    assert vault.keys.client_id("Dupont") == legacy_blind.hexdigest()[:32]
    vault.rotate_master_key()
    vault.close()
    assert Vault(settings).keys.cipher("c1", create=False).decrypt(token, "r1") == "texte"
