"""The conversion pool: time limits and dead workers, with real files and processes."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import psutil
import pytest

from huisclos.config import load_settings
from huisclos.connectors.scan import SourceFile
from huisclos.connectors.worker_pool import TIMED_OUT, Converter
from tests.conftest import OFFICE, SAMPLE

pytestmark = pytest.mark.integration

SCANNED = OFFICE / "scanned-ocrmypdf" / "francais.pdf"


def _source(path: Path, root: Path) -> SourceFile:
    info = path.stat()
    return SourceFile(root, path.relative_to(root).as_posix(), info.st_size, info.st_mtime_ns)


def _files(tmp_path: Path) -> list[SourceFile]:
    shutil.copytree(SAMPLE, tmp_path / "Clients")
    shutil.copy2(SCANNED, tmp_path / "Clients" / "scan.pdf")
    root = tmp_path / "Clients"
    return [_source(p, root) for p in sorted(root.rglob("*")) if p.is_file()]


@pytest.mark.parametrize("workers", [0, 1])
def test_a_slow_file_times_out_and_the_others_convert(tmp_path: Path, workers: int) -> None:
    files = _files(tmp_path)
    # OCR of a scanned page takes seconds; a quarter of a second is not enough
    settings = load_settings(convert_workers=workers, file_timeout_seconds=0.25)
    converter = Converter(settings)
    try:
        results = {r.file.rel: r for r in converter.map(files)}
    finally:
        converter.close()
    assert results["scan.pdf"].reason == TIMED_OUT
    others = [r for rel, r in results.items() if rel != "scan.pdf"]
    # the sample's small text files convert well within the limit once the parser is loaded
    assert sum(1 for r in others if r.reason is None and r.elements) >= len(others) - 1


def test_a_killed_worker_does_not_stop_the_run(tmp_path: Path) -> None:
    files = _files(tmp_path)
    settings = load_settings(convert_workers=1, file_timeout_seconds=120)
    converter = Converter(settings)
    killed: list[int] = []

    def kill_a_worker() -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not killed:
            for child in psutil.Process().children(recursive=True):
                if "python" in (child.name() or "") and child.cpu_times().user > 1.0:
                    os.kill(child.pid, signal.SIGKILL)
                    killed.append(child.pid)
                    return
            time.sleep(0.2)

    killer = threading.Thread(target=kill_a_worker)
    killer.start()
    try:
        results = {r.file.rel: r for r in converter.map(files)}
    finally:
        killer.join()
        converter.close()
    assert killed, "no worker was killed"
    assert set(results) == {f.rel for f in files}  # every file has an outcome
    ok = [r for r in results.values() if r.reason is None]
    assert len(ok) == len(files)  # each file in flight was retried alone and converted
    assert "whisky" in " ".join(e.text for e in results["scan.pdf"].elements)


_HOLDER = """
import sys, time
import psutil
from huisclos.config import load_settings
from huisclos.connectors.worker_pool import Converter

if __name__ == "__main__":
    converter = Converter(load_settings(convert_workers=1))
    converter.wait_ready()
    print(" ".join(str(p.pid) for p in psutil.Process().children(recursive=True)), flush=True)
    time.sleep(600)
"""


def test_workers_of_a_killed_run_exit_instead_of_lingering(tmp_path: Path) -> None:
    script = tmp_path / "holder.py"
    script.write_text(_HOLDER)
    holder = subprocess.Popen(
        [sys.executable, str(script)], stdout=subprocess.PIPE, text=True, cwd=tmp_path
    )
    try:
        assert holder.stdout is not None
        workers = [int(pid) for pid in holder.stdout.readline().split()]
        assert workers and all(psutil.pid_exists(pid) for pid in workers)
    finally:
        holder.kill()  # kill -9: no clean-up runs in the parent
        holder.wait()
    deadline = time.monotonic() + 20
    alive = workers
    while alive and time.monotonic() < deadline:
        time.sleep(0.2)
        alive = [pid for pid in alive if _running(pid)]
    assert alive == []


def _running(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def _big_csv(path: Path, rows: int) -> None:
    with path.open("w") as handle:
        for n in range(rows):
            handle.write(f"{n},client {n % 97},facture {n * 7},{n % 1000}.50 euros,note {n}\n")


def test_a_parser_that_balloons_is_killed_and_its_file_failed_as_too_large(
    tmp_path: Path,
) -> None:
    """A 15 MB CSV makes the table parser (pandas) grow by about a gigabyte."""
    files = _files(tmp_path)
    root = files[0].root
    _big_csv(root / "Dupont SARL" / "export.csv", 200_000)
    files.append(_source(root / "Dupont SARL" / "export.csv", root))
    settings = load_settings(convert_workers=1, file_memory_mb=1100, file_timeout_seconds=300)
    converter = Converter(settings)
    try:
        results = {r.file.rel: r for r in converter.map(files)}
    finally:
        converter.close()
    assert results["Dupont SARL/export.csv"].reason == "too large"
    assert set(results) == {f.rel for f in files}
    assert all(r.reason is None for rel, r in results.items() if rel != "Dupont SARL/export.csv")
    assert _conversion_processes() == []  # the killed worker left nothing behind


def test_a_frozen_worker_is_killed_and_the_run_goes_on(tmp_path: Path) -> None:
    """A worker that stops answering (SIGSTOP: no alarm, no thread of its runs) is killed
    once no file has completed for the time limit plus the grace; its files are retried."""
    files = _files(tmp_path)
    settings = load_settings(convert_workers=1, file_timeout_seconds=4)
    converter = Converter(settings)
    converter._grace = 2.0  # the default (30 s) would make this test slow
    frozen: list[int] = []

    def freeze_the_worker() -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not frozen:
            for child in psutil.Process().children(recursive=True):
                if "python" in (child.name() or "") and child.cpu_times().user > 1.0:
                    os.kill(child.pid, signal.SIGSTOP)
                    frozen.append(child.pid)
                    return
            time.sleep(0.2)

    freezer = threading.Thread(target=freeze_the_worker)
    freezer.start()
    began = time.monotonic()
    try:
        results = {r.file.rel: r for r in converter.map(files)}
    finally:
        freezer.join()
        converter.close()
    assert frozen, "no worker was frozen"
    assert set(results) == {f.rel for f in files}  # every file has an outcome
    assert time.monotonic() - began < 120
    assert not _running(frozen[0])  # killed, not left stopped
    converted = [r for r in results.values() if r.reason is None]
    assert len(converted) >= len(files) - 1  # retried alone (the scan may time out alone)


def _conversion_processes() -> list[int]:
    """Conversion workers (and their LibreOffice, tesseract) still running; multiprocessing's
    resource tracker lives as long as the test process and is not one of them."""
    return [
        p.pid
        for p in psutil.Process().children(recursive=True)
        if _running(p.pid) and "resource_tracker" not in " ".join(p.cmdline())
    ]
