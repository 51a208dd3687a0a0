"""Converting files to text elements in worker processes, with time and memory limits.

Parsing is CPU-bound and some parsers hang, balloon or crash on hostile
files, so conversion runs in a pool of spawned processes (the main process
embeds meanwhile). A worker that dies takes only its file down: the pool is
rebuilt, the files that were in flight are converted again one by one, and
the run goes on. Limits, per file:

- time (``file_timeout_seconds``): an alarm in the worker ends the
  conversion as :data:`TIMED_OUT`. A parser stuck where the alarm cannot
  reach it (in C code holding the interpreter, a frozen process) is killed
  from this process once no file has completed for the limit plus
  :data:`GRACE_SECONDS`;
- memory (``file_memory_mb``): this process watches each worker's resident
  memory, with that of the programs it started (LibreOffice, tesseract), and
  kills a worker past the limit; its file fails as ``too large``.
"""

from __future__ import annotations

import hashlib
import logging
import multiprocessing
import os
import shutil
import signal
import tempfile
import threading
import time
from collections.abc import Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures import TimeoutError as FutureTimeout
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from pathlib import Path
from types import FrameType

import psutil

from huisclos.config import ParseError, Settings, install_network_guard
from huisclos.connectors.convert import TextElement, convert_file, prepare
from huisclos.connectors.reasons import TOO_LARGE
from huisclos.connectors.scan import SourceFile

__all__ = ["CRASHED", "GRACE_SECONDS", "TIMED_OUT", "Converted", "Converter", "content_hash"]

log = logging.getLogger(__name__)

CRASHED = "parser crashed"
TIMED_OUT = "timed out"
GRACE_SECONDS = 30.0
"""How long past the time limit a worker may go silent before it is killed."""
_MEMORY_CHECK_SECONDS = 0.25


@dataclass(frozen=True, slots=True)
class Converted:
    """The outcome of converting one file: elements, or a failure reason."""

    file: SourceFile
    elements: list[TextElement]
    reason: str | None = None
    digest: str | None = None
    """sha256 of the file's bytes, read right after converting it (None: not read)."""


def content_hash(path: Path) -> str:
    """The sha256 of a file's bytes, in hex.

    Raises:
        OSError: the file cannot be read.
    """
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


class _Timeout(BaseException):
    """Raised by the alarm; a BaseException so that parsers' ``except Exception`` miss it."""


def _on_alarm(signum: int, frame: FrameType | None) -> None:
    raise _Timeout


def _ready() -> bool:
    return True


_PARENT_CHECK_SECONDS = 2.0


def _exit_with_parent(parent: int) -> None:
    """End this worker once the process that started it is gone (killed, crashed):
    an orphaned worker would otherwise hold its parsers' memory forever."""
    while os.getppid() == parent:
        time.sleep(_PARENT_CHECK_SECONDS)
    os._exit(1)


def _worker_init(allowed_hosts: tuple[str, ...], scratch: str) -> None:
    threading.Thread(
        target=_exit_with_parent, args=(os.getppid(),), name="parent-watch", daemon=True
    ).start()
    install_network_guard(allowed_hosts)
    # Attachments and LibreOffice conversions pass through temporary files in
    # clear: keep them in the vault's private scratch directory, not in /tmp.
    os.makedirs(scratch, mode=0o700, exist_ok=True)
    os.environ["TMPDIR"] = scratch
    tempfile.tempdir = scratch
    prepare()


def _digest(file: SourceFile) -> str | None:
    """The hash of the file as scanned; None if it cannot be read or changed since the
    scan (its row then has no content id, and the next scan converts it again)."""
    try:
        digest = content_hash(file.path)
        after = file.path.stat()
    except OSError:
        return None
    if (after.st_size, after.st_mtime_ns) != (file.size, file.mtime_ns):
        return None
    return digest


def convert_with_limit(
    file: SourceFile, ocr_languages: str, max_bytes: int, timeout: float
) -> Converted:
    """Convert one file under a wall-clock limit (main thread of a process)."""
    previous = signal.signal(signal.SIGALRM, _on_alarm)
    signal.setitimer(signal.ITIMER_REAL, timeout)
    try:
        elements = convert_file(
            file.path, file.kind, ocr_languages=ocr_languages, max_bytes=max_bytes
        )
        return Converted(file, elements, digest=_digest(file))
    except ParseError as exc:
        return Converted(file, [], exc.reason, digest=_digest(file))
    except _Timeout:
        return Converted(file, [], TIMED_OUT)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


class Converter:
    """Converts files, in a process pool or (``convert_workers=0``) in-process."""

    def __init__(self, settings: Settings) -> None:
        self._workers = settings.conversion_workers
        self._ocr = settings.ocr_languages
        self._max_bytes = int(settings.max_file_mb * 1024 * 1024)
        self._timeout = settings.file_timeout_seconds
        self._hosts = settings.network_hosts()
        self._scratch = settings.home / "tmp"
        self._memory = int(settings.file_memory_mb * 1024 * 1024)
        self._grace = GRACE_SECONDS
        self._pool: ProcessPoolExecutor | None = None
        self._prepared = False
        self._pools: set[ProcessPoolExecutor] = set()
        """Pools whose workers the memory watch looks after."""
        self._over_memory: set[int] = set()
        """Workers killed for their memory (pids)."""
        self._lock = threading.Lock()
        self._watching: threading.Thread | None = None
        self._stopped = threading.Event()

    def start(self) -> None:
        """Start the worker processes now, so their parsers load in the background."""
        if self._workers and self._pool is None:
            # leftovers of a killed run are plaintext: remove them first
            shutil.rmtree(self._scratch, ignore_errors=True)
            self._pool = self._new_pool()
            self._pool.submit(_ready)  # workers spawn on the first submission

    def wait_ready(self) -> None:
        """Start the workers and wait until one has loaded its parsers."""
        self.start()
        if self._pool is not None:
            self._pool.submit(_ready).result()
        elif not self._prepared:
            prepare()
            self._prepared = True

    def _new_pool(self, workers: int | None = None) -> ProcessPoolExecutor:
        pool = ProcessPoolExecutor(
            max_workers=workers or self._workers,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=_worker_init,
            initargs=(self._hosts, str(self._scratch)),
        )
        with self._lock:
            self._pools.add(pool)
            if self._watching is None:
                self._watching = threading.Thread(
                    target=self._watch_memory, name="conversion-memory", daemon=True
                )
                self._watching.start()
        return pool

    def _drop(self, pool: ProcessPoolExecutor, *, kill: bool = False) -> None:
        """Stop watching a pool and shut it down (``kill``: its workers are stuck)."""
        with self._lock:
            self._pools.discard(pool)
        if kill:
            for process in _workers(pool):
                _kill_tree(process)
        pool.shutdown(wait=False, cancel_futures=True)

    def _watch_memory(self) -> None:
        """Kill any worker whose memory (with its children's) is past the limit."""
        while not self._stopped.wait(_MEMORY_CHECK_SECONDS):
            with self._lock:
                pools = list(self._pools)
            for pool in pools:
                for process in _workers(pool):
                    if process.pid is not None and _memory(process) > self._memory:
                        log.warning("a conversion worker went past its memory limit; killed")
                        with self._lock:
                            self._over_memory.add(process.pid)
                        _kill_tree(process)

    def close(self) -> None:
        self._stopped.set()
        if self._pool is not None:
            with self._lock:
                self._pools.discard(self._pool)
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None

    def map(self, files: Iterable[SourceFile], lookahead: int = 64) -> Iterator[Converted]:
        """Convert files, yielding results as they complete.

        At most ``lookahead`` files are queued or converted but not yet taken by the
        caller: enough for the workers to prepare the caller's next batch while it
        embeds this one, and a bound on memory.
        """
        if self._workers == 0:
            if not self._prepared:
                prepare()
                self._prepared = True
            for file in files:
                yield convert_with_limit(file, self._ocr, self._max_bytes, self._timeout)
            return
        self.start()
        assert self._pool is not None
        limit = max(lookahead, self._workers)
        pending: dict[Future[Converted], SourceFile] = {}
        try:
            queue = iter(files)
            exhausted = False
            while pending or not exhausted:
                while not exhausted and len(pending) < limit:
                    upcoming = next(queue, None)
                    if upcoming is None:
                        exhausted = True
                        break
                    future = self._pool.submit(
                        convert_with_limit, upcoming, self._ocr, self._max_bytes, self._timeout
                    )
                    pending[future] = upcoming
                if not pending:
                    break
                done, _ = wait(pending, self._timeout + self._grace, FIRST_COMPLETED)
                if not done:  # every worker is stuck past its limit: kill them
                    log.warning("conversion workers went silent past the time limit; killed")
                    for process in _workers(self._pool):
                        _kill_tree(process)
                    continue
                suspects: list[SourceFile] = []
                for future in done:
                    file = pending.pop(future)
                    try:
                        yield future.result()
                    except BrokenProcessPool:
                        suspects.append(file)
                if suspects:
                    # The pool died with every file in flight: find the culprit by
                    # converting each of them alone in a fresh pool.
                    suspects.extend(pending.values())
                    pending.clear()
                    self._drop(self._pool)
                    for file in suspects:
                        yield self._convert_alone(file)
                    self._pool = self._new_pool()
        finally:
            for future in pending:  # the caller stopped early: drop queued work
                future.cancel()

    def _convert_alone(self, file: SourceFile) -> Converted:
        pool = self._new_pool(workers=1)
        stuck = False
        try:
            future = pool.submit(
                convert_with_limit, file, self._ocr, self._max_bytes, self._timeout
            )
            return future.result(timeout=self._timeout + self._grace)
        except FutureTimeout:
            log.warning("a conversion worker went silent past the time limit; killed")
            stuck = True
            return Converted(file, [], TIMED_OUT)
        except BrokenProcessPool:
            pids = {process.pid for process in _workers(pool)}
            with self._lock:
                over = bool(pids & self._over_memory)
                self._over_memory -= pids
            if over:
                return Converted(file, [], TOO_LARGE)
            log.warning("a conversion worker died on one file; marking it failed")
            return Converted(file, [], CRASHED)
        finally:
            self._drop(pool, kill=stuck)


def _workers(pool: ProcessPoolExecutor | None) -> list[multiprocessing.Process]:
    """The worker processes of a pool (the executor keeps no public list of them)."""
    processes = getattr(pool, "_processes", None) or {}
    return list(processes.values())


def _memory(process: multiprocessing.Process) -> int:
    """Resident bytes of a process and of every process it started (0 if gone)."""
    try:
        parent = psutil.Process(process.pid)
        tree = [parent, *parent.children(recursive=True)]
    except (psutil.Error, ValueError):
        return 0
    total = 0
    for member in tree:
        try:
            total += member.memory_info().rss
        except psutil.Error:
            continue
    return total


def _kill_tree(process: multiprocessing.Process) -> None:
    """SIGKILL a worker and the programs it started (LibreOffice runs in its own group)."""
    try:
        parent = psutil.Process(process.pid)
        children = parent.children(recursive=True)
    except (psutil.Error, ValueError):
        return
    for member in [*children, parent]:
        try:
            member.kill()
        except psutil.Error:
            continue
