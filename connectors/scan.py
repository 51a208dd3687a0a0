"""Scanning a root: which files exist, which client each belongs to.

A *root* is a watched folder. Each first-level subfolder of a root is a
client; files directly in the root belong to the shared client
(:data:`SHARED_CLIENT`). Symbolic links are not followed, and noise (Office
lock files, temporary and hidden files) is skipped by plain callables.
"""

from __future__ import annotations

import fnmatch
import logging
import os
import stat
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

__all__ = ["SHARED_CLIENT", "SourceFile", "client_of", "ignore_filter", "scan_root"]

log = logging.getLogger(__name__)

SHARED_CLIENT = "_shared"

FileFilter = Callable[[str], bool]
"""Takes a file or directory *name*; returns True to keep it."""


@dataclass(frozen=True, slots=True)
class SourceFile:
    """A regular file found under a root. ``rel`` uses forward slashes."""

    root: Path
    rel: str
    size: int
    mtime_ns: int

    @property
    def path(self) -> Path:
        return self.root / self.rel

    @property
    def client(self) -> str:
        return client_of(self.rel)

    @property
    def kind(self) -> str:
        """Lower-case extension without the dot, or "" when there is none."""
        suffix = PurePosixPath(self.rel).suffix.lower()
        return suffix[1:] if suffix else ""


def client_of(rel: str) -> str:
    """The client of a path relative to its root."""
    parts = PurePosixPath(rel).parts
    return parts[0] if len(parts) > 1 else SHARED_CLIENT


def ignore_filter(patterns: Sequence[str]) -> FileFilter:
    """A filter that rejects names matching any shell-style pattern."""
    compiled = tuple(patterns)

    def keep(name: str) -> bool:
        return not any(fnmatch.fnmatchcase(name, pattern) for pattern in compiled)

    return keep


def scan_root(root: Path, keep: FileFilter) -> Iterator[SourceFile]:
    """Yield every regular file under ``root`` that passes ``keep``.

    Unreadable directories are logged and skipped; the scan goes on.
    """
    stack = [root]
    while stack:
        directory = stack.pop()
        try:
            entries = list(os.scandir(directory))
        except OSError as exc:
            log.warning("cannot list a directory under root (%s)", type(exc).__name__)
            continue
        for entry in entries:
            if not keep(entry.name):
                continue
            try:
                info = entry.stat(follow_symlinks=False)
            except OSError:
                continue
            if stat.S_ISDIR(info.st_mode):
                stack.append(Path(entry.path))
            elif stat.S_ISREG(info.st_mode):
                rel = Path(entry.path).relative_to(root).as_posix()
                yield SourceFile(root, rel, info.st_size, info.st_mtime_ns)
