"""A fake clock for code that waits: its time moves only when that code waits.

:class:`FakeClock` is a :class:`~huisclos.connectors.changes.Clock`. It starts
at 0 and never moves by itself. When the code under test waits
(``clock.wait(event, deadline)``), the clock runs the scripted actions due up
to the deadline, in time order, each at its own time, and returns as soon as
one of them sets the event; otherwise it jumps to the deadline. Everything
runs in the test's thread: no sleep, no race, the same times on every run on
any machine, and an hour of watching takes milliseconds.

Invariants: time never goes back; an action scheduled in the past runs at
the current time; actions at the same time run in the order they were
scheduled. Past ``limit`` seconds the clock raises, so that a loop nobody
stops fails the test instead of hanging it.

Example::

    clock = FakeClock()
    source = ScriptedSource(clock)
    source.at(1.0, FileCreatedEvent(path), FileClosedEvent(path))
    clock.at(10.0, stop.set)
    for batch in watch_changes([root], keep, stop_event=stop, source=source, clock=clock):
        seen.append((clock.monotonic(), batch))  # [(1.3, {...})]: quiet_ms after the event
"""

from __future__ import annotations

import heapq
import itertools
import threading
from collections.abc import Callable

__all__ = ["FakeClock"]


class FakeClock:
    """A :class:`~huisclos.connectors.changes.Clock` driven by the code that waits on it."""

    def __init__(self, *, limit: float = 24 * 3600.0) -> None:
        self.now = 0.0
        self.limit = limit
        self._actions: list[tuple[float, int, Callable[[], object]]] = []
        self._order = itertools.count()

    def monotonic(self) -> float:
        """The fake time, in seconds since the clock was made."""
        return self.now

    def at(self, when: float, action: Callable[[], object]) -> None:
        """Run ``action`` when the fake time reaches ``when`` (in a wait of the code under test)."""
        heapq.heappush(self._actions, (when, next(self._order), action))

    def wait(self, event: threading.Event, deadline: float) -> bool:
        """Run the actions due until ``event`` is set or ``deadline`` is reached.

        Returns:
            Whether ``event`` is set.
        """
        while not event.is_set():
            if self._actions and self._actions[0][0] <= deadline:
                when, _, action = heapq.heappop(self._actions)
                self._advance(when)
                action()
            else:
                self._advance(deadline)
                break
        return event.is_set()

    def _advance(self, when: float) -> None:
        self.now = max(self.now, when)
        if self.now > self.limit:
            raise AssertionError(f"fake time passed {self.limit} s: nothing stopped the loop")
