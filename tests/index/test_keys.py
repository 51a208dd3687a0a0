import base64
import stat
from pathlib import Path

import pytest

from huisclos.config import Settings, TamperedError, VaultKeyError, load_settings
from huisclos.index.keys import KeyChain, load_master_key
from huisclos.index.manifest import Manifest


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
    manifest = Manifest(tmp_path / "m.sqlite3")
    one, two = KeyChain(b"a" * 32, manifest), KeyChain(b"b" * 32, manifest)
    assert one.client_id("Dupont") == one.client_id("Dupont")
    assert one.client_id("Dupont") != two.client_id("Dupont")
    assert "Dupont" not in one.client_id("Dupont")
