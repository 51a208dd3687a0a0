"""Incremental indexing on the shipped sample tree: real unstructured, model, Chroma."""

from __future__ import annotations

import logging
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from huisclos.config import ConfigError, Settings
from huisclos.pipeline import Huisclos
from huisclos.pipeline.models.embedding import load_model
from tests.conftest import SAMPLE

pytestmark = pytest.mark.integration


class EmbedCounter:
    def __init__(self) -> None:
        self.texts = 0


@pytest.fixture
def embeds(monkeypatch: pytest.MonkeyPatch, settings: Settings) -> EmbedCounter:
    """Counts texts given to the embedding model (documents and queries)."""
    counter = EmbedCounter()
    model = load_model(settings.embedding_model, settings.threads)
    original = model.embed

    def counting(texts: list[str], *, query: bool = False):  # type: ignore[no-untyped-def]
        if not query:
            counter.texts += len(texts)
        return original(texts, query=query)

    monkeypatch.setattr(model, "embed", counting)
    return counter


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    root = tmp_path / "Clients"
    shutil.copytree(SAMPLE, root)
    return root


@pytest.fixture
def hc(settings: Settings) -> Iterator[Huisclos]:
    with Huisclos(settings) as opened:
        yield opened


def _consistent(hc: Huisclos) -> None:
    """No duplicate and no orphan: the store holds exactly the manifest's chunks."""
    rows = hc.vault.manifest.all_files()
    assert hc.vault.store.count() == sum(row.chunks for row in rows)
    assert hc.vault.keywords.count() == hc.vault.store.count()
    assert hc.vault.keywords.file_ids() == {row.file_id for row in rows if row.chunks}
    assert hc.vault.manifest.pending_intents() == []


def _paths(hits: list) -> list[str]:  # type: ignore[type-arg]
    return [hit.path for hit in hits]


def test_first_run_indexes_every_sample_file(hc: Huisclos, tree: Path) -> None:
    report = hc.index(tree)
    assert (report.added, report.failed, report.removed) == (6, 0, 0)
    assert report.chunks_written >= 6
    status = hc.status()
    assert {c.name: c.files for c in status.clients} == {
        "Acme Ltd": 2, "Dupont SARL": 2, "Martin Kiné": 1, "_shared": 1}  # fmt: skip
    assert status.chunks == report.chunks_written
    hits = hc.search("Quel est le montant TTC de la facture 2024-117 ?", top_k=3)
    assert hits[0].path == "Dupont SARL/factures/facture-2024-117.docx"
    assert hits[0].client == "Dupont SARL"
    assert "4 860,00 €" in hits[0].text
    _consistent(hc)


def test_unchanged_rerun_embeds_nothing(hc: Huisclos, tree: Path, embeds: EmbedCounter) -> None:
    hc.index(tree)
    first = embeds.texts
    assert first > 0
    report = hc.index(tree)
    assert (report.unchanged, report.added, report.updated, report.chunks_written) == (6, 0, 0, 0)
    assert embeds.texts == first
    # a touched file (new mtime, same bytes) is not re-embedded either
    txt = tree / "Acme Ltd" / "engagement-letter.txt"
    os.utime(txt, ns=(txt.stat().st_atime_ns, txt.stat().st_mtime_ns + 5_000_000_000))
    report = hc.index(tree)
    assert (report.unchanged, report.chunks_written) == (6, 0)
    assert embeds.texts == first


def test_edit_reembeds_only_that_file(hc: Huisclos, tree: Path, embeds: EmbedCounter) -> None:
    hc.index(tree)
    before = embeds.texts
    notes = tree / "Martin Kiné" / "notes-honoraires.txt"
    notes.write_text(notes.read_text() + "\nLe loyer du local professionnel est de 1 150 euros.\n")
    report = hc.index(tree)
    assert (report.updated, report.unchanged, report.added) == (1, 5, 0)
    assert embeds.texts - before == report.chunks_written  # only the edited file's chunks
    hits = hc.search("loyer du local professionnel", client="Martin Kiné", top_k=1)
    assert "1 150 euros" in hits[0].text
    _consistent(hc)


def test_delete_removes_its_chunks(hc: Huisclos, tree: Path) -> None:
    hc.index(tree)
    (tree / "Dupont SARL" / "contrat-prestation.md").unlink()
    report = hc.index(tree)
    assert (report.removed, report.unchanged) == (1, 5)
    hits = hc.search("résiliation du contrat par lettre recommandée", top_k=10)
    assert "Dupont SARL/contrat-prestation.md" not in _paths(hits)
    _consistent(hc)


def test_move_within_client_reembeds_nothing(
    hc: Huisclos, tree: Path, embeds: EmbedCounter
) -> None:
    hc.index(tree)
    before, chunks = embeds.texts, hc.vault.store.count()
    (tree / "Dupont SARL" / "archives").mkdir()
    (tree / "Dupont SARL" / "contrat-prestation.md").rename(
        tree / "Dupont SARL" / "archives" / "contrat-2023.md"
    )
    report = hc.index(tree)
    assert (report.moved, report.added, report.removed, report.chunks_written) == (1, 0, 0, 0)
    assert embeds.texts == before and hc.vault.store.count() == chunks
    hits = hc.search("préavis de résiliation du contrat", client="Dupont SARL", top_k=1)
    assert hits[0].path == "Dupont SARL/archives/contrat-2023.md"
    _consistent(hc)


def test_move_to_another_client_keeps_embeddings(
    hc: Huisclos, tree: Path, embeds: EmbedCounter
) -> None:
    hc.index(tree)
    before = embeds.texts
    (tree / "Acme Ltd" / "engagement-letter.txt").rename(tree / "Dupont SARL" / "lettre.txt")
    report = hc.index(tree)
    assert (report.moved, report.chunks_written) == (1, 0)
    assert embeds.texts == before
    hits = hc.search("VAT returns for the Lyon branch", client="Dupont SARL", top_k=1)
    assert hits[0].path == "Dupont SARL/lettre.txt" and hits[0].client == "Dupont SARL"
    acme = hc.search("VAT returns for the Lyon branch", client="Acme Ltd", top_k=5)
    assert "Dupont SARL/lettre.txt" not in _paths(acme)
    _consistent(hc)


def test_search_scoped_to_a_client_never_shows_another(hc: Huisclos, tree: Path) -> None:
    hc.index(tree)
    hits = hc.search("montant de la facture", client="Martin Kiné", top_k=10)
    assert hits and {hit.client for hit in hits} == {"Martin Kiné"}
    with pytest.raises(ConfigError, match="no indexed client"):
        hc.search("facture", client="Inconnu")


def test_missing_root_removes_nothing(hc: Huisclos, tree: Path) -> None:
    hc.index(tree)
    shutil.rmtree(tree)  # e.g. the share is not mounted
    with pytest.raises(ConfigError, match="not a directory"):
        hc.index(tree)
    assert hc.status().files == 6


def test_crash_between_commit_and_cleanup_leaves_no_duplicate(
    settings: Settings, tree: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with Huisclos(settings) as hc:
        hc.index(tree)
    notes = tree / "Martin Kiné" / "notes-honoraires.txt"
    notes.write_text(notes.read_text() + "\nNouvelle ligne.\n")
    from huisclos.index.store import EncryptedStore

    def crash(self: EncryptedStore, file_ids: list[str]) -> None:
        raise KeyboardInterrupt("power cut")

    with Huisclos(settings) as hc:
        monkeypatch.setattr(EncryptedStore, "delete_files", crash)
        with pytest.raises(KeyboardInterrupt):
            hc.index(tree)
        monkeypatch.undo()
    with Huisclos(settings) as hc:
        report = hc.index(tree)
        assert report.unchanged == 6
        _consistent(hc)


def test_crash_in_the_middle_of_writes_leaves_no_orphan(
    vault_home: Path, tree: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from huisclos.config import load_settings
    from huisclos.index.store import EncryptedStore

    settings = load_settings(key_source="file", convert_workers=0, write_batch_size=2)
    original = EncryptedStore._flush
    calls = {"n": 0}

    def flaky(self: EncryptedStore, batch: list, space: str) -> int:  # type: ignore[type-arg]
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt("kill -9")
        return original(self, batch, space)

    with Huisclos(settings) as hc:
        monkeypatch.setattr(EncryptedStore, "_flush", flaky)
        with pytest.raises(KeyboardInterrupt):
            hc.index(tree)
        monkeypatch.undo()
        assert hc.vault.store.count() > 0  # partial writes reached the store
    with Huisclos(settings) as hc:
        report = hc.index(tree)
        assert report.added + report.unchanged == 6
        _consistent(hc)


def test_a_crash_between_the_vector_store_and_the_keyword_index_is_recovered(
    vault_home: Path, tree: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from huisclos.config import load_settings
    from huisclos.index.keywords import KeywordIndex

    settings = load_settings(key_source="file", convert_workers=0)

    def killed(self: KeywordIndex, entries: object) -> int:
        raise KeyboardInterrupt("kill -9")

    with Huisclos(settings) as hc:
        monkeypatch.setattr(KeywordIndex, "add", killed)
        with pytest.raises(KeyboardInterrupt):
            hc.index(tree)
        monkeypatch.undo()
        assert hc.vault.store.count() > 0 and hc.vault.keywords.count() == 0
    with Huisclos(settings) as hc:
        report = hc.index(tree)
        assert report.added == 6
        _consistent(hc)
        hits = hc.search("montant TTC facture 2024-117", top_k=1)
        assert hits[0].path == "Dupont SARL/factures/facture-2024-117.docx"


def test_logs_hold_no_text_no_names_no_query(
    hc: Huisclos, tree: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    hc.index(tree)
    (tree / "Acme Ltd" / "timesheet.csv").unlink()
    hc.index(tree)
    hc.search("préavis de trois mois avant la clôture", client="Dupont SARL")
    hc.status()
    logged = "\n".join(record.getMessage() for record in caplog.records)
    assert "index run:" in logged  # the run is logged, by counts
    for secret in ("Dupont", "Martin", "facture-2024-117", "timesheet", "4 860", "Montant TTC",
                   "préavis de trois mois", "Claire Petit", "URSSAF"):  # fmt: skip
        assert secret not in logged, secret


def test_duplicate_copies_are_each_tracked(hc: Huisclos, tree: Path, embeds: EmbedCounter) -> None:
    letter = tree / "Acme Ltd" / "engagement-letter.txt"
    shutil.copy2(letter, tree / "Acme Ltd" / "copie.txt")
    shutil.copy2(letter, tree / "Acme Ltd" / "copie-2.txt")
    assert hc.index(tree).added == 8
    # one copy moves, the two others are deleted: one move, two removals, nothing embedded
    before = embeds.texts
    (tree / "Acme Ltd" / "copie.txt").rename(tree / "Acme Ltd" / "renamed.txt")
    letter.unlink()
    (tree / "Acme Ltd" / "copie-2.txt").unlink()
    report = hc.index(tree)
    assert (report.moved, report.removed, report.chunks_written) == (1, 2, 0)
    assert embeds.texts == before
    assert hc.status().files == 6
    _consistent(hc)
