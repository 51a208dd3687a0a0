"""The watcher: client folders that stay indexed by themselves (``huisclos watch``).

One long-lived loop per vault (it holds the vault's writer lock):

1. catch up: reconcile every root with the manifest (the code path of
   ``huisclos index``), then re-check the paths a previous run had accepted
   but not finished (the queue in the manifest: they survive ``kill -9``);
2. watch: each batch of changes from :func:`~huisclos.connectors.changes.watch_changes`
   is written to the queue, indexed with :meth:`Ingestor.update` (moves are
   recognised by content: no re-embedding), then removed from the queue;
3. a batch that fails is retried path by path with a growing delay, so one
   bad path cannot hold the others back; a root that disappears (an unmounted
   share) stops nothing and removes nothing: the watcher waits for it, then
   catches up; a full reconcile also runs every ``watch_rescan_minutes``.

Its state (counts, times, error types; never a path) is written to
``watch.json`` in the vault for ``huisclos status``. Delays (retries, the
wait for a root, rescans, the change stream's) are read from a
:class:`~huisclos.connectors.changes.Clock`: the system's, or a fake in tests.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from huisclos.config import ConfigError, HuisclosError, VaultBusyError
from huisclos.connectors.changes import (
    SYSTEM_CLOCK,
    ChangeStream,
    Clock,
    EventSource,
    FileChange,
    watch_changes,
)
from huisclos.connectors.scan import ignore_filter
from huisclos.index.vault import Vault
from huisclos.pipeline.indexing.ingest import IndexReport, Ingestor

__all__ = ["WatchState", "Watcher", "read_state"]

log = logging.getLogger(__name__)

STATE_FILE = "watch.json"
_RETRY_FIRST, _RETRY_MAX = 2.0, 600.0
_ROOT_CHECK = 5.0
_LOCK_WAIT = 5.0


class _Stopped(BaseException):
    """Raised inside an indexing step when the watcher is asked to stop.

    A BaseException, so that no ``except Exception`` on the way swallows it.
    """


@dataclass(slots=True)
class WatchState:
    """What ``huisclos status`` shows of the watcher."""

    pid: int = 0
    state: str = "starting"
    """starting, catching up, running, waiting for a root, stopped"""
    roots: int = 0
    modes: list[str] = field(default_factory=list)
    queue: int = 0
    batches: int = 0
    indexed: int = 0
    """Files added, updated, moved or removed since the start."""
    failed: int = 0
    last_error: str | None = None
    last_error_at: float | None = None
    last_indexed_at: float | None = None
    started_at: float = 0.0
    updated_at: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def read_state(home: Path) -> WatchState | None:
    """The last state a watcher wrote in this vault, ``stopped`` if its process is gone."""
    try:
        data = json.loads((home / STATE_FILE).read_text(encoding="utf-8"))
        state = WatchState(**data)
    except (OSError, ValueError, TypeError):
        return None
    if state.state != "stopped" and not _alive(state.pid):
        state.state = "stopped"
    return state


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return pid > 0


@dataclass(slots=True)
class _Retry:
    root: Path
    rel: str
    queue_id: int
    delay: float
    due: float


class Watcher:
    """Keeps ``roots`` indexed until :attr:`stop_event` is set.

    Args:
        vault: the opened vault.
        ingestor: the ingestor writing to it.
        roots: the watched folders (each a folder of client folders).
        stop_event: set it to stop (the CLI sets it on SIGINT/SIGTERM).
        source: event source for tests (default: watchdog observers).
        on_batch: called after each batch is indexed, with its report.
        retention: applied after each catch-up and periodic rescan (erasures due).
        clock: where delays are read from (default: the system's; a fake in tests).
    """

    def __init__(
        self,
        vault: Vault,
        ingestor: Ingestor,
        roots: Iterable[Path],
        *,
        stop_event: threading.Event | None = None,
        source: EventSource | None = None,
        on_batch: Callable[[IndexReport], None] | None = None,
        retention: Callable[[], object] | None = None,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        self.vault, self.ingestor = vault, ingestor
        self._retention = retention
        self.settings = vault.settings
        self.roots = [Path(root).expanduser().resolve() for root in roots]
        self.stop_event = stop_event or threading.Event()
        self._source = source
        self._on_batch = on_batch
        self._clock = clock
        self._retries: list[_Retry] = []
        self._stream: ChangeStream | None = None
        self.state = WatchState(pid=os.getpid(), roots=len(self.roots), started_at=time.time())
        self._last_rescan = 0.0

    # --- the loop ---------------------------------------------------------------

    def run(self) -> None:
        """Catch up, then watch until stopped.

        The writer lock is taken for each batch only, so that an index run or
        an erasure (``huisclos forget``) can go in between.

        Raises:
            StoreError: another watcher runs on this vault.
        """
        with self.vault.watching():
            try:
                while not self.stop_event.is_set():
                    available = [root for root in self.roots if root.is_dir()]
                    if len(available) < len(self.roots):
                        self._set("waiting for a root")
                        log.warning(
                            "%d of %d roots unavailable (unmounted?); waiting",
                            len(self.roots) - len(available), len(self.roots),
                        )  # fmt: skip
                        if not available:
                            self._clock.wait(self.stop_event, self._clock.monotonic() + _ROOT_CHECK)
                            continue
                    self._watch(available)
            except _Stopped:
                pass
            finally:
                self._set("stopped")
                log.info("watcher stopped")

    def _watch(self, roots: list[Path]) -> None:
        stream = watch_changes(
            roots,
            ignore_filter(self.settings.ignore_patterns),
            stop_event=self.stop_event,
            mode=self.settings.watch_mode,
            quiet_ms=self.settings.watch_quiet_ms,
            max_delay_ms=self.settings.watch_max_delay_ms,
            poll_seconds=self.settings.watch_poll_seconds,
            settle_seconds=self.settings.watch_settle_seconds,
            idle_ms=1000,
            source=self._source,
            clock=self._clock,
        )
        self._stream = stream
        # events are collected from here on: nothing done during the catch-up is missed
        with stream:
            self.state.modes = sorted(set(stream.modes.values()))
            self.ingestor.warm_up()  # the first change must not wait for models to load
            try:
                self._catch_up(roots)
            except (HuisclosError, OSError) as exc:  # retried at the next rescan
                self._failed(exc)
                self._last_rescan = self._clock.monotonic()
            self._set("running")
            for batch in stream:
                if batch:
                    self._process(batch)
                self._retry_due()
                if self._roots_changed(roots):
                    return
                if self._rescan_due():
                    try:
                        self._catch_up(roots)
                    except (HuisclosError, OSError) as exc:  # next time, then
                        self._failed(exc)
                        self._last_rescan = self._clock.monotonic()
                    self._set("running")
                self._set(self.state.state)

    def _roots_changed(self, watched: list[Path]) -> bool:
        now_available = [root for root in self.roots if root.is_dir()]
        return now_available != watched

    def _rescan_due(self) -> bool:
        minutes = self.settings.watch_rescan_minutes
        return bool(minutes) and self._clock.monotonic() - self._last_rescan >= minutes * 60

    # --- catching up -------------------------------------------------------------

    def _catch_up(self, roots: list[Path]) -> None:
        """Reconcile the roots, then re-check what an earlier run left in the queue."""
        self._set("catching up")
        queued = self.vault.manifest.queued()
        report = self._index(self.ingestor.index, roots, self._check_stop)
        self._count(report)
        keys = self.vault.keys
        by_root = {keys.blind("root", str(root)): root for root in roots}
        for root_id, root in by_root.items():
            entries = [(qid, ct) for qid, rid, ct in queued if rid == root_id]
            if not entries:
                continue
            rels = [keys.vault_cipher.decrypt(ct, root_id) for _, ct in entries]
            self._count(self._index(self.ingestor.update, root, rels, self._check_stop))
            self.vault.manifest.queue_remove(qid for qid, _ in entries)
        self._last_rescan = self._clock.monotonic()
        log.info("caught up: %d queued paths re-checked", len(queued))
        if self._retention is not None:
            self._set("applying retention")
            try:
                self._retention()
            except (HuisclosError, OSError) as exc:  # a service loop: next rescan, then
                self._failed(exc)

    # --- batches ---------------------------------------------------------------------

    def _process(self, batch: set[FileChange]) -> None:
        started = time.monotonic()  # the log says how long the work took
        by_root: dict[Path, list[str]] = {}
        for change in batch:
            by_root.setdefault(change.root, []).append(change.rel)
        keys = self.vault.keys
        for root, rels in by_root.items():
            root_id = keys.blind("root", str(root))
            ids = self.vault.manifest.queue_add(
                (root_id, keys.vault_cipher.encrypt(rel, root_id)) for rel in rels
            )
            try:
                report = self._index(self.ingestor.update, root, rels, self._check_stop)
            except Exception as exc:  # noqa: BLE001 (a service loop: the paths are retried)
                self._failed(exc)
                if isinstance(exc, ConfigError) and not root.is_dir():
                    continue  # the root went away: the queue keeps the paths for later
                now = self._clock.monotonic()
                self._retries += [
                    _Retry(root, rel, qid, _RETRY_FIRST, now + _RETRY_FIRST)
                    for rel, qid in zip(rels, ids, strict=True)
                ]
                continue
            self.vault.manifest.queue_remove(ids)
            self._count(report)
            self.state.batches += 1
            log.info(
                "batch: %d paths, %d added, %d updated, %d moved, %d removed, %d failed in %.2fs",
                len(rels), report.added, report.updated, report.moved, report.removed,
                report.failed, time.monotonic() - started,
            )  # fmt: skip
            if self._on_batch:
                self._on_batch(report)

    def _retry_due(self) -> None:
        """Retry failed paths one by one, each with its own growing delay."""
        now = self._clock.monotonic()
        due = [retry for retry in self._retries if retry.due <= now]
        for retry in due:
            try:
                report = self._index(
                    self.ingestor.update, retry.root, [retry.rel], self._check_stop
                )
            except Exception as exc:  # noqa: BLE001 (a service loop: retried later)
                self._failed(exc)
                retry.delay = min(retry.delay * 2, _RETRY_MAX)
                retry.due = self._clock.monotonic() + retry.delay
                continue
            self._retries.remove(retry)
            self.vault.manifest.queue_remove([retry.queue_id])
            self._count(report)

    # --- helpers -----------------------------------------------------------------------

    def _index(self, run: Callable[..., IndexReport], *args: Any) -> IndexReport:
        """Run one ingest step under the writer lock, waiting for it as long as needed."""
        state = self.state.state
        while True:
            try:
                with self.vault.writing(wait=_LOCK_WAIT, stop=self.stop_event):
                    if self.state.state != state:
                        self._set(state)
                    report = run(*args)
                break
            except VaultBusyError:
                if self.stop_event.is_set():
                    raise _Stopped from None
                self._set("waiting for another writer")
        if self.stop_event.is_set():
            raise _Stopped
        return report

    def _check_stop(self, done: int, total: int) -> None:
        if self.stop_event.is_set():
            raise _Stopped

    def _count(self, report: IndexReport) -> None:
        changed = report.added + report.updated + report.moved + report.removed
        self.state.indexed += changed
        self.state.failed += report.failed
        if changed or report.failed:
            self.state.last_indexed_at = time.time()

    def _failed(self, exc: BaseException) -> None:
        log.warning("indexing step failed (%s); will retry", type(exc).__name__)
        self.state.last_error = type(exc).__name__
        self.state.last_error_at = time.time()

    def _set(self, state: str) -> None:
        """Record the state in the vault (atomically; counts and types only)."""
        self.state.state = state
        self.state.updated_at = time.time()
        pending = self._stream.pending if self._stream is not None else 0
        self.state.queue = self.vault.manifest.queue_length() + pending
        path = self.settings.home / STATE_FILE
        temporary = path.with_suffix(".tmp")
        try:
            temporary.write_text(json.dumps(self.state.to_dict()), encoding="utf-8")
            temporary.replace(path)
        except OSError as exc:
            log.warning("cannot write the watcher state (%s)", type(exc).__name__)
