"""A watcher killed with SIGKILL in the middle of a batch loses nothing and duplicates nothing."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from huisclos.config import load_settings
from huisclos.pipeline import Huisclos

pytestmark = pytest.mark.integration

HUISCLOS = [sys.executable, "-m", "huisclos.pipeline.cli"]
CLIENTS = ["Alpha", "Beta", "Gamma", "Delta"]


def _wait(check: Callable[[], bool], what: str, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.005)
    raise AssertionError(f"timed out waiting for {what}")


def _count(home: Path, sql: str) -> int:
    try:
        with sqlite3.connect(f"file:{home / 'manifest.sqlite3'}?mode=ro", uri=True) as db:
            return int(db.execute(sql).fetchone()[0])
    except sqlite3.Error:
        return -1


def _state(home: Path) -> dict[str, object]:
    try:
        return dict(json.loads((home / "watch.json").read_text(encoding="utf-8")))
    except (OSError, ValueError):
        return {}


class _Service:
    def __init__(self, root: Path, home: Path, log: Path) -> None:
        self.root, self.home, self.log = root, home, log
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, *, until: str = "running") -> None:
        env = {
            **os.environ,
            "HUISCLOS_HOME": str(self.home),
            "HUISCLOS_KEY_SOURCE": "file",
            "HUISCLOS_BATCH_FILES": "32",  # several commits in the batch, to kill in between
        }
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                [*HUISCLOS, "-v", "watch", str(self.root)], env=env, stderr=log, stdout=log
            )
        pid = self.process.pid
        _wait(
            lambda: _state(self.home).get("pid") == pid and _state(self.home).get("state") == until,
            f"the watcher to be {until}",
        )

    def kill(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=30)


def _document(client: str, n: int) -> str:
    return (
        f"Dossier {client}, pièce numéro {n} : honoraires de {100 + n} euros pour la mission {n}."
    )


def test_sigkill_during_a_batch_of_200_files_leaves_exactly_the_files_on_disk(
    tmp_path: Path,
) -> None:
    root, home = tmp_path / "Clients", tmp_path / "vault"
    for client in CLIENTS:
        (root / client).mkdir(parents=True)
    service = _Service(root, home, tmp_path / "watch.log")
    service.start()

    for n in range(200):  # a burst: one client archive after another
        path = root / CLIENTS[n % 4] / f"piece-{n:03}.txt"
        path.write_text(_document(CLIENTS[n % 4], n), encoding="utf-8")

    # kill points along the batch: accepted but nothing written; then with 40,
    # 100 and 160 files in the index, while chunks are being written if caught
    # (the restarts' catch-ups go on with the same batch)
    files = "SELECT count(*) FROM files"

    def writing_after(count: int) -> Callable[[], bool]:
        def reached() -> bool:
            done = _count(home, files)
            mid_write = _count(home, "SELECT count(*) FROM intents") > 0
            return done >= count + 30 or (done >= count and mid_write)

        return reached

    kill_points = [
        lambda: _count(home, "SELECT count(*) FROM watch_queue") > 0,
        writing_after(40),
        writing_after(100),
        writing_after(160),
    ]
    interrupted = 0
    for n, reached in enumerate(kill_points):
        _wait(reached, f"kill point {n}")
        service.kill()
        interrupted += _count(home, "SELECT count(*) FROM intents") > 0
        assert _count(home, files) < 200 or n == 0, "killed too late: not during the batch"
        if n == 1:  # while it is down, people keep working
            (root / "Alpha" / "piece-000.txt").unlink()
            (root / "Beta" / "piece-001.txt").write_text(
                "Pièce remplacée pendant l'arrêt.", encoding="utf-8"
            )
            (root / "Gamma" / "piece-002.txt").rename(root / "Delta" / "piece-002-deplacee.txt")
        service.start(until="catching up")

    print(f"{interrupted} of {len(kill_points)} kills interrupted a write")
    on_disk = {p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()}
    _wait(
        lambda: _state(home).get("state") == "running" and _state(home).get("queue") == 0,
        "the catch-up",
    )
    assert service.process is not None
    service.process.send_signal(signal.SIGTERM)
    assert service.process.wait(timeout=60) == 0
    assert _state(home)["state"] == "stopped"
    assert _count(home, "SELECT count(*) FROM watch_queue") == 0

    with Huisclos(load_settings(home=home, key_source="file")) as hc:
        vault = hc.vault
        rows = vault.manifest.all_files()
        paths = [
            vault.keys.cipher(r.client_id, create=False).decrypt(r.path_ct, r.file_id) for r in rows
        ]
        assert sorted(paths) == sorted(on_disk)  # each file once, nothing else
        for row in rows:
            assert row.state == "indexed"
            assert len(vault.store.get_file_chunks(row.file_id)) == row.chunks == 1
        assert vault.store.count() == len(rows)  # no orphan chunk
        assert vault.manifest.pending_intents() == []
        hits = hc.search("pièce remplacée pendant l'arrêt", client="Beta", top_k=1)
        assert hits[0].path == "Beta/piece-001.txt"
        moved = hc.search(_document("Gamma", 2), client="Delta", top_k=1)
        assert moved[0].path == "Delta/piece-002-deplacee.txt"


def test_a_process_that_stays_open_sees_what_the_watcher_indexes(tmp_path: Path) -> None:
    """An interactive `huisclos ask`, or an integration, keeps its vault open meanwhile."""
    root, home = tmp_path / "Clients", tmp_path / "vault"
    (root / "Cabinet").mkdir(parents=True)
    (root / "Cabinet" / "initial.txt").write_text("Document initial du cabinet.", encoding="utf-8")
    service = _Service(root, home, tmp_path / "watch.log")
    service.start()
    try:
        with Huisclos(load_settings(home=home, key_source="file")) as reader:
            assert [h.path for h in reader.search("document initial", top_k=1)] == [
                "Cabinet/initial.txt"
            ]
            for word in ("girafe", "volcan", "boussole"):
                path = root / "Cabinet" / f"{word}.txt"
                path.write_text(f"Le mot de passe du coffre est {word}.", encoding="utf-8")

                def found(word: str = word) -> bool:
                    hits = reader.search(f"mot de passe du coffre {word}", top_k=1)
                    return bool(hits) and hits[0].path == f"Cabinet/{word}.txt"

                _wait(found, f"{word} to be searchable from the other process", timeout=20)
            (root / "Cabinet" / "girafe.txt").unlink()
            _wait(
                lambda: (
                    "Cabinet/girafe.txt"
                    not in {h.path for h in reader.search("mot de passe girafe", top_k=5)}
                ),
                "the deletion to be seen",
                timeout=20,
            )
    finally:
        assert service.process is not None
        service.process.send_signal(signal.SIGTERM)
        assert service.process.wait(timeout=60) == 0
