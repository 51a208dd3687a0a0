"""Converting files to text elements in worker processes, with a time limit.

Parsing is CPU-bound and some parsers hang or crash on hostile files, so
conversion runs in a pool of spawned processes (the main process embeds
meanwhile). Each file gets a wall-clock limit; a worker that dies takes
only its file down: the pool is rebuilt and the run goes on.
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
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from pathlib import Path
from types import FrameType

from huisclos.config import ParseError, Settings, install_network_guard
from huisclos.connectors.convert import TextElement, convert_file, prepare
from huisclos.connectors.scan import SourceFile

__all__ = ["CRASHED", "Converted", "Converter", "content_hash"]

log = logging.getLogger(__name__)

CRASHED = "parser crashed"
TIMED_OUT = "timed out"


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
        self._pool: ProcessPoolExecutor | None = None
        self._prepared = False

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

    def _new_pool(self) -> ProcessPoolExecutor:
        return ProcessPoolExecutor(
            max_workers=self._workers,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=_worker_init,
            initargs=(self._hosts, str(self._scratch)),
        )

    def close(self) -> None:
        if self._pool is not None:
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
                done, _ = wait(pending, return_when=FIRST_COMPLETED)
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
                    self._pool.shutdown(wait=False, cancel_futures=True)
                    for file in suspects:
                        yield self._convert_alone(file)
                    self._pool = self._new_pool()
        finally:
            for future in pending:  # the caller stopped early: drop queued work
                future.cancel()

    def _convert_alone(self, file: SourceFile) -> Converted:
        pool = self._new_pool()
        try:
            future = pool.submit(
                convert_with_limit, file, self._ocr, self._max_bytes, self._timeout
            )
            return future.result()
        except BrokenProcessPool:
            log.warning("a conversion worker died on one file; marking it failed")
            return Converted(file, [], CRASHED)
        finally:
            pool.shutdown(wait=False, cancel_futures=True)
