"""The watcher over real folders, a real vault and the real ingest.

Most tests script the changes (tests/fakes): a :class:`Disk` changes real
files and sends the events the inotify or polling observer reports for them,
on a fake clock. The watcher runs in the test's thread; its waits move the
fake time, so retries, root checks and batches happen at exact times and
no test sleeps. Probes scheduled on the clock look at the index in between.

The last tests run ``huisclos watch`` with the real inotify observer in real
time (one watcher for the module, generous bounds); the real polling
observer is tested in tests/connectors/test_changes.py.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

import pytest

from huisclos.config import StoreError, load_settings
from huisclos.pipeline import Huisclos
from huisclos.pipeline.indexing.ingest import IndexReport, Progress
from huisclos.pipeline.indexing.watcher import Watcher, WatchState
from tests.fakes.clock import FakeClock
from tests.fakes.events import Disk, ScriptedSource

pytestmark = [
    pytest.mark.integration,
    # watchdog's inotify warns when it re-adds the watch of a folder it watches already
    # (a folder renamed just after it was made): harmless, but as an error (our pytest
    # settings) it would kill the observer's thread and leave the real watcher deaf
    pytest.mark.filterwarnings(
        "ignore:Callback with id .* already exists for watch:RuntimeWarning"
    ),
]

TIMEOUT = 30.0
T = TypeVar("T")
Files = dict[str, tuple[str, str, int]]


def files_of(hc: Huisclos) -> Files:
    """rel path -> (client, file id, chunks in the store), from the index itself."""
    vault = hc.vault
    names = vault.client_names()
    result = {}
    for row in vault.manifest.all_files():
        cipher = vault.keys.cipher(row.client_id, create=False)
        rel = cipher.decrypt(row.path_ct, row.file_id)
        result[rel] = (
            names[row.client_id],
            row.file_id,
            len(vault.store.get_file_chunks(row.file_id)),
        )
    return result


def watcher_status(hc: Huisclos) -> WatchState:
    """What ``huisclos status`` shows of the watcher."""
    status = hc.status().watcher
    assert status is not None
    return status


def under(files: Files, client: str) -> Files:
    return {rel: v for rel, v in files.items() if rel.startswith(client + "/")}


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")


# --- scripted changes on a fake clock ----------------------------------------------------


class Scripted:
    """A :class:`Watcher` driven by a fake clock and the events of a :class:`Disk`."""

    def __init__(self, hc: Huisclos, root: Path, outside: Path, mode: str) -> None:
        self.hc, self.root, self.outside, self.mode = hc, root, outside, mode
        self.clock = FakeClock(limit=3600.0)
        self.source = ScriptedSource(self.clock)
        self.disk = Disk(self.source, "polling" if mode == "polling" else "inotify")
        self.stop = threading.Event()
        self.batches: list[tuple[float, IndexReport]] = []
        self.watcher = Watcher(
            hc.vault,
            hc._ingest,
            [root],
            stop_event=self.stop,
            source=self.source,
            on_batch=lambda report: self.batches.append((self.clock.monotonic(), report)),
            clock=self.clock,
        )

    def at(self, when: float, action: Callable[[], object]) -> None:
        self.clock.at(when, action)

    def probe(self, when: float, look: Callable[[], T]) -> list[T]:
        """What ``look()`` returns at the fake time ``when`` (filled in by :meth:`run`)."""
        seen: list[T] = []
        self.clock.at(when, lambda: seen.append(look()))
        return seen

    def run(self, until: float) -> None:
        """Run the watcher until the fake time ``until``; the index is then consistent."""
        self.clock.at(until, self.stop.set)
        self.watcher.run()
        assert self.watcher.state.state == "stopped"
        rows = self.hc.vault.manifest.all_files()
        assert self.hc.vault.store.count() == sum(row.chunks for row in rows)

    def files(self) -> Files:
        return files_of(self.hc)

    def under(self, client: str) -> Files:
        return under(self.files(), client)

    def changes(self, after: float) -> list[tuple[int, int, int]]:
        """(added, updated, removed) of each batch after ``after`` that changed something."""
        reports = [r for when, r in self.batches if when > after]
        return [(r.added, r.updated, r.removed) for r in reports if r.added + r.updated + r.removed]

    def chunks_written(self, after: float) -> int:
        return sum(r.chunks_written for when, r in self.batches if when > after)


def _scripted(tmp_path: Path, mode: str, **settings: Any) -> Iterator[Scripted]:
    root, outside = tmp_path / "Clients", tmp_path / "elsewhere"
    root.mkdir()
    outside.mkdir()
    home = tmp_path / "vault"
    options = {"key_source": "file", "convert_workers": 0, "watch_mode": mode, **settings}
    with Huisclos(load_settings(home=home, **options)) as hc:
        yield Scripted(hc, root, outside, mode)


@pytest.fixture(params=["inotify", "polling"])
def scripted(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Scripted]:
    yield from _scripted(tmp_path, request.param)


def test_a_new_file_is_indexed_and_searchable(scripted: Scripted) -> None:
    s = scripted
    s.at(
        1.0,
        lambda: s.disk.write(
            s.root / "Create" / "note.txt", "Le loyer du local de Nantes est de 950 euros."
        ),
    )
    s.run(until=10.0)
    # released once complete: closed (inotify), or unchanged for the settle time (polling)
    ready = 0.3 if s.mode == "inotify" else s.hc.settings.watch_settle_seconds
    assert [when for when, _ in s.batches] == [pytest.approx(1.0 + ready, abs=1e-9)]
    client, _, chunks = s.files()["Create/note.txt"]
    assert (client, chunks) == ("Create", 1)
    hits = s.hc.search("loyer du local de Nantes", client="Create")
    assert [hit.path for hit in hits] == ["Create/note.txt"]


def test_a_modified_file_is_re_embedded_once(scripted: Scripted) -> None:
    s = scripted
    path = s.root / "Modify" / "note.txt"
    s.at(1.0, lambda: s.disk.write(path, "Version un du contrat."))
    first = s.probe(5.0, lambda: s.files()["Modify/note.txt"][1])
    s.at(
        6.0,
        lambda: s.disk.write(
            path, "Version deux du contrat, avec une clause de résiliation anticipée."
        ),
    )
    s.run(until=15.0)
    assert list(s.under("Modify")) == ["Modify/note.txt"]
    assert s.files()["Modify/note.txt"][1] != first[0]
    assert len(s.hc.vault.store.get_file_chunks(first[0])) == 0
    assert s.changes(after=5.0) == [(0, 1, 0)]
    hits = s.hc.search("clause de résiliation anticipée", client="Modify")
    assert "Version deux" in hits[0].text


def test_an_atomic_save_is_one_update_of_the_target(scripted: Scripted) -> None:
    s = scripted
    target = s.root / "Atomic" / "rapport.txt"
    s.at(1.0, lambda: s.disk.write(target, "Brouillon du rapport annuel."))
    first = s.probe(5.0, lambda: s.files()["Atomic/rapport.txt"][1])
    temporary = target.with_name(".rapport.txt.swp")
    s.at(
        6.0,
        lambda: s.disk.replace(
            temporary, target, "Rapport annuel définitif, approuvé par le conseil."
        ),
    )
    s.run(until=15.0)
    assert list(s.under("Atomic")) == ["Atomic/rapport.txt"]
    assert s.files()["Atomic/rapport.txt"][1] != first[0]
    assert s.changes(after=5.0) == [(0, 1, 0)]


def test_a_file_written_in_chunks_is_indexed_once_complete(scripted: Scripted) -> None:
    s = scripted
    path = s.root / "Large" / "grand-livre.txt"
    lines = [f"Écriture {n} : compte 512 banque, montant {n * 10} euros.\n" for n in range(400)]
    for part in range(4):  # a writer pausing longer than the quiet period between its writes
        text = "".join(lines[part * 100 : part * 100 + 100])
        s.at(1.0 + part * 0.5, partial(s.disk.append, path, text, close=part == 3))
    s.run(until=15.0)
    assert s.changes(after=0.0) == [(1, 0, 0)]  # indexed once, whole
    chunks = s.files()["Large/grand-livre.txt"][2]
    hits = s.hc.search("Écriture 399 compte 512 banque", client="Large", top_k=20)
    assert any("Écriture 399 :" in hit.text for hit in hits)
    assert chunks > 3


def test_renames_and_moves_keep_their_embeddings(scripted: Scripted) -> None:
    s = scripted
    folder = s.root / "Moves"
    s.at(
        1.0,
        lambda: s.disk.write(folder / "a.txt", "Procès-verbal de l'assemblée générale de juin."),
    )
    first = s.probe(5.0, lambda: s.files()["Moves/a.txt"][1])
    s.at(5.0, lambda: s.disk.rename(folder / "a.txt", folder / "pv-juin.txt"))
    renamed = s.probe(10.0, lambda: list(s.under("Moves")))
    s.at(10.0, lambda: s.disk.mkdir(folder / "archives"))
    s.at(10.5, lambda: s.disk.rename(folder / "pv-juin.txt", folder / "archives" / "pv-juin.txt"))
    s.run(until=20.0)
    assert renamed == [["Moves/pv-juin.txt"]]
    assert list(s.under("Moves")) == ["Moves/archives/pv-juin.txt"]
    assert s.files()["Moves/archives/pv-juin.txt"][1] == first[0]  # same chunks, same id
    assert s.chunks_written(after=5.0) == 0


def test_moves_out_of_and_into_the_tree_and_deletes(scripted: Scripted) -> None:
    s = scripted
    folder = s.root / "InOut"
    s.at(1.0, lambda: s.disk.write(folder / "keep.txt", "Bilan comptable 2023 de la société."))
    s.at(1.0, lambda: s.disk.write(folder / "gone.txt", "Relevé bancaire de mars."))
    both = s.probe(5.0, lambda: len(s.under("InOut")))
    s.at(5.0, lambda: s.disk.move_out(folder / "gone.txt", s.outside / "gone.txt"))
    s.at(5.0, lambda: s.disk.delete(folder / "keep.txt"))
    emptied = s.probe(10.0, lambda: s.under("InOut"))
    s.at(10.0, lambda: s.disk.move_in(s.outside / "gone.txt", folder / "back.txt"))
    s.run(until=20.0)
    assert (both, emptied) == ([2], [{}])
    assert list(s.under("InOut")) == ["InOut/back.txt"]
    assert s.under("InOut")["InOut/back.txt"][2] == 1


def test_a_renamed_client_folder_keeps_its_documents_under_the_new_name(scripted: Scripted) -> None:
    s = scripted
    s.at(
        1.0,
        lambda: s.disk.write(
            s.root / "Dupont" / "factures" / "f1.txt", "Facture 2024-117, total 4 860 euros."
        ),
    )
    s.at(
        1.0,
        lambda: s.disk.write(s.root / "Dupont" / "contrat.txt", "Contrat de prestation comptable."),
    )
    before = s.probe(5.0, lambda: len(s.under("Dupont")))
    s.at(5.0, lambda: s.disk.rename(s.root / "Dupont", s.root / "Dupont SARL"))
    s.run(until=15.0)
    assert before == [2]
    assert set(s.under("Dupont SARL")) == {"Dupont SARL/contrat.txt", "Dupont SARL/factures/f1.txt"}
    assert not s.under("Dupont")
    assert {v[0] for v in s.under("Dupont SARL").values()} == {"Dupont SARL"}
    assert s.chunks_written(after=5.0) == 0  # re-encrypted, not re-embedded
    hits = s.hc.search("facture 2024-117", client="Dupont SARL")
    assert hits and hits[0].path == "Dupont SARL/factures/f1.txt"
    assert s.hc.search("facture 2024-117", client="Dupont") == []


def test_a_client_folder_moved_out_or_deleted_leaves_nothing(scripted: Scripted) -> None:
    s = scripted
    for client in ("Leaving", "Deleted"):
        for n in range(3):
            path = s.root / client / "sub" / f"doc{n}.txt"
            s.at(1.0, partial(s.disk.write, path, f"Pièce {n} du dossier {client}."))
    ids = s.probe(
        5.0, lambda: [v[1] for v in {**s.under("Leaving"), **s.under("Deleted")}.values()]
    )
    s.at(5.0, lambda: s.disk.move_out(s.root / "Leaving", s.outside / "Leaving"))
    s.at(5.0, lambda: s.disk.delete(s.root / "Deleted"))
    s.run(until=15.0)
    assert len(ids[0]) == 6
    assert not s.under("Leaving") and not s.under("Deleted")
    assert all(len(s.hc.vault.store.get_file_chunks(i)) == 0 for i in ids[0])


def test_lock_temporary_and_hidden_files_are_ignored(scripted: Scripted) -> None:
    s = scripted
    folder = s.root / "Noise"
    for name, text in [
        ("~$rapport.docx", "lock"),
        (".~lock.tableau.xlsx#", "lock"),
        ("brouillon.tmp", "temp"),
        (".cache/x.txt", "hidden"),
        ("vrai.txt", "Le seul vrai document du dossier."),
    ]:
        s.at(1.0, partial(s.disk.write, folder / name, text))
    s.run(until=15.0)
    assert list(s.under("Noise")) == ["Noise/vrai.txt"]


def test_watching_logs_counts_never_names_or_text(
    scripted: Scripted, caplog: pytest.LogCaptureFixture
) -> None:
    s = scripted
    caplog.set_level(logging.DEBUG)
    folder = s.root / "Secret Client"
    s.at(
        1.0, lambda: s.disk.write(folder / "dossier-medical.txt", "Diagnostic : diabète de type 2.")
    )
    s.at(
        5.0, lambda: s.disk.rename(folder / "dossier-medical.txt", folder / "archive-medicale.txt")
    )
    s.run(until=15.0)
    assert list(s.under("Secret Client")) == ["Secret Client/archive-medicale.txt"]
    logged = "\n".join(record.getMessage() for record in caplog.records)
    assert "batch:" in logged
    for secret in ("Secret Client", "dossier-medical", "archive-medicale", "diabète", "Diagnostic"):
        assert secret not in logged, secret


@pytest.fixture
def quarter(tmp_path: Path) -> Iterator[Scripted]:
    """Inotify, a quiet period of 0.25 s: every time in the test is an exact float."""
    yield from _scripted(tmp_path, "inotify", watch_quiet_ms=250)


def test_a_failing_path_is_retried_with_a_growing_delay_and_holds_nothing_back(
    quarter: Scripted, monkeypatch: pytest.MonkeyPatch
) -> None:
    s = quarter
    (s.root / "Retry").mkdir()
    ingestor = s.hc._ingest
    real_update = ingestor.update
    calls: list[tuple[float, list[str]]] = []

    def flaky(root: Path, paths: Iterable[str], progress: Progress | None = None) -> IndexReport:
        rels = list(paths)
        calls.append((s.clock.monotonic(), rels))
        if rels == ["Retry/a.txt"] and [c[1] for c in calls].count(rels) <= 3:
            raise RuntimeError("the store hiccuped")
        return real_update(root, rels, progress)

    monkeypatch.setattr(ingestor, "update", flaky)
    s.at(
        1.0, lambda: s.disk.write(s.root / "Retry" / "a.txt", "Document indexé au quatrième essai.")
    )
    s.at(
        5.0,
        lambda: s.disk.write(s.root / "Retry" / "b.txt", "Document suivant, indexé normalement."),
    )
    waiting = s.probe(10.0, lambda: (watcher_status(s.hc).queue, sorted(s.under("Retry"))))
    done = s.probe(16.0, lambda: watcher_status(s.hc))
    s.run(until=20.0)
    a, b = ["Retry/a.txt"], ["Retry/b.txt"]
    # the batch at 1.25, then retries 2, 4 and 8 s after each failure (checked every second)
    assert calls == [(1.25, a), (3.25, a), (5.25, b), (7.25, a), (15.25, a)]
    assert waiting == [(1, ["Retry/b.txt"])]  # a.txt stays in the queue meanwhile
    assert sorted(s.under("Retry")) == ["Retry/a.txt", "Retry/b.txt"]
    status = done[0]
    assert status.state == "running"
    assert status.last_error == "RuntimeError" and status.queue == 0


def test_a_root_that_goes_away_removes_nothing_and_is_caught_up_on_return(
    quarter: Scripted,
) -> None:
    s = quarter
    _write(s.root / "Dupont" / "contrat.txt", "Contrat de mission de Dupont SARL.")
    unmounted = s.outside / "unmounted"

    def state() -> tuple[str, list[str]]:
        return s.watcher.state.state, sorted(s.files())

    def back() -> None:
        _write(unmounted / "Dupont" / "avenant.txt", "Avenant signé en mai.")
        unmounted.rename(s.root)  # back, with a file added meanwhile

    contrat, both = ["Dupont/contrat.txt"], ["Dupont/avenant.txt", "Dupont/contrat.txt"]
    seen = [s.probe(when, state) for when in (2.0, 3.0, 3.001, 12.999, 13.0, 13.001)]
    s.at(2.5, lambda: s.root.rename(unmounted))  # the share goes away (no event reports it)
    s.at(10.0, back)
    s.at(
        14.0,
        lambda: s.disk.write(s.root / "Dupont" / "relance.txt", "Relance pour la facture impayée."),
    )
    s.run(until=20.0)
    assert seen == [
        [("running", contrat)],
        [("running", contrat)],
        [("waiting for a root", contrat)],  # seen at the next idle tick; nothing removed
        [("waiting for a root", contrat)],
        [("waiting for a root", contrat)],  # checked again every 5 s: 8.0, 13.0
        [("running", both)],  # caught up at 13.0
    ]
    assert sorted(s.files()) == ["Dupont/avenant.txt", "Dupont/contrat.txt", "Dupont/relance.txt"]
    assert [when for when, _ in s.batches] == [14.25]  # a change after the return


# --- the real thing: `huisclos watch` with inotify, in real time -----------------------------


@dataclass
class Watched:
    hc: Huisclos
    root: Path
    reports: list[IndexReport] = field(default_factory=list)

    def files(self) -> Files:
        return files_of(self.hc)

    def under(self, client: str) -> Files:
        return under(self.files(), client)

    def wait(self, check: Callable[[], bool], what: str) -> None:
        deadline = time.monotonic() + TIMEOUT
        while not check():
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting for {what}: {self.files()}")
            time.sleep(0.1)

    def settle(self) -> None:
        """Wait until no batch has run for a while (nothing left to do)."""
        seen = -1
        while seen != len(self.reports):
            seen = len(self.reports)
            time.sleep(1.0)


def _watcher_state(hc: Huisclos) -> str | None:
    watcher = hc.status().watcher
    return watcher.state if watcher else None


@pytest.fixture(scope="module")
def watched(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Watched]:
    base = tmp_path_factory.mktemp("watch-inotify")
    root = base / "Clients"
    root.mkdir()
    settings = load_settings(
        home=base / "vault",
        key_source="file",
        watch_mode="inotify",
        watch_quiet_ms=200,
        watch_settle_seconds=4.0,  # a loaded machine can stall a writer between its writes
    )
    stop = threading.Event()
    with Huisclos(settings) as hc:
        hc.index(root)  # load the models before the clock starts
        state = Watched(hc, root)
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


def test_real_a_new_file_is_indexed_and_searchable(watched: Watched) -> None:
    _write(watched.root / "Create" / "note.txt", "Le loyer du local de Nantes est de 950 euros.")
    watched.wait(lambda: "Create/note.txt" in watched.files(), "the new file")
    client, _, chunks = watched.files()["Create/note.txt"]
    assert (client, chunks) == ("Create", 1)
    hits = watched.hc.search("loyer du local de Nantes", client="Create")
    assert [hit.path for hit in hits] == ["Create/note.txt"]


def test_real_an_atomic_save_is_one_update_of_the_target(watched: Watched) -> None:
    target = watched.root / "Atomic" / "rapport.txt"
    _write(target, "Brouillon du rapport annuel.")
    watched.wait(lambda: "Atomic/rapport.txt" in watched.files(), "the file")
    first_id = watched.files()["Atomic/rapport.txt"][1]
    before = len(watched.reports)
    temporary = target.with_name(".rapport.txt.swp")
    temporary.write_text("Rapport annuel définitif, approuvé par le conseil.", encoding="utf-8")
    temporary.replace(target)
    watched.wait(lambda: watched.files()["Atomic/rapport.txt"][1] != first_id, "the update")
    watched.settle()
    assert list(watched.under("Atomic")) == ["Atomic/rapport.txt"]
    changes = [
        (r.added, r.updated, r.removed)
        for r in watched.reports[before:]
        if r.added + r.updated + r.removed
    ]
    assert changes == [(0, 1, 0)]


def test_real_a_renamed_client_folder_keeps_its_documents(watched: Watched) -> None:
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
    assert sum(r.chunks_written for r in watched.reports[before:]) == 0  # not re-embedded
    hits = watched.hc.search("facture 2024-117", client="Dupont SARL")
    assert hits and hits[0].path == "Dupont SARL/factures/f1.txt"
    assert watched.hc.search("facture 2024-117", client="Dupont") == []


def test_real_a_second_watcher_is_refused_but_an_index_run_goes_in_between_batches(
    watched: Watched,
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


def test_real_the_store_holds_exactly_the_chunks_the_manifest_lists(watched: Watched) -> None:
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
