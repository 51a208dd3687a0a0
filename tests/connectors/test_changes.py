"""Change batches: quiet period, cap on delay, completeness, filters, moves.

Most tests feed watchdog events from a fake source with short timings; the
last ones use the real inotify and polling observers on the real filesystem.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from watchdog.events import (
    DirCreatedEvent,
    DirMovedEvent,
    FileClosedEvent,
    FileCreatedEvent,
    FileDeletedEvent,
    FileModifiedEvent,
    FileMovedEvent,
    FileSystemEvent,
)

from huisclos.config import load_settings
from huisclos.connectors.changes import (
    Change,
    FileChange,
    network_filesystem,
    observer_mode,
    watch_changes,
)
from huisclos.connectors.scan import ignore_filter

ROOT = Path("/srv/Clients")
KEEP = ignore_filter(load_settings().ignore_patterns)

Batch = set[tuple[str, str]]


class FakeSource:
    def __init__(self) -> None:
        self.emit: Callable[[FileSystemEvent], None] | None = None
        self.stopped = False

    def start(self, emit: Callable[[FileSystemEvent], None]) -> None:
        self.emit = emit

    def stop(self) -> None:
        self.stopped = True

    def send(self, *events: FileSystemEvent) -> None:
        assert self.emit is not None
        for event in events:
            self.emit(event)


class Run:
    """A change stream consumed in a thread; batches with their arrival times."""

    def __init__(self, source: FakeSource | None, roots: list[Path], **options: object) -> None:
        self.stop = threading.Event()
        self.batches: list[tuple[float, set[FileChange]]] = []
        self.stream = watch_changes(roots, KEEP, stop_event=self.stop, source=source, **options)  # type: ignore[arg-type]
        self.stream.__enter__()
        self.started = time.monotonic()
        self.thread = threading.Thread(target=self._consume)
        self.thread.start()

    def _consume(self) -> None:
        for batch in self.stream:
            self.batches.append((time.monotonic(), batch))

    def simple(self) -> list[Batch]:
        return [{(c.change.name, c.rel) for c in batch} for _, batch in self.batches]

    def close(self) -> None:
        self.stop.set()
        self.thread.join(timeout=5)
        self.stream.__exit__(None, None, None)


@pytest.fixture
def fake() -> Iterator[tuple[FakeSource, Callable[..., Run]]]:
    source = FakeSource()
    runs: list[Run] = []

    def start(**options: object) -> Run:
        defaults: dict[str, object] = {"quiet_ms": 60, "max_delay_ms": 500, "settle_seconds": 0.4}
        run = Run(source, [ROOT], **{**defaults, **options})
        runs.append(run)
        return run

    yield source, start
    for run in runs:
        run.close()
    assert source.stopped


def p(rel: str) -> str:
    return str(ROOT / rel)


def test_a_saved_file_is_one_change_after_the_quiet_period(
    fake: tuple[FakeSource, Callable[..., Run]],
) -> None:
    source, start = fake
    run = start()
    sent = time.monotonic()
    source.send(
        FileCreatedEvent(p("Dupont/a.txt")),
        FileModifiedEvent(p("Dupont/a.txt")),
        FileClosedEvent(p("Dupont/a.txt")),
    )
    time.sleep(0.3)
    assert run.simple() == [{("added", "Dupont/a.txt")}]
    assert run.batches[0][0] - sent >= 0.06


def test_a_file_still_open_is_held_until_closed(
    fake: tuple[FakeSource, Callable[..., Run]],
) -> None:
    source, start = fake
    run = start(settle_seconds=5.0)
    source.send(FileCreatedEvent(p("Dupont/big.pdf")), FileModifiedEvent(p("Dupont/big.pdf")))
    time.sleep(0.3)
    assert run.batches == []
    source.send(FileModifiedEvent(p("Dupont/big.pdf")), FileClosedEvent(p("Dupont/big.pdf")))
    time.sleep(0.3)
    assert run.simple() == [{("added", "Dupont/big.pdf")}]


def test_a_file_never_closed_is_taken_once_idle_for_the_settle_time(
    fake: tuple[FakeSource, Callable[..., Run]],
) -> None:
    source, start = fake
    run = start(settle_seconds=0.4)
    source.send(FileModifiedEvent(p("Dupont/journal.log.txt")))
    time.sleep(0.25)
    assert run.batches == []
    time.sleep(0.4)
    assert run.simple() == [{("modified", "Dupont/journal.log.txt")}]


def test_continuous_activity_cannot_delay_a_batch_beyond_the_cap(
    fake: tuple[FakeSource, Callable[..., Run]],
) -> None:
    source, start = fake
    run = start(quiet_ms=100, max_delay_ms=400)
    source.send(FileCreatedEvent(p("A/done.txt")), FileClosedEvent(p("A/done.txt")))
    sent = time.monotonic()
    while time.monotonic() - sent < 1.0:  # another file written without pause
        source.send(FileModifiedEvent(p("A/stream.txt")))
        time.sleep(0.02)
    assert run.simple()[0] == {("added", "A/done.txt")}
    assert 0.4 <= run.batches[0][0] - sent < 0.7


def test_an_atomic_save_is_one_change_of_the_target(
    fake: tuple[FakeSource, Callable[..., Run]],
) -> None:
    source, start = fake
    run = start()
    temporary = p("Dupont/.rapport.docx.swp")
    source.send(
        FileCreatedEvent(temporary), FileModifiedEvent(temporary), FileClosedEvent(temporary)
    )
    source.send(FileMovedEvent(temporary, p("Dupont/rapport.docx")))
    time.sleep(0.3)
    assert run.simple() == [{("added", "Dupont/rapport.docx")}]


def test_lock_temporary_and_hidden_files_are_not_reported(
    fake: tuple[FakeSource, Callable[..., Run]],
) -> None:
    source, start = fake
    run = start()
    for rel in (
        "Dupont/~$rapport.docx",
        "Dupont/.~lock.x.ods#",
        "Dupont/a.tmp",
        "Dupont/.git/config",
        "Dupont/b.txt~",
    ):
        source.send(FileCreatedEvent(p(rel)), FileClosedEvent(p(rel)))
    source.send(FileCreatedEvent("/elsewhere/x.txt"), FileClosedEvent("/elsewhere/x.txt"))
    time.sleep(0.3)
    assert run.batches == []


def test_a_move_reports_both_ends_in_one_batch(fake: tuple[FakeSource, Callable[..., Run]]) -> None:
    source, start = fake
    run = start()
    source.send(FileMovedEvent(p("Dupont/a.txt"), p("Dupont/archives/a.txt")))
    source.send(DirMovedEvent(p("Martin"), p("Martin SARL")))
    source.send(FileMovedEvent(p("Dupont/b.txt"), "/elsewhere/b.txt"))  # moved out
    time.sleep(0.3)
    assert run.simple() == [
        {
            ("deleted", "Dupont/a.txt"),
            ("added", "Dupont/archives/a.txt"),
            ("deleted", "Martin"),
            ("added", "Martin SARL"),
            ("deleted", "Dupont/b.txt"),
        }
    ]
    assert {c.rel for c in run.batches[0][1] if c.is_dir} == {"Martin", "Martin SARL"}


def test_a_deletion_waits_for_a_creation_it_may_pair_with(
    fake: tuple[FakeSource, Callable[..., Run]],
) -> None:
    # the polling observer can see a move as a delete plus a create
    source, start = fake
    run = start(settle_seconds=0.5)
    source.send(FileDeletedEvent(p("Dupont/a.txt")), FileCreatedEvent(p("Dupont/b.txt")))
    time.sleep(0.3)
    assert run.batches == []
    time.sleep(0.5)
    assert run.simple() == [{("deleted", "Dupont/a.txt"), ("added", "Dupont/b.txt")}]


def test_files_of_a_new_directory_come_with_it(fake: tuple[FakeSource, Callable[..., Run]]) -> None:
    # watchdog lists the files of a directory that appears, without close events
    source, start = fake
    run = start(settle_seconds=5.0)
    source.send(
        DirCreatedEvent(p("Nouveau")),
        FileCreatedEvent(p("Nouveau/a.txt")),
        FileCreatedEvent(p("Nouveau/b.txt")),
    )
    time.sleep(0.3)
    assert run.simple() == [
        {("added", "Nouveau"), ("added", "Nouveau/a.txt"), ("added", "Nouveau/b.txt")}
    ]


def test_a_new_directory_waits_for_a_file_being_written_in_it(
    fake: tuple[FakeSource, Callable[..., Run]],
) -> None:
    # its scan would otherwise read the file half-written
    source, start = fake
    run = start(settle_seconds=5.0)
    source.send(
        DirCreatedEvent(p("Grand livre")),
        FileCreatedEvent(p("Grand livre/2026.txt")),
        FileModifiedEvent(p("Grand livre/2026.txt")),
    )
    time.sleep(0.3)
    assert run.batches == []
    source.send(
        FileModifiedEvent(p("Grand livre/2026.txt")), FileClosedEvent(p("Grand livre/2026.txt"))
    )
    time.sleep(0.3)
    assert run.simple() == [{("added", "Grand livre"), ("added", "Grand livre/2026.txt")}]


def test_the_last_event_decides_between_added_modified_and_deleted(
    fake: tuple[FakeSource, Callable[..., Run]],
) -> None:
    source, start = fake
    run = start()
    source.send(
        FileDeletedEvent(p("A/x.txt")),
        FileCreatedEvent(p("A/x.txt")),
        FileClosedEvent(p("A/x.txt")),
    )
    source.send(
        FileCreatedEvent(p("A/y.txt")),
        FileClosedEvent(p("A/y.txt")),
        FileDeletedEvent(p("A/y.txt")),
    )
    time.sleep(0.3)
    assert run.simple() == [{("modified", "A/x.txt"), ("deleted", "A/y.txt")}]


def test_idle_ticks_and_stop(fake: tuple[FakeSource, Callable[..., Run]]) -> None:
    run = fake[1](idle_ms=100)
    time.sleep(0.35)
    assert len(run.batches) >= 2 and all(batch == set() for _, batch in run.batches)
    run.close()
    assert not run.thread.is_alive()


def test_network_shares_are_watched_by_polling(tmp_path: Path) -> None:
    mountinfo = tmp_path / "mountinfo"
    mountinfo.write_text(
        "22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw\n"
        "40 22 0:35 / /srv/Clients rw,relatime shared:20 - cifs //nas/clients rw,vers=3.0\n"
        "41 22 0:36 / /mnt/nfs\\040share rw - nfs4 nas:/export rw\n",
        encoding="utf-8",
    )
    assert network_filesystem(Path("/srv/Clients/Dupont"), mountinfo) == "cifs"
    assert network_filesystem(Path("/mnt/nfs share/x"), mountinfo) == "nfs4"
    assert network_filesystem(Path("/srv/Clientsbis"), mountinfo) is None
    assert network_filesystem(Path("/home/cabinet"), mountinfo) is None
    assert observer_mode(tmp_path, "auto") == "inotify"  # tmp is local here
    assert observer_mode(tmp_path, "polling") == "polling"


# --- the real observers ------------------------------------------------------------


@pytest.mark.parametrize("mode", ["inotify", "polling"])
def test_real_observer_reports_a_file_once_its_writer_is_done(tmp_path: Path, mode: str) -> None:
    root = tmp_path / "Clients"
    (root / "Dupont").mkdir(parents=True)
    run = Run(
        None,
        [root],
        mode=mode,
        quiet_ms=100,
        max_delay_ms=3000,
        poll_seconds=0.2,
        settle_seconds=5.0,
    )
    try:
        assert run.stream.modes == {root: mode}
        time.sleep(0.5)
        path = root / "Dupont" / "releve.txt"
        with path.open("w", encoding="utf-8") as handle:
            for n in range(4):
                handle.write(f"ligne {n}\n" * 1000)
                handle.flush()
                time.sleep(0.4)  # longer than the quiet period and than a poll
            closed_size = handle.tell()
        deadline = time.monotonic() + 5
        while not run.batches and time.monotonic() < deadline:
            time.sleep(0.05)
        (root / "Dupont" / "~$lock.docx").write_text("lock", encoding="utf-8")
        path.rename(root / "Dupont" / "releve-2024.txt")
        time.sleep(1.5)
    finally:
        run.close()
    first = run.simple()[0]
    assert first == {("added", "Dupont/releve.txt")}
    assert path.with_name("releve-2024.txt").stat().st_size == closed_size
    rest = set().union(*run.simple()[1:])
    assert rest == {("deleted", "Dupont/releve.txt"), ("added", "Dupont/releve-2024.txt")}


def test_lost_inotify_events_ask_for_a_rescan_of_the_root(tmp_path: Path) -> None:
    root = tmp_path / "Clients"
    root.mkdir()
    run = Run(None, [root], mode="inotify", quiet_ms=50)
    try:
        logging.getLogger("watchdog.observers.inotify_c").warning(
            "Inotify queue overflowed; filesystem events were lost"
        )
        time.sleep(0.4)
    finally:
        run.close()
    assert [{(c.change, c.rel, c.is_dir) for c in b} for _, b in run.batches] == [
        {(Change.modified, "", True)}
    ]
