"""The OS keyring as the master key source (an in-memory keyring backend)."""

from __future__ import annotations

from collections.abc import Iterator

import keyring
import pytest
from keyring.backend import KeyringBackend

from huisclos.config import VaultKeyError, load_settings
from huisclos.index.keys import load_master_key


class MemoryKeyring(KeyringBackend):
    priority = -1  # never chosen by keyring's own detection; set explicitly below

    def __init__(self) -> None:
        super().__init__()
        self.secrets: dict[tuple[str, str], str] = {}

    def get_password(self, service: str, username: str) -> str | None:
        return self.secrets.get((service, username))

    def set_password(self, service: str, username: str, password: str) -> None:
        self.secrets[(service, username)] = password

    def delete_password(self, service: str, username: str) -> None:
        self.secrets.pop((service, username), None)


@pytest.fixture
def memory_keyring() -> Iterator[MemoryKeyring]:
    previous = keyring.get_keyring()
    backend = MemoryKeyring()
    keyring.set_keyring(backend)
    yield backend
    keyring.set_keyring(previous)


def test_auto_prefers_a_real_keyring(memory_keyring: MemoryKeyring) -> None:
    settings = load_settings()
    key = load_master_key(settings)
    assert len(memory_keyring.secrets) == 1
    assert not settings.resolved_key_file.exists()
    assert load_master_key(settings) == key


def test_lost_keyring_entry_is_an_error(memory_keyring: MemoryKeyring) -> None:
    settings = load_settings()
    load_master_key(settings)
    memory_keyring.secrets.clear()
    with pytest.raises(VaultKeyError, match="no master key found"):
        load_master_key(settings)
