"""The watcher on the real filesystem, with the real ingest, inotify and polling.

One watcher per observer kind runs for the whole module over one root; each
test works in its own client folders and waits until the index (manifest and
store) matches what it did on disk.
"""

from __future__ import annotations

import logging
import os
import shutil
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from huisclos.config import StoreError, load_settings
from huisclos.pipeline import Huisclos
from huisclos.pipeline.indexing.ingest import IndexReport

pytestmark = pytest.mark.integration

TIMEOUT = 30.0


@dataclass
class Watched:
    hc: Huisclos
    root: Path
    outside: Path
    mode: str
    reports: list[IndexReport] = field(default_factory=list)

    def files(self) -> dict[str, tuple[str, str, int]]:
        """rel path -> (client, file id, chunks in the store), from the index itself."""
        vault = self.hc.vault
        names = vault.client_names()
        result = {}
        for row in vault.manifest.all_files():
            cipher = vault.keys.cipher(row.client_id, create=False)
            rel = cipher.decrypt(row.path_ct, row.file_id)
            stored = len(vault.store.get_file_chunks(row.file_id))
            result[rel] = (names[row.client_id], row.file_id, stored)
        return result

    def under(self, client: str) -> dict[str, tuple[str, str, int]]:
        return {rel: v for rel, v in self.files().items() if rel.startswith(client + "/")}

    def wait(self, check: Callable[[], bool], what: str) -> None:
        deadline = time.monotonic() + TIMEOUT
        while time.monotonic() < deadline:
            if check():
                return
            time.sleep(0.1)
        raise AssertionError(f"{self.mode}: timed out waiting for {what}: {self.files()}")

    def settle(self) -> None:
        """Wait until no batch has run for a while (nothing left to do)."""
        seen = -1
        while seen != len(self.reports):
            seen = len(self.reports)
            time.sleep(2.5 if self.mode == "polling" else 1.0)


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")


@pytest.fixture(scope="module", params=["inotify", "polling"])
def watched(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Watched]:
    base = tmp_path_factory.mktemp(f"watch-{request.param}")
    root, outside = base / "Clients", base / "elsewhere"
    root.mkdir()
    outside.mkdir()
    settings = load_settings(
        home=base / "vault",
        key_source="file",
        watch_mode=request.param,
        watch_quiet_ms=200,
        watch_poll_seconds=0.5,
        watch_settle_seconds=4.0,  # a loaded machine can stall a writer between its writes
    )
    stop = threading.Event()
    with Huisclos(settings) as hc:
        hc.index(root)  # load the models before the clock starts
        state = Watched(hc, root, outside, request.param)
        thread = threading.Thread(
            target=hc.watch,
            args=(root,),
            kwargs={"stop_event": stop, "on_batch": state.reports.append},
        )
        thread.start()
        state.wait(lambda: _watcher_state(hc) == "running", "the start")
        yield state
        stop.set()
        thread.join(timeout=30)
        assert not thread.is_alive()
        assert _watcher_state(hc) == "stopped"


def _watcher_state(hc: Huisclos) -> str | None:
    watcher = hc.status().watcher
    return watcher.state if watcher else None


def test_a_new_file_is_indexed_and_searchable(watched: Watched) -> None:
    _write(watched.root / "Create" / "note.txt", "Le loyer du local de Nantes est de 950 euros.")
    watched.wait(lambda: "Create/note.txt" in watched.files(), "the new file")
    client, _, chunks = watched.files()["Create/note.txt"]
    assert (client, chunks) == ("Create", 1)
    hits = watched.hc.search("loyer du local de Nantes", client="Create")
    assert [hit.path for hit in hits] == ["Create/note.txt"]


def test_a_modified_file_is_re_embedded_once(watched: Watched) -> None:
    path = watched.root / "Modify" / "note.txt"
    _write(path, "Version un du contrat.")
    watched.wait(lambda: "Modify/note.txt" in watched.files(), "the file")
    first_id = watched.files()["Modify/note.txt"][1]
    _write(path, "Version deux du contrat, avec une clause de résiliation anticipée.")
    watched.wait(lambda: watched.files()["Modify/note.txt"][1] != first_id, "the update")
    assert list(watched.under("Modify")) == ["Modify/note.txt"]
    assert len(watched.hc.vault.store.get_file_chunks(first_id)) == 0
    hits = watched.hc.search("clause de résiliation anticipée", client="Modify")
    assert "Version deux" in hits[0].text


def test_an_atomic_save_is_one_update_of_the_target(watched: Watched) -> None:
    target = watched.root / "Atomic" / "rapport.txt"
    _write(target, "Brouillon du rapport annuel.")
    watched.wait(lambda: "Atomic/rapport.txt" in watched.files(), "the file")
    first_id = watched.files()["Atomic/rapport.txt"][1]
    before = len(watched.reports)
    temporary = target.with_name(".rapport.txt.swp")
    temporary.write_text("Rapport annuel définitif, approuvé par le conseil.", encoding="utf-8")
    os.replace(temporary, target)
    watched.wait(lambda: watched.files()["Atomic/rapport.txt"][1] != first_id, "the update")
    watched.settle()
    assert list(watched.under("Atomic")) == ["Atomic/rapport.txt"]
    changes = [
        (r.added, r.updated, r.removed)
        for r in watched.reports[before:]
        if r.added + r.updated + r.removed
    ]
    assert changes == [(0, 1, 0)]


def test_a_file_written_in_chunks_is_indexed_once_complete(watched: Watched) -> None:
    path = watched.root / "Large" / "grand-livre.txt"
    path.parent.mkdir()
    lines = [f"Écriture {n} : compte 512 banque, montant {n * 10} euros.\n" for n in range(400)]
    with path.open("w", encoding="utf-8") as handle:
        for start in range(0, 400, 100):
            handle.writelines(lines[start : start + 100])
            handle.flush()
            time.sleep(1.2)  # longer than the quiet period and than a poll
    watched.wait(lambda: "Large/grand-livre.txt" in watched.files(), "the file")
    watched.settle()
    chunks = watched.files()["Large/grand-livre.txt"][2]
    hits = watched.hc.search("Écriture 399 compte 512 banque", client="Large", top_k=20)
    assert any("Écriture 399 :" in hit.text for hit in hits)
    assert chunks > 3


def test_renames_and_moves_keep_their_embeddings(watched: Watched) -> None:
    _write(watched.root / "Moves" / "a.txt", "Procès-verbal de l'assemblée générale de juin.")
    watched.wait(lambda: "Moves/a.txt" in watched.files(), "the file")
    file_id = watched.files()["Moves/a.txt"][1]
    before = len(watched.reports)
    (watched.root / "Moves" / "a.txt").rename(watched.root / "Moves" / "pv-juin.txt")
    watched.wait(lambda: list(watched.under("Moves")) == ["Moves/pv-juin.txt"], "the rename")
    (watched.root / "Moves" / "archives").mkdir()
    (watched.root / "Moves" / "pv-juin.txt").rename(
        watched.root / "Moves" / "archives" / "pv-juin.txt"
    )
    watched.wait(lambda: list(watched.under("Moves")) == ["Moves/archives/pv-juin.txt"], "the move")
    assert watched.files()["Moves/archives/pv-juin.txt"][1] == file_id  # same chunks, same id
    watched.settle()
    assert sum(r.chunks_written for r in watched.reports[before:]) == 0


def test_moves_out_of_and_into_the_tree_and_deletes(watched: Watched) -> None:
    _write(watched.root / "InOut" / "keep.txt", "Bilan comptable 2023 de la société.")
    _write(watched.root / "InOut" / "gone.txt", "Relevé bancaire de mars.")
    watched.wait(lambda: len(watched.under("InOut")) == 2, "two files")
    (watched.root / "InOut" / "gone.txt").rename(watched.outside / "gone.txt")
    (watched.root / "InOut" / "keep.txt").unlink()
    watched.wait(lambda: watched.under("InOut") == {}, "the move out and the delete")
    (watched.outside / "gone.txt").rename(watched.root / "InOut" / "back.txt")
    watched.wait(lambda: list(watched.under("InOut")) == ["InOut/back.txt"], "the move in")
    assert watched.under("InOut")["InOut/back.txt"][2] == 1


def test_a_renamed_client_folder_keeps_its_documents_under_the_new_name(watched: Watched) -> None:
    _write(watched.root / "Dupont" / "factures" / "f1.txt", "Facture 2024-117, total 4 860 euros.")
    _write(watched.root / "Dupont" / "contrat.txt", "Contrat de prestation comptable.")
    watched.wait(lambda: len(watched.under("Dupont")) == 2, "two files")
    before = len(watched.reports)
    (watched.root / "Dupont").rename(watched.root / "Dupont SARL")
    expected = {"Dupont SARL/contrat.txt", "Dupont SARL/factures/f1.txt"}
    watched.wait(
        lambda: set(watched.under("Dupont SARL")) == expected and not watched.under("Dupont"),
        "the rename",
    )
    assert {v[0] for v in watched.under("Dupont SARL").values()} == {"Dupont SARL"}
    watched.settle()
    assert (
        sum(r.chunks_written for r in watched.reports[before:]) == 0
    )  # re-encrypted, not re-embedded
    hits = watched.hc.search("facture 2024-117", client="Dupont SARL")
    assert hits and hits[0].path == "Dupont SARL/factures/f1.txt"
    assert watched.hc.search("facture 2024-117", client="Dupont") == []


def test_a_client_folder_moved_out_or_deleted_leaves_nothing(watched: Watched) -> None:
    for client in ("Leaving", "Deleted"):
        for n in range(3):
            _write(watched.root / client / "sub" / f"doc{n}.txt", f"Pièce {n} du dossier {client}.")
    watched.wait(
        lambda: len(watched.under("Leaving")) == 3 and len(watched.under("Deleted")) == 3,
        "six files",
    )
    ids = [v[1] for v in {**watched.under("Leaving"), **watched.under("Deleted")}.values()]
    (watched.root / "Leaving").rename(watched.outside / "Leaving")
    shutil.rmtree(watched.root / "Deleted")
    watched.wait(
        lambda: not watched.under("Leaving") and not watched.under("Deleted"), "the removals"
    )
    assert all(len(watched.hc.vault.store.get_file_chunks(i)) == 0 for i in ids)


def test_lock_temporary_and_hidden_files_are_ignored(watched: Watched) -> None:
    folder = watched.root / "Noise"
    _write(folder / "~$rapport.docx", "lock")
    _write(folder / ".~lock.tableau.xlsx#", "lock")
    _write(folder / "brouillon.tmp", "temp")
    _write(folder / ".cache" / "x.txt", "hidden")
    _write(folder / "vrai.txt", "Le seul vrai document du dossier.")
    watched.wait(lambda: "Noise/vrai.txt" in watched.files(), "the real file")
    watched.settle()
    assert list(watched.under("Noise")) == ["Noise/vrai.txt"]


def test_watching_logs_counts_never_names_or_text(
    watched: Watched, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    _write(
        watched.root / "Secret Client" / "dossier-medical.txt", "Diagnostic : diabète de type 2."
    )
    watched.wait(lambda: "Secret Client/dossier-medical.txt" in watched.files(), "the file")
    (watched.root / "Secret Client" / "dossier-medical.txt").rename(
        watched.root / "Secret Client" / "archive-medicale.txt"
    )
    watched.wait(lambda: "Secret Client/archive-medicale.txt" in watched.files(), "the move")
    logged = "\n".join(record.getMessage() for record in caplog.records)
    assert "batch:" in logged
    for secret in ("Secret Client", "dossier-medical", "archive-medicale", "diabète", "Diagnostic"):
        assert secret not in logged, secret


def test_the_store_holds_exactly_the_chunks_the_manifest_lists(watched: Watched) -> None:
    watched.settle()
    files = watched.files()
    on_disk = {
        p.relative_to(watched.root).as_posix()
        for p in watched.root.rglob("*")
        if p.is_file()
        and not any(
            part.startswith((".", "~")) or part.endswith(".tmp")
            for part in p.relative_to(watched.root).parts
        )
    }
    assert set(files) == on_disk
    assert sum(chunks for _, _, chunks in files.values()) == watched.hc.vault.store.count()
    status = watched.hc.status()
    assert status.watcher is not None and status.watcher.state == "running"
    assert status.watcher.queue == 0 and status.watcher.last_error is None


def test_a_second_watcher_is_refused_but_an_index_run_goes_in_between_batches(
    watched: Watched, tmp_path: Path
) -> None:
    other = Huisclos(watched.hc.settings)
    try:
        with pytest.raises(StoreError, match="already keeps this vault up to date"):
            other.watch(watched.root, stop_event=threading.Event())
        (watched.root / "Cabinet").mkdir(exist_ok=True)
        (watched.root / "Cabinet" / "ajout.txt").write_text("Ajout pendant la veille.")
        report = other.index(watched.root)  # waits for the watcher's batch, if any
        assert report.failed == 0
    finally:
        other.close()


def test_a_failing_step_is_retried_and_the_watcher_goes_on(
    watched: Watched, monkeypatch: pytest.MonkeyPatch
) -> None:
    ingestor = watched.hc._ingest
    real_update = ingestor.update
    calls: list[list[str]] = []

    def flaky(root: Path, paths: list[str], progress: object = None) -> IndexReport:
        calls.append(list(paths))
        if len(calls) == 1:
            raise RuntimeError("the store hiccuped")
        return real_update(root, paths, progress)  # type: ignore[arg-type]

    monkeypatch.setattr(ingestor, "update", flaky)
    _write(watched.root / "Retry" / "a.txt", "Document indexé au second essai.")
    watched.wait(lambda: "Retry/a.txt" in watched.files(), "the retry")
    _write(watched.root / "Retry" / "b.txt", "Document suivant, indexé normalement.")
    watched.wait(lambda: "Retry/b.txt" in watched.files(), "the next change")
    watcher = watched.hc.status().watcher
    assert watcher is not None and watcher.state == "running"
    assert watcher.last_error == "RuntimeError" and watcher.queue == 0


def test_a_root_that_goes_away_removes_nothing_and_is_caught_up_on_return(
    tmp_path: Path,
) -> None:
    root = tmp_path / "Clients"
    _write(root / "Dupont" / "contrat.txt", "Contrat de mission de Dupont SARL.")
    settings = load_settings(home=tmp_path / "vault", key_source="file", watch_quiet_ms=100)
    stop = threading.Event()
    with Huisclos(settings) as hc:
        thread = threading.Thread(target=hc.watch, args=(root,), kwargs={"stop_event": stop})
        thread.start()
        try:
            state = Watched(hc, root, tmp_path, "inotify")
            state.wait(lambda: _watcher_state(hc) == "running", "the start")
            assert list(state.files()) == ["Dupont/contrat.txt"]
            root.rename(tmp_path / "unmounted")  # the share goes away
            state.wait(lambda: _watcher_state(hc) == "waiting for a root", "the wait")
            assert list(state.files()) == ["Dupont/contrat.txt"]  # nothing removed
            _write(tmp_path / "unmounted" / "Dupont" / "avenant.txt", "Avenant signé en mai.")
            (tmp_path / "unmounted").rename(root)  # back, with a file added meanwhile
            expected = ["Dupont/avenant.txt", "Dupont/contrat.txt"]
            state.wait(lambda: sorted(state.files()) == expected, "the catch-up")
            state.wait(lambda: _watcher_state(hc) == "running", "running again")
            _write(root / "Dupont" / "relance.txt", "Relance pour la facture impayée.")
            state.wait(lambda: "Dupont/relance.txt" in state.files(), "a change after the return")
        finally:
            stop.set()
            thread.join(timeout=30)
