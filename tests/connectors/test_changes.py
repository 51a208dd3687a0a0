"""Change batches: quiet period, cap on delay, completeness, filters, moves.

Most tests script watchdog events on a fake clock (tests/fakes): the stream
runs in the test's thread, its waits move the fake time, and each batch is
seen at the exact time the rules give (``quiet_ms`` after the last event,
``max_delay_ms`` after the first, ``settle_seconds`` after the last write).
The last tests use the real inotify and polling observers on the real
filesystem, with real time and generous bounds.
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
from tests.fakes.clock import FakeClock
from tests.fakes.events import ScriptedSource

ROOT = Path("/srv/Clients")
KEEP = ignore_filter(load_settings().ignore_patterns)
QUIET, MAX_DELAY, SETTLE = 0.3, 3.0, 2.0  # the defaults of watch_changes

Batch = set[tuple[str, str]]


def p(rel: str) -> str:
    return str(ROOT / rel)


def saved(rel: str) -> list[FileCreatedEvent | FileModifiedEvent | FileClosedEvent]:
    """What inotify reports for a new file written and closed."""
    return [FileCreatedEvent(p(rel)), FileModifiedEvent(p(rel)), FileClosedEvent(p(rel))]


def simple(batch: set[FileChange]) -> Batch:
    return {(c.change.name, c.rel) for c in batch}


class Script:
    """Scripted events on a fake clock, and the batches the stream releases."""

    def __init__(self) -> None:
        self.clock = FakeClock(limit=3600.0)
        self.source = ScriptedSource(self.clock)
        self.stop = threading.Event()
        self.raw: list[tuple[float, set[FileChange]]] = []

    def at(self, when: float, *events: object) -> None:
        self.source.at(when, *events)  # type: ignore[arg-type]

    def run(self, until: float, **options: object) -> list[tuple[float, Batch]]:
        """Iterate the stream until the fake time ``until``: (release time, batch) pairs."""
        self.clock.at(until, self.stop.set)
        stream = watch_changes(
            [ROOT],
            KEEP,
            stop_event=self.stop,
            source=self.source,
            clock=self.clock,
            **options,  # type: ignore[arg-type]
        )
        for batch in stream:
            self.raw.append((self.clock.monotonic(), batch))
        assert self.source.stopped  # the stream stops its source when it ends
        return [(when, simple(batch)) for when, batch in self.raw]


@pytest.fixture
def script() -> Script:
    return Script()


def at(when: float) -> object:
    """A release time, to the nanosecond (sums of decimal seconds are not exact floats)."""
    return pytest.approx(when, abs=1e-9)


def test_a_saved_file_is_one_change_after_the_quiet_period(script: Script) -> None:
    script.at(1.0, *saved("Dupont/a.txt"))
    assert script.run(until=10.0) == [(at(1.0 + QUIET), {("added", "Dupont/a.txt")})]


def test_each_event_restarts_the_quiet_period(script: Script) -> None:
    script.at(1.0, *saved("Dupont/a.txt"))
    script.at(1.2, *saved("Dupont/b.txt"))  # within the quiet period of a.txt
    script.at(1.6, *saved("Dupont/c.txt"))  # after b.txt's
    assert script.run(until=10.0) == [
        (at(1.2 + QUIET), {("added", "Dupont/a.txt"), ("added", "Dupont/b.txt")}),
        (at(1.6 + QUIET), {("added", "Dupont/c.txt")}),
    ]


def test_a_file_still_open_is_held_until_closed(script: Script) -> None:
    script.at(1.0, FileCreatedEvent(p("Dupont/big.pdf")), FileModifiedEvent(p("Dupont/big.pdf")))
    script.at(1.5, FileModifiedEvent(p("Dupont/big.pdf")))
    script.at(3.5, FileModifiedEvent(p("Dupont/big.pdf")), FileClosedEvent(p("Dupont/big.pdf")))
    assert script.run(until=20.0, settle_seconds=5.0) == [
        (at(3.5 + QUIET), {("added", "Dupont/big.pdf")})
    ]


def test_a_file_never_closed_is_taken_once_idle_for_the_settle_time(script: Script) -> None:
    script.at(1.0, FileModifiedEvent(p("Dupont/journal.log.txt")))
    script.at(2.5, FileModifiedEvent(p("Dupont/journal.log.txt")))  # the settle time restarts
    assert script.run(until=20.0) == [(at(2.5 + SETTLE), {("modified", "Dupont/journal.log.txt")})]


def test_continuous_activity_cannot_delay_a_batch_beyond_the_cap(script: Script) -> None:
    script.at(1.0, FileCreatedEvent(p("A/done.txt")), FileClosedEvent(p("A/done.txt")))
    for tenth in range(10, 61):  # another file written without pause from 1.0 to 6.0
        script.at(tenth / 10, FileModifiedEvent(p("A/stream.txt")))
    assert script.run(until=20.0) == [
        (at(1.0 + MAX_DELAY), {("added", "A/done.txt")}),  # not held back by stream.txt
        (at(6.0 + SETTLE), {("modified", "A/stream.txt")}),  # once its writer paused
    ]


def test_an_atomic_save_is_one_change_of_the_target(script: Script) -> None:
    temporary = "Dupont/.rapport.docx.swp"
    script.at(1.0, *saved(temporary), FileMovedEvent(p(temporary), p("Dupont/rapport.docx")))
    assert script.run(until=10.0) == [(at(1.0 + QUIET), {("added", "Dupont/rapport.docx")})]


def test_lock_temporary_and_hidden_files_are_not_reported(script: Script) -> None:
    for rel in (
        "Dupont/~$rapport.docx",
        "Dupont/.~lock.x.ods#",
        "Dupont/a.tmp",
        "Dupont/.git/config",
        "Dupont/b.txt~",
    ):
        script.at(1.0, FileCreatedEvent(p(rel)), FileClosedEvent(p(rel)))
    script.at(1.0, FileCreatedEvent("/elsewhere/x.txt"), FileClosedEvent("/elsewhere/x.txt"))
    assert script.run(until=60.0) == []


def test_a_move_reports_both_ends_in_one_batch(script: Script) -> None:
    script.at(1.0, FileMovedEvent(p("Dupont/a.txt"), p("Dupont/archives/a.txt")))
    script.at(1.0, DirMovedEvent(p("Martin"), p("Martin SARL")))
    script.at(1.0, FileMovedEvent(p("Dupont/b.txt"), "/elsewhere/b.txt"))  # moved out
    assert script.run(until=10.0) == [
        (
            at(1.0 + QUIET),
            {
                ("deleted", "Dupont/a.txt"),
                ("added", "Dupont/archives/a.txt"),
                ("deleted", "Martin"),
                ("added", "Martin SARL"),
                ("deleted", "Dupont/b.txt"),
            },
        )
    ]
    assert {c.rel for c in script.raw[0][1] if c.is_dir} == {"Martin", "Martin SARL"}


def test_a_deletion_waits_for_a_creation_it_may_pair_with(script: Script) -> None:
    # the polling observer can see a move as a delete plus a create
    script.at(1.0, FileDeletedEvent(p("Dupont/a.txt")), FileCreatedEvent(p("Dupont/b.txt")))
    assert script.run(until=20.0, mode="polling") == [
        (at(1.0 + SETTLE), {("deleted", "Dupont/a.txt"), ("added", "Dupont/b.txt")})
    ]


def test_a_deletion_waits_no_longer_than_the_cap(script: Script) -> None:
    script.at(1.0, FileDeletedEvent(p("Dupont/a.txt")), FileCreatedEvent(p("Dupont/b.txt")))
    for tenth in range(11, 51):  # b.txt still growing until 5.0
        script.at(tenth / 10, FileModifiedEvent(p("Dupont/b.txt")))
    assert script.run(until=20.0, mode="polling") == [
        (at(1.0 + MAX_DELAY), {("deleted", "Dupont/a.txt")}),
        (at(5.0 + SETTLE), {("added", "Dupont/b.txt")}),
    ]


def test_polling_takes_a_file_once_unchanged_for_one_and_a_half_polls(script: Script) -> None:
    # polling sees no close: a file is complete once its size and mtime stay the same
    script.at(1.0, FileCreatedEvent(p("Dupont/a.txt")))
    script.at(1.5, FileModifiedEvent(p("Dupont/a.txt")))
    script.at(1.0, FileCreatedEvent(p("Martin/b.txt")))
    assert script.run(until=20.0, mode="polling", poll_seconds=2.0, settle_seconds=0.5) == [
        (at(1.0 + 1.5 * 2.0), {("added", "Martin/b.txt")}),
        (at(1.5 + 1.5 * 2.0), {("added", "Dupont/a.txt")}),
    ]


def test_files_of_a_new_directory_come_with_it(script: Script) -> None:
    # watchdog lists the files of a directory that appears, without close events
    script.at(
        1.0,
        DirCreatedEvent(p("Nouveau")),
        FileCreatedEvent(p("Nouveau/a.txt")),
        FileCreatedEvent(p("Nouveau/b.txt")),
    )
    assert script.run(until=20.0, settle_seconds=5.0) == [
        (
            at(1.0 + QUIET),
            {("added", "Nouveau"), ("added", "Nouveau/a.txt"), ("added", "Nouveau/b.txt")},
        )
    ]


def test_a_new_directory_waits_for_a_file_being_written_in_it(script: Script) -> None:
    # its scan would otherwise read the file half-written
    script.at(
        1.0,
        DirCreatedEvent(p("Grand livre")),
        FileCreatedEvent(p("Grand livre/2026.txt")),
        FileModifiedEvent(p("Grand livre/2026.txt")),
    )
    script.at(
        3.5,
        FileModifiedEvent(p("Grand livre/2026.txt")),
        FileClosedEvent(p("Grand livre/2026.txt")),
    )
    assert script.run(until=20.0, settle_seconds=5.0) == [
        (at(3.5 + QUIET), {("added", "Grand livre"), ("added", "Grand livre/2026.txt")})
    ]


def test_the_last_event_decides_between_added_modified_and_deleted(script: Script) -> None:
    script.at(
        1.0,
        FileDeletedEvent(p("A/x.txt")),
        FileCreatedEvent(p("A/x.txt")),
        FileClosedEvent(p("A/x.txt")),
    )
    script.at(
        1.0,
        FileCreatedEvent(p("A/y.txt")),
        FileClosedEvent(p("A/y.txt")),
        FileDeletedEvent(p("A/y.txt")),
    )
    assert script.run(until=10.0) == [
        (at(1.0 + QUIET), {("modified", "A/x.txt"), ("deleted", "A/y.txt")})
    ]


def test_idle_ticks_and_stop(script: Script) -> None:
    script.at(2.5, *saved("A/x.txt"))
    batches = script.run(until=5.5, idle_ms=1000)
    assert batches == [
        (at(1.0), set()),
        (at(2.0), set()),
        (at(2.5 + QUIET), {("added", "A/x.txt")}),  # a batch restarts the idle time
        (at(3.8), set()),
        (at(4.8), set()),
    ]
    assert 5.5 <= script.clock.monotonic() <= 5.5 + 0.05  # stop is seen within a step


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


# --- the real observers, in real time ----------------------------------------------------


class Run:
    """A change stream over real observers, consumed in a thread."""

    def __init__(self, roots: list[Path], **options: object) -> None:
        self.stop = threading.Event()
        self.batches: list[set[FileChange]] = []
        self.stream = watch_changes(roots, KEEP, stop_event=self.stop, **options)  # type: ignore[arg-type]
        self.stream.__enter__()  # the observers' watches are set when this returns
        self.thread = threading.Thread(target=self._consume)
        self.thread.start()

    def _consume(self) -> None:
        for batch in self.stream:
            self.batches.append(batch)

    def simple(self) -> list[Batch]:
        return [simple(batch) for batch in self.batches]

    def until(self, check: Callable[[], bool], timeout: float = 15.0) -> None:
        """Wait (generously: the machine may be loaded) until ``check()`` holds."""
        deadline = time.monotonic() + timeout
        while not check():
            assert time.monotonic() < deadline, f"timed out; batches: {self.simple()}"
            time.sleep(0.05)

    def close(self) -> None:
        self.stop.set()
        self.thread.join(timeout=10)
        assert not self.thread.is_alive()
        self.stream.__exit__(None, None, None)


@pytest.fixture
def real() -> Iterator[Callable[..., Run]]:
    runs: list[Run] = []

    def start(roots: list[Path], **options: object) -> Run:
        runs.append(Run(roots, **options))
        return runs[-1]

    yield start
    for run in runs:
        run.close()


@pytest.mark.parametrize("mode", ["inotify", "polling"])
def test_real_observer_reports_a_file_once_its_writer_is_done(
    tmp_path: Path, real: Callable[..., Run], mode: str
) -> None:
    root = tmp_path / "Clients"
    (root / "Dupont").mkdir(parents=True)
    run = real(
        [root], mode=mode, quiet_ms=100, max_delay_ms=3000, poll_seconds=0.2, settle_seconds=5.0
    )
    assert run.stream.modes == {root: mode}
    path = root / "Dupont" / "releve.txt"
    with path.open("w", encoding="utf-8") as handle:
        for n in range(4):
            handle.write(f"ligne {n}\n" * 1000)
            handle.flush()
            time.sleep(0.4)  # a slow writer: pauses longer than the quiet period and a poll
        closed_size = handle.tell()
    run.until(lambda: bool(run.batches))
    (root / "Dupont" / "~$lock.docx").write_text("lock", encoding="utf-8")
    path.rename(root / "Dupont" / "releve-2024.txt")
    expected = {("deleted", "Dupont/releve.txt"), ("added", "Dupont/releve-2024.txt")}
    run.until(lambda: set().union(*run.simple()[1:]) >= expected)
    assert run.simple()[0] == {("added", "Dupont/releve.txt")}
    assert path.with_name("releve-2024.txt").stat().st_size == closed_size
    assert set().union(*run.simple()[1:]) == expected  # the lock file came before: not reported


def test_lost_inotify_events_ask_for_a_rescan_of_the_root(
    tmp_path: Path, real: Callable[..., Run]
) -> None:
    root = tmp_path / "Clients"
    root.mkdir()
    run = real([root], mode="inotify", quiet_ms=50)
    logging.getLogger("watchdog.observers.inotify_c").warning(
        "Inotify queue overflowed; filesystem events were lost"
    )
    run.until(lambda: bool(run.batches))
    run.close()
    assert [{(c.change, c.rel, c.is_dir) for c in b} for b in run.batches] == [
        {(Change.modified, "", True)}
    ]
