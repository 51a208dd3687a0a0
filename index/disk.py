"""What a failed write says when the cause is the disk: full, read-only, not ours.

Chroma (Rust) and SQLite report a full disk in their own words, or lose the
cause on the way ("Failed to apply logs to the metadata segment"); the user needs
to be told what to do.
"""

from __future__ import annotations

import errno
import shutil
from pathlib import Path

from huisclos.config import StoreError

__all__ = ["disk_failure"]

_LOW_SPACE = 64 * 2**20
"""Free bytes below which a failed write is put down to a full disk."""


def disk_failure(home: Path, exc: BaseException) -> StoreError | None:
    """A clear error for a failure due to a read-only vault or a full disk; None otherwise.

    Looks at the errors that led to ``exc`` (errno, SQLite's words) and at the free space
    on the vault's disk.
    """
    codes: set[int] = set()
    texts: list[str] = []
    cause: BaseException | None = exc
    while cause is not None and len(texts) < 10:
        texts.append(str(cause))
        if isinstance(cause, OSError) and cause.errno:
            codes.add(cause.errno)
        cause = cause.__cause__ or cause.__context__
    text = " ".join(texts).lower()
    if errno.EROFS in codes or "read-only file system" in text or "readonly database" in text:
        return StoreError(
            f"the vault {home} is read-only: huisclos writes to it even to search (its "
            "databases keep write-ahead logs, the audit trail records each use); make it "
            "writable, or work on a writable copy"
        )
    if codes & {errno.EACCES, errno.EPERM}:
        return StoreError(
            f"the vault {home} cannot be written by this user (permission denied): run "
            "huisclos as the vault's owner, or give that user write access to it"
        )
    try:
        free: int | None = shutil.disk_usage(home).free
    except OSError:
        free = None
    full = codes & {errno.ENOSPC, errno.EFBIG, errno.EDQUOT}
    if full or "disk is full" in text or "no space left" in text or (free or 0) < _LOW_SPACE:
        room = "" if free is None else f", {free / 2**20:.1f} MB free"
        return StoreError(
            f"the disk holding the vault {home} is full{room}: free some space, then run the "
            "same command again (what was committed is kept and searchable; the next run "
            "finishes the rest)"
        )
    return None
