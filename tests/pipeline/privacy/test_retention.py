"""Retention rules: files whose source is gone, inactive clients; by command and by the watcher."""

from __future__ import annotations

import os
import shutil
import threading
import time
from pathlib import Path

import pytest

from huisclos.config import Settings, load_settings
from huisclos.pipeline import Huisclos
from huisclos.pipeline.cli import main
from huisclos.pipeline.privacy.retention import Retention

pytestmark = pytest.mark.integration

DAY = 86_400.0
ELEVEN_YEARS_AGO = time.time() - 11 * 365.25 * DAY


def _write(path: Path, text: str, mtime: float | None = None) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    if mtime is not None:
        os.utime(path, (mtime, mtime))


@pytest.fixture
def tree(tmp_path: Path) -> tuple[Path, Path]:
    current, archive = tmp_path / "Clients", tmp_path / "Archives"
    _write(current / "Dupont SARL" / "facture.txt", "Facture 2024-117 de Dupont SARL, 4 860 euros.")
    _write(current / "Dupont SARL" / "contrat.txt", "Contrat de mission comptable de Dupont SARL.")
    _write(current / "Ancien" / "bilan-2013.txt", "Bilan 2013 du client Ancien.", ELEVEN_YEARS_AGO)
    _write(archive / "Martin" / "notes.txt", "Notes de kinésithérapie de Martin, 2019.")
    return current, archive


def _settings(**overrides: object) -> Settings:
    return load_settings(key_source="file", convert_workers=0, **overrides)


def _paths(hc: Huisclos) -> set[str]:
    return {h.path for h in hc.search("document du client", top_k=20)}


def _known_since(hc: Huisclos, client: str, when: float) -> None:
    """As if the vault had indexed this client's files at ``when``."""
    client_id = hc.vault.keys.client_id(client)
    with hc.vault.manifest.transaction():
        hc.vault.manifest._db.execute(
            "UPDATE files SET updated = ? WHERE client_id = ?", (when, client_id)
        )


def test_files_whose_source_is_gone_are_forgotten_after_the_period(
    tree: tuple[Path, Path],
) -> None:
    current, archive = tree
    with Huisclos(_settings(retention_deleted_days=30)) as hc:
        hc.index(current, archive)
        shutil.rmtree(archive)  # a root not there at all (unmounted?) proves nothing
        (current / "Dupont SARL" / "contrat.txt").unlink()  # deleted, no index run since
        retention = Retention(hc.vault)

        assert retention.plan(now=time.time() + 29 * DAY) == []  # within the period
        later = time.time() + 31 * DAY
        dry = retention.apply(dry_run=True, now=later)
        assert [(a.client, len(a.files)) for a in dry.actions] == [("Dupont SARL", 1)]
        assert len(hc.vault.manifest.all_files()) == 4  # a dry run changes nothing

        done = retention.apply(now=later)
        assert done.files == 1 and done.master_key == "unchanged"  # no key destroyed
        assert _paths(hc) == {
            "Dupont SARL/facture.txt",
            "Ancien/bilan-2013.txt",
            "Martin/notes.txt",
        }
        (record,) = hc.audit(actions=["retention"])
        assert (record.record.details["target"], record.record.details["files"]) == ("path", 1)
        assert hc.vault.store.count() == sum(r.chunks for r in hc.vault.manifest.all_files())
        assert not (hc.settings.home / "erasure.pending").exists()


def test_inactive_clients_are_forgotten_with_their_key_and_kept_out(
    tree: tuple[Path, Path], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    current, _ = tree
    monkeypatch.setenv("HUISCLOS_RETENTION_INACTIVE_YEARS", "10")
    with Huisclos(_settings()) as hc:
        hc.index(current)
        assert hc.apply_retention().actions == []  # just indexed: known for a day only
        _known_since(hc, "Ancien", ELEVEN_YEARS_AGO)
    assert main(["retention", "apply", "--dry-run"]) == 0
    assert "would erase Ancien: client (inactive), 1 files" in capsys.readouterr().out
    assert main(["retention", "apply"]) == 0
    out = capsys.readouterr().out
    assert "erased Ancien: client (inactive)" in out and "master key: file" in out
    with Huisclos(_settings()) as hc:
        assert "Ancien" not in [c.name for c in hc.status().clients]
        assert hc.index(current).excluded == 1  # still on disk, not indexed again
        (forgot,) = hc.audit(actions=["retention"])
        assert forgot.record.details["key_destroyed"] is True
        assert forgot.clients == [f"(erased {forgot.record.clients[0][:8]})"]
        assert hc.register()["erasures"][0]["trigger"] == "retention"


def test_a_client_rule_overrides_the_global_one(tree: tuple[Path, Path]) -> None:
    current, _ = tree
    settings = _settings(
        retention_inactive_years=10, retention_by_client={"Ancien": {"inactive_years": 20}}
    )
    with Huisclos(settings) as hc:
        hc.index(current)
        _known_since(hc, "Ancien", ELEVEN_YEARS_AGO)
        assert hc.apply_retention().actions == []
        assert "Ancien" in [c.name for c in hc.status().clients]


def test_the_watcher_applies_retention_when_it_starts(tree: tuple[Path, Path]) -> None:
    current, _ = tree
    with Huisclos(_settings(retention_inactive_years=10)) as hc:
        hc.index(current)
        _known_since(hc, "Ancien", ELEVEN_YEARS_AGO)
        stop = threading.Event()
        watcher = threading.Thread(target=hc.watch, args=(current,), kwargs={"stop_event": stop})
        watcher.start()
        try:
            deadline = time.monotonic() + 60
            while not hc.audit(actions=["retention"]) and time.monotonic() < deadline:
                time.sleep(0.2)
        finally:
            stop.set()
            watcher.join(timeout=30)
        assert not watcher.is_alive()
        assert [c.name for c in hc.status().clients] == ["Dupont SARL"]
