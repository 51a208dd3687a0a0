"""Shared fixtures. The outbound-connection guard is on for the whole suite."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

import huisclos.config
from huisclos.config import install_network_guard

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data"
OFFICE = DATA / "office-docs"
SAMPLE = REPO / "sample" / "Clients"


def pytest_configure(config: pytest.Config) -> None:
    install_network_guard()


@pytest.fixture(autouse=True)
def vault_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """Every test gets its own empty vault."""
    home = tmp_path / "vault"
    monkeypatch.setenv("HUISCLOS_HOME", str(home))
    for name in ("HUISCLOS_KEY_SOURCE", "HUISCLOS_PASSPHRASE", "HUISCLOS_EMBEDDING_MODEL"):
        monkeypatch.delenv(name, raising=False)
    yield home


@pytest.fixture
def settings(vault_home: Path) -> huisclos.config.Settings:
    return huisclos.config.load_settings(key_source="file", convert_workers=0)
