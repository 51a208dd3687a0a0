"""Watching roots: a stream of change batches, in the shape of watchfiles.

:func:`watch_changes` yields ``set[FileChange]`` batches until its stop event
is set. Events from watchdog (inotify, or polling on network filesystems) are
gathered per path; a batch is released once no event has arrived for a quiet
period, or when the oldest pending change has waited ``max_delay_ms`` under
continuous activity. A file is only released once it is complete:

- inotify: when the writer closes it (a rename onto the path counts as
  complete: an editor's atomic save is one change of the target); a file left
  open is taken after ``settle_seconds`` without events;
- polling: when its size and mtime stayed the same for ``settle_seconds``
  (and at least one and a half poll intervals).

Names the filter rejects (Office lock files, temporary and hidden files) are
never reported; a rename from such a name onto a kept one reports the target.

Time comes from a :class:`Clock` (the system's by default): every rule above
is a deadline (``last event + quiet``, ``first + max delay``, ``last change +
settle``) compared with ``clock.monotonic()``, and the stream waits until the
nearest one (or a short step, to notice ``stop_event``). Tests give a fake
clock and a fake :class:`EventSource`, and see batches at exact times.
Example::

    stop = threading.Event()
    for batch in watch_changes([Path("/srv/Clients")], ignore_filter(patterns), stop_event=stop):
        for change in batch:
            print(change.change.name, change.rel, change.is_dir)
"""

from __future__ import annotations

import errno
import logging
import math
import os
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from enum import IntEnum
from pathlib import Path, PurePosixPath
from typing import Literal, Protocol

from watchdog.events import (
    DirCreatedEvent,
    DirDeletedEvent,
    DirModifiedEvent,
    DirMovedEvent,
    FileClosedEvent,
    FileCreatedEvent,
    FileDeletedEvent,
    FileModifiedEvent,
    FileMovedEvent,
    FileSystemEvent,
    FileSystemEventHandler,
)
from watchdog.observers import Observer
from watchdog.observers.api import BaseObserver
from watchdog.observers.polling import PollingObserver

from huisclos.connectors.scan import FileFilter

__all__ = [
    "SYSTEM_CLOCK",
    "Change",
    "ChangeStream",
    "Clock",
    "EventSource",
    "FileChange",
    "SystemClock",
    "WatchdogSource",
    "network_filesystem",
    "observer_mode",
    "watch_changes",
]

log = logging.getLogger(__name__)

Mode = Literal["inotify", "polling"]

NETWORK_FILESYSTEMS = frozenset(
    [
        "nfs",
        "nfs4",
        "cifs",
        "smb3",
        "smbfs",
        "ncpfs",
        "afs",
        "9p",
        "ceph",
        "glusterfs",
        "lustre",
        "gpfs",
        "davfs",
        "fuse.sshfs",
        "fuse.rclone",
        "fuse.davfs2",
        "fuse.glusterfs",
        "fuse.s3fs",
    ]
)

_EVENTS: list[type[FileSystemEvent]] = [
    FileCreatedEvent,
    FileModifiedEvent,
    FileClosedEvent,
    FileDeletedEvent,
    FileMovedEvent,
    DirCreatedEvent,
    DirDeletedEvent,
    DirMovedEvent,
]


class Change(IntEnum):
    """What happened to a path (the values of watchfiles' ``Change``)."""

    added = 1
    modified = 2
    deleted = 3


@dataclass(frozen=True, slots=True)
class FileChange:
    """One changed path: ``rel`` is relative to ``root`` ("" for the root itself)."""

    change: Change
    root: Path
    rel: str
    is_dir: bool = False


class EventSource(Protocol):
    """Where events come from: watchdog observers, or a fake in tests."""

    def start(self, emit: Callable[[FileSystemEvent], None]) -> None: ...

    def stop(self) -> None: ...


class Clock(Protocol):
    """What waiting code needs of time: the system's clock, or a fake in tests."""

    def monotonic(self) -> float:
        """Seconds on a clock that never goes back (only differences mean something)."""
        ...

    def wait(self, event: threading.Event, deadline: float) -> bool:
        """Block until ``event`` is set or :meth:`monotonic` reaches ``deadline``.

        Returns:
            Whether ``event`` is set.
        """
        ...


class SystemClock:
    """The real clock: ``time.monotonic`` and ``Event.wait``."""

    def monotonic(self) -> float:
        """``time.monotonic()``."""
        return time.monotonic()

    def wait(self, event: threading.Event, deadline: float) -> bool:
        """``event.wait`` until ``deadline`` (returns at once if it has passed)."""
        return event.wait(max(0.0, deadline - time.monotonic()))


SYSTEM_CLOCK = SystemClock()


def network_filesystem(path: Path, mountinfo: Path = Path("/proc/self/mountinfo")) -> str | None:
    """The type of the network filesystem ``path`` is on, or None (local or unknown)."""
    try:
        lines = mountinfo.read_text(encoding="utf-8").splitlines()
    except OSError:
        return None
    target = path.resolve().as_posix()
    best, fstype = "", ""
    for line in lines:
        fields = line.split()
        if " - " not in line or len(fields) < 5:
            continue
        point = fields[4].replace("\\040", " ").replace("\\011", "\t").replace("\\134", "\\")
        inside = target == point or target.startswith(point.rstrip("/") + "/")
        if inside and len(point) >= len(best):
            best, fstype = point, line.split(" - ", 1)[1].split()[0]
    return fstype if fstype in NETWORK_FILESYSTEMS else None


def observer_mode(root: Path, mode: Literal["auto", "inotify", "polling"]) -> Mode:
    """The observer a root needs: polling when forced or on a network filesystem."""
    if mode != "auto":
        return mode
    fstype = network_filesystem(root)
    if fstype:
        log.info("root on a %s filesystem: watching by polling", fstype)
        return "polling"
    return "inotify"


class _OverflowWatch(logging.Handler):
    """Turns watchdog's "inotify queue overflowed" warning into a rescan of the roots.

    Events were lost; a modified-directory event on a root (which the observers
    never send themselves) asks the consumer to reconcile that whole root.
    """

    def __init__(self, roots: list[Path], emit: Callable[[FileSystemEvent], None]) -> None:
        super().__init__(logging.WARNING)
        self._roots, self._emit = roots, emit

    def emit(self, record: logging.LogRecord) -> None:
        if "overflow" in str(record.msg):
            log.warning("inotify lost events (queue overflow): rescanning")
            for root in self._roots:
                self._emit(DirModifiedEvent(str(root)))


class _Handler(FileSystemEventHandler):
    def __init__(self, emit: Callable[[FileSystemEvent], None]) -> None:
        self._emit = emit

    def dispatch(self, event: FileSystemEvent) -> None:
        self._emit(event)


class WatchdogSource:
    """watchdog observers over the roots: inotify, or polling where needed.

    A root whose inotify watch cannot be set (the per-user watch limit, for
    instance) falls back to polling with a warning.
    """

    def __init__(
        self,
        roots: Iterable[Path],
        mode: Literal["auto", "inotify", "polling"] = "auto",
        poll_seconds: float = 1.0,
    ) -> None:
        self.roots = [Path(root) for root in roots]
        self.requested = mode
        self.poll_seconds = poll_seconds
        self.modes: dict[Path, Mode] = {}
        self._observers: list[BaseObserver] = []
        self._overflow: _OverflowWatch | None = None

    def start(self, emit: Callable[[FileSystemEvent], None]) -> None:
        handler = _Handler(emit)
        self._overflow = _OverflowWatch(self.roots, emit)
        logging.getLogger("watchdog.observers").addHandler(self._overflow)
        inotify: BaseObserver | None = None
        polling: BaseObserver | None = None
        for root in self.roots:
            mode = observer_mode(root, self.requested)
            if mode == "inotify":
                try:
                    if inotify is None:
                        inotify = Observer()
                        inotify.start()
                        self._observers.append(inotify)
                    inotify.schedule(handler, str(root), recursive=True, event_filter=_EVENTS)
                except OSError as exc:
                    reason = errno.errorcode.get(exc.errno or 0, type(exc).__name__)
                    log.warning("inotify unavailable for a root (%s): watching by polling", reason)
                    mode = "polling"
            if mode == "polling":
                if polling is None:
                    polling = PollingObserver(timeout=self.poll_seconds)
                    polling.start()
                    self._observers.append(polling)
                polling.schedule(handler, str(root), recursive=True, event_filter=_EVENTS)
            self.modes[root] = mode

    def stop(self) -> None:
        if self._overflow is not None:
            logging.getLogger("watchdog.observers").removeHandler(self._overflow)
            self._overflow = None
        for observer in self._observers:
            observer.stop()
        for observer in self._observers:
            observer.join(timeout=10)
        self._observers.clear()


@dataclass(slots=True)
class _Pending:
    change: Change
    is_dir: bool
    complete: bool
    first: float
    last: float
    written: bool = False
    """Content was written to it (a modified event) since it became pending."""


class _Collector:
    """Gathers events per path; releases complete changes in batches."""

    def __init__(
        self,
        roots: Iterable[Path],
        keep: FileFilter,
        modes: Callable[[Path], Mode],
        quiet: float,
        max_delay: float,
        settle: float,
        poll: float,
        clock: Clock,
    ) -> None:
        self._roots = sorted((Path(r) for r in roots), key=lambda r: len(r.parts), reverse=True)
        self._keep = keep
        self._modes = modes
        self._quiet, self._max_delay = quiet, max_delay
        self._settle, self._poll = settle, poll
        self._clock = clock
        self._pending: dict[tuple[Path, str], _Pending] = {}
        self._last_event = 0.0
        self._lock = threading.Lock()
        self._arrived = threading.Event()
        """Set by :meth:`feed`, cleared by :meth:`wait`: wakes the stream early."""

    def __len__(self) -> int:
        with self._lock:
            return len(self._pending)

    def _locate(self, raw: str | bytes) -> tuple[Path, str] | None:
        path = Path(os.fsdecode(raw) if isinstance(raw, bytes) else raw)
        for root in self._roots:
            if path == root:
                return root, ""
            if path.is_relative_to(root):
                rel = path.relative_to(root).as_posix()
                if all(self._keep(part) for part in PurePosixPath(rel).parts):
                    return root, rel
                return None
        return None

    def feed(self, event: FileSystemEvent) -> None:
        """Take one watchdog event (called from the observer's thread)."""
        now = self._clock.monotonic()
        is_dir = event.is_directory
        source = self._locate(event.src_path)
        with self._lock:
            if isinstance(event, FileMovedEvent | DirMovedEvent):
                target = self._locate(event.dest_path) if event.dest_path else None
                if source:
                    self._note(source, Change.deleted, is_dir, True, now)
                if target:
                    self._note(target, Change.added, is_dir, True, now)
            elif source is None:
                return
            elif isinstance(event, DirModifiedEvent):
                if source[1] != "":
                    return
                self._note(source, Change.modified, True, True, now)  # rescan the root
            elif isinstance(event, FileDeletedEvent | DirDeletedEvent):
                self._note(source, Change.deleted, is_dir, True, now)
            elif isinstance(event, FileClosedEvent):
                self._note(source, Change.modified, False, True, now)
            elif isinstance(event, FileCreatedEvent | DirCreatedEvent):
                self._note(source, Change.added, is_dir, is_dir, now)
            elif isinstance(event, FileModifiedEvent):
                self._note(source, Change.modified, False, False, now)
                self._pending[source].written = True
            else:
                return
        self._arrived.set()

    def _note(
        self, where: tuple[Path, str], change: Change, is_dir: bool, complete: bool, now: float
    ) -> None:
        self._last_event = now
        old = self._pending.get(where)
        if old is None:
            self._pending[where] = _Pending(change, is_dir, complete, now, now)
            return
        if change is Change.deleted:
            old.change = Change.deleted
        elif old.change is Change.deleted:
            old.change = Change.modified
        elif old.change is not Change.added:
            old.change = change
        old.is_dir = is_dir
        old.complete = complete
        old.last = now

    def _ready_at(self, where: tuple[Path, str], item: _Pending) -> float:
        """When the item is complete: at once, or once unchanged for the settle time."""
        if item.change is Change.deleted or item.is_dir or item.complete:
            return -math.inf
        if self._modes(where[0]) == "polling":  # size and mtime stable over polls
            return item.last + max(self._poll * 1.5, self._settle)
        return item.last + self._settle

    def _ready(self, where: tuple[Path, str], item: _Pending, now: float) -> bool:
        return now >= self._ready_at(where, item)

    def next_due(self, now: float) -> float | None:
        """The nearest deadline after ``now`` at which :meth:`take` may release more.

        None: nothing pending changes without new events.
        """
        with self._lock:
            if not self._pending:
                return None
            oldest = min(item.first for item in self._pending.values())
            deadlines = [self._last_event + self._quiet, oldest + self._max_delay]
            for where, item in self._pending.items():
                deadlines.append(self._ready_at(where, item))
                if item.change is Change.deleted:
                    deadlines.append(item.first + self._max_delay)
            return min((d for d in deadlines if d > now), default=None)

    def take(self, now: float) -> set[FileChange]:
        """The changes ready to be released now (removed from the pending set)."""
        with self._lock:
            if not self._pending:
                return set()
            oldest = min(item.first for item in self._pending.values())
            if now < self._last_event + self._quiet and now < oldest + self._max_delay:
                return set()
            # files listed in a directory that just appeared (moved in, unpacked)
            # are covered by the scan of that directory
            new_dirs = {
                (root, rel + "/")
                for (root, rel), item in self._pending.items()
                if item.is_dir and item.change is Change.added
            }
            # ...but not while a file in it is still being written: its scan would
            # read the file half-way (a folder created, then a large file copied in)
            # (with inotify, files listed by watchdog in a folder moved in only have
            # "created"; polling cannot tell them from files being written)
            writing = [
                (root, rel)
                for (root, rel), item in self._pending.items()
                if (item.written or self._modes(root) == "polling")
                and not self._ready((root, rel), item, now)
            ]
            new_dirs = {
                (root, d)
                for root, d in new_dirs
                if not any(r == root and rel.startswith(d) for r, rel in writing)
            }
            ready = [
                (root, rel)
                for (root, rel), item in self._pending.items()
                if (
                    self._ready((root, rel), item, now)
                    and not (
                        item.is_dir
                        and item.change is Change.added
                        and (root, rel + "/") not in new_dirs
                    )
                )
                or any(r == root and rel.startswith(d) for r, d in new_dirs)
            ]
            if len(ready) < len(self._pending):
                # a deleted file may reappear among the files not ready yet (a move
                # seen as delete + create): release its deletion with them, unless
                # it has already waited the longest a change may wait
                ready = [
                    w
                    for w in ready
                    if self._pending[w].change is not Change.deleted
                    or now >= self._pending[w].first + self._max_delay
                ]
            batch = set()
            for where in ready:
                item = self._pending.pop(where)
                batch.add(FileChange(item.change, where[0], where[1], item.is_dir))
            return batch

    def wait(self, deadline: float) -> None:
        """Until ``deadline``, or sooner if an event arrives (or arrived since the last wait)."""
        self._clock.wait(self._arrived, deadline)
        self._arrived.clear()  # events after this are seen by the next wait


class ChangeStream:
    """Batches of changes under some roots; iterate it (see :func:`watch_changes`).

    Observers start on ``__enter__`` (or when iteration starts) and stop on
    ``__exit__`` (or when iteration ends): events that happen in between are
    never lost, even while the consumer is busy with a batch.
    """

    def __init__(
        self,
        roots: list[Path],
        keep: FileFilter,
        stop_event: threading.Event,
        source: EventSource,
        modes: dict[Path, Mode],
        default: Mode,
        quiet: float,
        max_delay: float,
        settle: float,
        poll: float,
        idle: float | None,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        self.stop_event = stop_event
        self.modes = modes
        self._source = source
        self._idle = idle
        self._clock = clock
        self._step = min(0.05, quiet / 4)
        self._collector = _Collector(
            roots,
            keep,
            lambda root: modes.get(root, default),
            quiet,
            max_delay,
            settle,
            poll,
            clock,
        )
        self._started = False

    @property
    def pending(self) -> int:
        """Paths with changes not yet released in a batch."""
        return len(self._collector)

    def __enter__(self) -> ChangeStream:
        if not self._started:
            self._source.start(self._collector.feed)
            self._started = True
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self._started:
            self._source.stop()
            self._started = False

    def __iter__(self) -> Iterator[set[FileChange]]:
        owned = not self._started
        self.__enter__()
        idle = math.inf if self._idle is None else self._idle
        last = self._clock.monotonic()
        try:
            while not self.stop_event.is_set():
                self._collector.wait(self._deadline(last + idle))
                now = self._clock.monotonic()
                batch = self._collector.take(now)
                if batch or now >= last + idle:
                    last = now
                    yield batch
        finally:
            if owned:
                self.__exit__()

    def _deadline(self, idle_tick: float) -> float:
        """The next wake-up: the nearest deadline, the idle tick, or a step (to see a stop)."""
        now = self._clock.monotonic()
        due = self._collector.next_due(now)
        return min(now + self._step, idle_tick, math.inf if due is None else due)


def watch_changes(
    roots: Iterable[Path],
    keep: FileFilter,
    *,
    stop_event: threading.Event,
    mode: Literal["auto", "inotify", "polling"] = "auto",
    quiet_ms: int = 300,
    max_delay_ms: int = 3000,
    poll_seconds: float = 1.0,
    settle_seconds: float = 2.0,
    idle_ms: int | None = None,
    source: EventSource | None = None,
    clock: Clock = SYSTEM_CLOCK,
) -> ChangeStream:
    """Batches of changes under ``roots`` until ``stop_event`` is set.

    Args:
        roots: folders to watch (recursively).
        keep: filter on file and directory names (False: ignore the path).
        stop_event: set it to end the iteration (checked every few ms).
        mode: "auto" (inotify; polling on network filesystems), or forced.
        quiet_ms: a batch is released after this long without events...
        max_delay_ms: ...or once its oldest change has waited this long.
        poll_seconds: polling interval of the polling observer.
        settle_seconds: a file written but not closed (inotify), or any file (polling),
            is taken after this long without a change.
        idle_ms: if set, an empty batch is yielded after this long without one
            (like watchfiles' ``yield_on_timeout``), so the consumer can do periodic work.
        source: the event source (default: watchdog observers over ``roots``).
        clock: the clock deadlines are read from (default: the system's; a fake in tests).
    """
    resolved = [Path(root).resolve() for root in roots]
    events = source or WatchdogSource(resolved, mode, poll_seconds)
    modes = events.modes if isinstance(events, WatchdogSource) else {}
    return ChangeStream(
        resolved,
        keep,
        stop_event,
        events,
        modes,
        "polling" if mode == "polling" else "inotify",
        quiet_ms / 1000,
        max_delay_ms / 1000,
        settle_seconds,
        poll_seconds,
        None if idle_ms is None else idle_ms / 1000,
        clock,
    )
