"""A test hook for the fault-injection suite: die at the n-th write step.

Only ``tests/scenarios/test_faults.py`` sets it. With the environment variable
``HUISCLOS_CRASH_AFTER=n``, the n-th call of :func:`write_step` in the process
ends it at once with ``os._exit(137)``, as a SIGKILL or a power cut would: no
rollback, no cleanup, no flush. Write steps are placed just before and just
after each durable write (a SQLite commit of the manifest or the keyword
index, a write or a deletion in the vector store), so that every point of a
batch write can be crashed deterministically. Unset (always, in use), it does
nothing.
"""

from __future__ import annotations

import os
import sys

__all__ = ["write_step"]

_CRASH_AFTER = int(os.environ.get("HUISCLOS_CRASH_AFTER") or 0)
_steps = 0


def write_step(name: str) -> None:
    """Count one write step; the n-th ends the process when the test hook is set."""
    global _steps
    if not _CRASH_AFTER:
        return
    _steps += 1
    if _steps >= _CRASH_AFTER:
        sys.stderr.write(f"huisclos: test crash at write step {_steps} ({name})\n")
        sys.stderr.flush()
        os._exit(137)
