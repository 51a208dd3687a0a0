"""The right to erasure, end to end on a real vault: forget a client, forget a path."""

from __future__ import annotations

import base64
import json
import shutil
import sqlite3
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path

import numpy as np
import pytest

from huisclos.config import ConfigError, Settings, VaultKeyError, load_settings
from huisclos.index.keys import KeyChain, load_master_key
from huisclos.index.manifest import Manifest
from huisclos.index.store import ENGLISH, MAIN
from huisclos.pipeline import Huisclos
from tests.fakes.ollama import FakeOllama

pytestmark = pytest.mark.integration

MODEL = "qwen2.5:7b-instruct"
DUPONT = "Facture 2024-117 de Dupont SARL : montant TTC 4 860,00 euros, réglée par virement."
MARTIN = "Note d'honoraires Kinésithérapie Martin : séance du 14 mars, 990,00 euros, zébrure."
MARTIN_ENGLISH = "Dear Martin, the physiotherapy sessions for your knee are booked for the spring."
MARTIN_WORDS = ("Kinésithérapie", "zébrure", "990,00", "Martin", "notes-privées", "physiotherapy")


@pytest.fixture
def clients(tmp_path: Path) -> Path:
    root = tmp_path / "Clients"
    for client, name, text in (
        ("Dupont SARL", "facture.txt", DUPONT),
        ("Martin", "notes-privées.txt", MARTIN),
        ("Martin", "suivi/bilan.txt", "Bilan de Martin : zébrure au genou, 12 séances."),
    ):
        path = root / client / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text + "\n", encoding="utf-8")
    return root


@pytest.fixture
def fake() -> Iterator[FakeOllama]:
    with FakeOllama(models=[MODEL], reply=lambda body: "Je ne sais pas.") as server:
        yield server


@pytest.fixture
def settings(fake: FakeOllama) -> Settings:
    return load_settings(
        key_source="file",
        convert_workers=0,
        generator="ollama",
        ollama_url=fake.url,
        ollama_model=MODEL,
    )


def _vault_bytes(home: Path) -> bytes:
    return b"".join(p.read_bytes() for p in sorted(home.rglob("*")) if p.is_file())


def _embedding_probes(hc: Huisclos, client: str) -> list[tuple[bytes, bytes]]:
    """Byte patterns of the client's embeddings as Chroma wrote them, raw and normalised."""
    client_id = hc.vault.keys.client_id(client)
    with closing(sqlite3.connect(hc.settings.home / "chroma" / "chroma.sqlite3")) as db:
        rows = db.execute(
            "SELECT vector FROM embeddings_queue WHERE metadata LIKE ?", (f"%{client_id}%",)
        ).fetchall()
    probes = []
    for (blob,) in rows:
        vector = np.frombuffer(blob, dtype=np.float32)
        unit = vector / np.linalg.norm(vector)
        probes.append((vector[8:16].tobytes(), unit[8:16].astype(np.float32).tobytes()))
    return probes


def test_a_forgotten_client_is_gone_from_answers_disk_and_backups(
    clients: Path, settings: Settings, fake: FakeOllama, tmp_path: Path
) -> None:
    home = settings.home
    (clients / "Martin" / "suivi" / "letter.txt").write_text(MARTIN_ENGLISH + "\n")
    with Huisclos(settings) as hc:
        assert hc.index(clients).added == 4
        assert any(h.path.startswith("Martin/") for h in hc.search("zébrure genou", top_k=3))
        martin_id = hc.vault.keys.client_id("Martin")
        letter = [r for r in hc.vault.manifest.all_files() if r.client_id == martin_id]
        assert any(hc.vault.store.get_file_chunks(r.file_id, ENGLISH) for r in letter)
        probes = _embedding_probes(hc, "Martin")  # both models' vectors
        on_disk = _vault_bytes(home)
        assert probes and all(raw in on_disk for raw, _ in probes)  # the check can fail
        backup = tmp_path / "backup"
        shutil.copytree(home, backup)
        old_key = settings.resolved_key_file.read_bytes()

        report = hc.forget(client="Martin")

        assert (report.files, report.key_destroyed) == (3, True)
        assert report.chunks >= 2 and report.master_key == "file"
        assert report.still_on_disk == [str(clients / "Martin")]
        # no search or question returns its data
        for query in ("zébrure genou", "Note d'honoraires Kinésithérapie Martin 990 euros"):
            assert all(h.client == "Dupont SARL" for h in hc.search(query, top_k=10))
        hc.ask("Combien coûte la séance de kinésithérapie de Martin ?")
        prompt = str(fake.chat_requests[-1]["messages"])
        assert "990,00" not in prompt and "zébrure" not in prompt
        assert "Martin" not in [c.name for c in hc.status().clients]
        with pytest.raises(ConfigError, match="no indexed client"):
            hc.search("zébrure", client="Martin")
        # the Dupont client is untouched
        assert hc.search("montant TTC facture", top_k=1)[0].path == "Dupont SARL/facture.txt"

    # a byte search of the whole vault finds none of its text, names or embeddings
    on_disk = _vault_bytes(home)
    for word in MARTIN_WORDS:
        assert word.encode() not in on_disk
    assert not [p for pair in probes for p in pair if p in on_disk]

    # the old copy of the vault cannot be read with the keys in use now
    assert settings.resolved_key_file.read_bytes() != old_key
    current = load_master_key(settings)
    restored = tmp_path / "restored"
    shutil.copytree(backup, restored)
    (restored / "master.key").write_bytes(settings.resolved_key_file.read_bytes())
    with pytest.raises(VaultKeyError, match="does not open"):
        load_master_key(load_settings(home=restored, key_source="file"))
    manifest = Manifest(restored / "manifest.sqlite3")
    with pytest.raises(VaultKeyError):
        KeyChain(current, manifest)
    # ...while the old key did open it: the test above can fail
    old = KeyChain(base64.b64decode(old_key.strip()), manifest)
    assert old.cipher(old.client_id("Martin"), create=False)
    manifest.close()


def test_a_forgotten_folder_is_not_indexed_again_until_included(
    clients: Path, settings: Settings
) -> None:
    with Huisclos(settings) as hc:
        hc.index(clients)
        hc.forget(client="Martin")
        again = hc.index(clients)
        assert (again.added, again.excluded) == (0, 2)
        (clients / "Martin" / "nouveau.txt").write_text("Nouvelle note zébrure.", encoding="utf-8")
        assert hc.index(clients).excluded == 3
        assert all(h.client != "Martin" for h in hc.search("zébrure", top_k=10))

        assert hc.include(client="Martin") is True
        assert hc.include(client="Martin") is False
        back = hc.index(clients)
        assert (back.added, back.excluded) == (3, 0)
        assert any(h.client == "Martin" for h in hc.search("zébrure genou", top_k=3))


def test_forget_a_folder_keeps_the_rest_of_the_client(clients: Path, settings: Settings) -> None:
    with Huisclos(settings) as hc:
        hc.index(clients)
        report = hc.forget(path=clients / "Martin" / "suivi")
        assert (report.files, report.key_destroyed) == (1, False)
        assert report.still_on_disk == [str(clients / "Martin" / "suivi")]
        paths = {h.path for h in hc.search("zébrure", top_k=10)}
        assert "Martin/suivi/bilan.txt" not in paths
        assert "Martin/notes-privées.txt" in paths
        assert hc.index(clients).excluded == 1

        report = hc.forget(path=clients / "Martin" / "notes-privées.txt")
        assert report.files == 1
        assert all(h.client == "Dupont SARL" for h in hc.search("zébrure", top_k=10))
        assert b"Kin\xc3\xa9sith\xc3\xa9rapie" not in _vault_bytes(settings.home)

        assert hc.include(path=clients / "Martin" / "suivi")
        assert hc.index(clients).added == 1


def test_forgetting_what_is_not_there_is_a_clear_error(
    clients: Path, settings: Settings, tmp_path: Path
) -> None:
    with Huisclos(settings) as hc:
        hc.index(clients)
        with pytest.raises(ConfigError, match="no client named 'Durand'"):
            hc.forget(client="Durand")
        with pytest.raises(ConfigError, match="not inside a folder"):
            hc.forget(path=tmp_path / "elsewhere")
        with pytest.raises(ConfigError, match="whole root"):
            hc.forget(path=clients)
        with pytest.raises(ConfigError, match="either a client or a path"):
            hc.forget()
        assert hc.index(clients).unchanged == 3


def test_an_erasure_cut_short_is_recorded_and_finished_by_the_next_run(
    clients: Path, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    with Huisclos(settings) as hc:
        hc.index(clients)
        total = hc.vault.store.count()
        key_before = settings.resolved_key_file.read_bytes()

        def die(client_id: str) -> None:
            raise KeyboardInterrupt  # killed after the erasure committed

        monkeypatch.setattr(hc.vault.store, "delete_client", die)
        with pytest.raises(KeyboardInterrupt):
            hc.forget(client="Martin")
        monkeypatch.undo()
        assert hc.vault.store.count() == total  # chunks still there, but no row names them
        assert [e.record.action for e in hc.audit(actions=["forget"])] == ["forget"]
        assert (settings.home / "erasure.pending").exists()

        report = hc.index(clients)  # the next writer finishes the erasure

        assert report.excluded == 2
        remaining = hc.vault.manifest.all_files()
        assert hc.vault.store.count() == sum(row.chunks for row in remaining)
        assert settings.resolved_key_file.read_bytes() != key_before  # rotated
        assert not (settings.home / "erasure.pending").exists()
        (finish,) = hc.audit(actions=["erasure.finish"])
        assert finish.record.details["master_key"] == "file"
        assert b"z\xc3\xa9brure" not in _vault_bytes(settings.home)


def test_a_tampered_or_swapped_record_is_reported_never_returned(
    clients: Path, settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    with Huisclos(settings) as hc:
        hc.index(clients)
        collection = hc.vault.store._collections[MAIN]
        got = collection.get(include=["metadatas"])
        by_id = dict(zip(got["ids"], got["metadatas"], strict=True))
        dupont = next(
            i for i, m in by_id.items() if m["client"] == hc.vault.keys.client_id("Dupont SARL")
        )
        martin = [i for i in by_id if i != dupont]
        altered = dict(by_id[dupont])
        token = bytearray(base64.b64decode(altered["ct"]))
        token[20] ^= 1
        altered["ct"] = base64.b64encode(bytes(token)).decode()
        collection.update(ids=[dupont], metadatas=[altered])
        swapped = dict(by_id[martin[0]], ct=by_id[martin[1]]["ct"])  # another record's text
        collection.update(ids=[martin[0]], metadatas=[swapped])

        hits = hc.search("facture zébrure genou honoraires", top_k=10)

        assert {h.chunk_id for h in hits} == {martin[1]}
        assert "failed authentication" in caplog.text and "huisclos index" in caplog.text
        (alarm,) = hc.audit(actions=["tamper"])
        assert set(alarm.record.chunks) == {dupont, martin[0]}
        report = hc.index(clients)  # rebuilt from the files
        assert (report.updated, report.failed) == (2, 0)
        hits = hc.search("facture zébrure genou honoraires", top_k=10)
        assert len(hits) == 3 and len(hc.audit(actions=["tamper"])) == 1


def test_the_cli_asks_for_confirmation_and_says_what_it_erased(
    clients: Path, settings: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    from huisclos.pipeline.cli import main

    with Huisclos(settings) as hc:
        hc.index(clients)
    assert main(["forget", "--client", "Martin"]) == 1  # stdin is not a terminal: no consent
    assert "nothing erased: confirm with --yes" in capsys.readouterr().err
    assert main(["forget", "--client", "Martin", "--yes"]) == 0
    out = capsys.readouterr().out
    assert "erased client 'Martin': 2 files" in out
    assert "data key was destroyed" in out and "master key rotated" in out
    assert f"still on disk, no longer indexed: {clients / 'Martin'}" in out
    assert "huisclos include --client 'Martin'" in out
    assert main(["forget", "--client", "Martin", "--yes"]) == 1
    assert "the client 'Martin' was already forgotten" in capsys.readouterr().err
    assert main(["include", "--client", "Martin"]) == 0
    assert "included again" in capsys.readouterr().out
    assert main(["keys", "rotate"]) == 0
    assert "master key rotated; the new key is in the file" in capsys.readouterr().out
    assert main(["audit", "show", "--action", "forget", "--json"]) == 0
    (record,) = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert record["details"]["key_destroyed"] is True and record["question"] is None


def test_a_client_name_is_found_whatever_its_unicode_form(
    tmp_path: Path, settings: Settings
) -> None:
    import unicodedata

    root = tmp_path / "Partage"
    on_disk = unicodedata.normalize("NFD", "Martin Kiné")  # as some shares store it
    (root / on_disk).mkdir(parents=True)
    (root / on_disk / "bilan.txt").write_text("Bilan de kinésithérapie : zébrure au genou.")
    typed = unicodedata.normalize("NFC", "Martin Kiné")
    assert typed != on_disk
    with Huisclos(settings) as hc:
        hc.index(root)
        assert [h.path for h in hc.search("zébrure genou", client=typed)] == [
            f"{on_disk}/bilan.txt"
        ]
        assert hc.forget(client=typed).files == 1
        assert hc.index(root).excluded == 1
        assert hc.include(client=typed) is True
