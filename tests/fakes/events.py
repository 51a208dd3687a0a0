"""Scripted watchdog events: a fake event source, and a disk that reports what it does.

:class:`ScriptedSource` is an :class:`~huisclos.connectors.changes.EventSource`
that sends the events a test gives it, now (:meth:`~ScriptedSource.send`) or
at a time of a :class:`~tests.fakes.clock.FakeClock` (:meth:`~ScriptedSource.at`).

:class:`Disk` changes real files (the ingest reads them) and sends, for each
change, the events watchdog's observer of that kind reports for it. The
sequences were recorded from watchdog 6 on Linux (ext4), for instance:

======================  ==========================================  ===========================
change                  inotify                                     polling
======================  ==========================================  ===========================
new file                [dir created], created, modified, closed    created, [dir created]
rewrite                 modified, closed                            modified
write, not closed yet   [created], modified                         created or modified
atomic save (replace)   created, modified, closed tmp; moved tmp    deleted, created (target)
rename in the tree      moved (dir moved, then each file moved)     each file moved, dir moved
move out of the tree    deleted (a folder: only the folder)         each file deleted, folder
move into the tree      created                                     created
delete a tree           each file deleted, each folder (deepest     the same
                        first)
======================  ==========================================  ===========================
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Literal

from watchdog.events import (
    DirCreatedEvent,
    DirDeletedEvent,
    DirMovedEvent,
    FileClosedEvent,
    FileCreatedEvent,
    FileDeletedEvent,
    FileModifiedEvent,
    FileMovedEvent,
    FileSystemEvent,
)

from tests.fakes.clock import FakeClock

__all__ = ["Disk", "ScriptedSource"]

Mode = Literal["inotify", "polling"]


class ScriptedSource:
    """An event source whose events the test sends (see the module docstring)."""

    def __init__(self, clock: FakeClock | None = None) -> None:
        self.clock = clock
        self.emit: Callable[[FileSystemEvent], None] | None = None
        self.starts = 0
        self.stopped = False

    def start(self, emit: Callable[[FileSystemEvent], None]) -> None:
        """Called by the change stream: events may be sent from now on."""
        self.emit = emit
        self.starts += 1
        self.stopped = False

    def stop(self) -> None:
        """Called by the change stream when it ends."""
        self.emit = None
        self.stopped = True

    def send(self, *events: FileSystemEvent) -> None:
        """Send events to the running stream, now."""
        assert self.emit is not None, "events sent while no stream listens"
        for event in events:
            self.emit(event)

    def at(self, when: float, *events: FileSystemEvent) -> None:
        """Send events when the fake clock reaches ``when``."""
        assert self.clock is not None, "a ScriptedSource(clock) is needed for timed events"
        self.clock.at(when, lambda: self.send(*events))


class Disk:
    """Changes files under real folders and reports them as a watchdog observer would."""

    def __init__(self, source: ScriptedSource, mode: Mode) -> None:
        self.source, self.mode = source, mode

    def write(self, path: Path, text: str) -> None:
        """Create or rewrite a file (and its folders), and close it."""
        self._written(path, text, "w", close=True)

    def append(self, path: Path, text: str, *, close: bool = False) -> None:
        """A writer adding to a file (created if need be), leaving it open unless ``close``."""
        self._written(path, text, "a", close=close)

    def _written(self, path: Path, text: str, how: str, *, close: bool) -> None:
        new_dirs = [DirCreatedEvent(str(d)) for d in reversed(path.parents) if not d.exists()]
        existed = path.exists()
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open(how, encoding="utf-8") as handle:
            handle.write(text)
        if self.mode == "polling":
            change = FileModifiedEvent if existed else FileCreatedEvent
            self.source.send(change(str(path)), *new_dirs)
            return
        created = [] if existed else [FileCreatedEvent(str(path))]
        closed = [FileClosedEvent(str(path))] if close else []
        self.source.send(*new_dirs, *created, FileModifiedEvent(str(path)), *closed)

    def mkdir(self, path: Path) -> None:
        """Create one folder."""
        path.mkdir()
        self.source.send(DirCreatedEvent(str(path)))

    def replace(self, temporary: Path, target: Path, text: str) -> None:
        """An editor's atomic save: write a temporary file, rename it onto the target."""
        temporary.write_text(text, encoding="utf-8")
        os.replace(temporary, target)
        if self.mode == "polling":
            self.source.send(FileDeletedEvent(str(target)), FileCreatedEvent(str(target)))
        else:
            written = [FileCreatedEvent(str(temporary)), FileModifiedEvent(str(temporary))]
            closed = FileClosedEvent(str(temporary))
            self.source.send(*written, closed, FileMovedEvent(str(temporary), str(target)))

    def rename(self, source: Path, target: Path) -> None:
        """Rename a file or folder within the watched tree."""
        files = _files(source)
        source.rename(target)
        moved = [FileMovedEvent(str(f), str(target / f.relative_to(source))) for f in files]
        if not files:  # a file
            self.source.send(FileMovedEvent(str(source), str(target)))
        elif self.mode == "polling":
            self.source.send(*moved, DirMovedEvent(str(source), str(target)))
        else:
            self.source.send(DirMovedEvent(str(source), str(target)), *moved)

    def move_out(self, path: Path, outside: Path) -> None:
        """Move a file or folder out of the watched tree."""
        deleted = _deleted(path) if self.mode == "polling" else [_deleted(path)[-1]]
        path.rename(outside)
        self.source.send(*deleted)

    def move_in(self, outside: Path, path: Path) -> None:
        """Move a file from outside into the watched tree."""
        outside.rename(path)
        self.source.send(FileCreatedEvent(str(path)))

    def delete(self, path: Path) -> None:
        """Delete a file, or a folder and everything in it."""
        deleted = _deleted(path)
        if path.is_dir():
            shutil.rmtree(path)
        else:
            path.unlink()
        self.source.send(*deleted)


def _files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file()) if folder.is_dir() else []


def _deleted(path: Path) -> list[FileSystemEvent]:
    """The deletions of a tree, deepest first, the path itself last."""
    if not path.is_dir():
        return [FileDeletedEvent(str(path))]
    inside = sorted(path.rglob("*"), key=lambda p: len(p.parts), reverse=True)
    events: list[FileSystemEvent] = [
        DirDeletedEvent(str(p)) if p.is_dir() else FileDeletedEvent(str(p)) for p in inside
    ]
    return [*events, DirDeletedEvent(str(path))]
