"""Fault injection: crashes, a full disk, a read-only vault, damaged files, two writers.

After each fault, `huisclos index` (or `huisclos repair`) must bring the vault
back to exactly the files on disk: one manifest row per file with its content,
its chunks in the vector store (both spaces) and the keyword index, no orphan
anywhere, every file found by a phrase of its own and no deleted phrase found,
and a second run that writes nothing.
"""

from __future__ import annotations

import hashlib
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from huisclos.config import Settings, load_settings
from huisclos.connectors.worker_pool import content_hash
from huisclos.index.store import ENGLISH, MAIN
from huisclos.pipeline import Huisclos

pytestmark = pytest.mark.integration

HUISCLOS = [sys.executable, "-m", "huisclos.pipeline.cli"]
CLIENTS = ["Alpha", "Beta", "Gamma", "Delta"]
BATCH = 16


# --- the tree: small text files, each with a code found in no other ------------------


class Tree:
    """Client folders of small files; remembers the code of every version it wrote."""

    def __init__(self, root: Path, seed: int = 0) -> None:
        self.root = root
        self.rng = random.Random(seed)
        self.next = 0
        self.codes: dict[str, str] = {}
        """Relative path → the code its current content holds."""
        self.gone: set[str] = set()
        """Codes of deleted files and replaced versions: no search may find them."""

    def add(self, count: int) -> None:
        for _ in range(count):
            n, self.next = self.next, self.next + 1
            client = CLIENTS[n % len(CLIENTS)]
            self._write(f"{client}/dossier-{n % 3}/piece-{n:04}.txt", n, 0)

    def _write(self, rel: str, n: int, version: int) -> None:
        code = f"zq{n:04}v{version}x"
        client = rel.split("/")[0]
        if n % 5 == 0:  # some English passages: the second (English) vector space too
            text = f"Invoice {n} for the client {client}: the fees are {100 + n} euros, {code}."
        else:
            text = f"Dossier {client}, pièce {n} : honoraires de {100 + n} euros, code {code}."
        path = self.root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        self.codes[rel] = code

    def modify(self, count: int) -> None:
        for rel in self.rng.sample(sorted(self.codes), count):
            n, version = int(self.codes[rel][2:6]), int(self.codes[rel][7:-1])
            self.gone.add(self.codes[rel])
            self._write(rel, n, version + 1)

    def delete(self, count: int) -> None:
        for rel in self.rng.sample(sorted(self.codes), count):
            (self.root / rel).unlink()
            self.gone.add(self.codes.pop(rel))

    def move(self, count: int) -> None:
        """Moves within a client and across clients (re-encrypted under the new key)."""
        for rel in self.rng.sample(sorted(self.codes), count):
            client = self.rng.choice(CLIENTS)
            new = f"{client}/deplaces/{Path(rel).stem}-{self.rng.randrange(10**6)}.txt"
            (self.root / new).parent.mkdir(parents=True, exist_ok=True)
            (self.root / rel).rename(self.root / new)
            self.codes[new] = self.codes.pop(rel)

    def mutate(self) -> int:
        """What people do between two runs: add, modify, delete, move files.

        Returns how many files the next run converts (added and modified).
        """
        added, modified = self.rng.randrange(24, 40), self.rng.randrange(3, 8)
        self.add(added)
        self.modify(modified)
        self.delete(self.rng.randrange(2, 6))
        self.move(self.rng.randrange(2, 6))
        return added + modified


# --- processes and checks -----------------------------------------------------------


def _env(home: Path, **extra: str) -> dict[str, str]:
    return {
        **os.environ,
        "HUISCLOS_HOME": str(home),
        "HUISCLOS_KEY_SOURCE": "file",
        "HUISCLOS_BATCH_FILES": str(BATCH),  # many batches: many points to crash between
        **extra,
    }


def _cli(home: Path, *args: str, **extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*HUISCLOS, *args], env=_env(home, **extra), capture_output=True, text=True, timeout=600
    )


def _clean_failure(result: subprocess.CompletedProcess[str], says: str) -> None:
    """Exit 1 with one clear line saying ``says``, and no traceback."""
    assert result.returncode == 1, (result.returncode, result.stdout, result.stderr)
    assert "Traceback" not in result.stderr, result.stderr
    assert says in result.stderr, result.stderr
    # (a panic inside Chroma's Rust core prints its own lines first: not ours to silence)
    assert result.stderr.strip().splitlines()[-1].startswith("huisclos: "), result.stderr


def _settings(home: Path) -> Settings:
    return load_settings(home=home, key_source="file", batch_files=BATCH)


def _sql(home: Path, sql: str) -> int:
    try:
        with sqlite3.connect(f"file:{home / 'manifest.sqlite3'}?mode=ro", uri=True) as db:
            return int(db.execute(sql).fetchone()[0])
    except sqlite3.Error:
        return -1


def _assert_exact(hc: Huisclos, tree: Tree, *, search_all: bool = False) -> None:
    """The vault holds exactly the files on disk, and a second run writes nothing."""
    vault = hc.vault
    on_disk = {p.relative_to(tree.root).as_posix(): p for p in tree.root.rglob("*") if p.is_file()}
    assert on_disk.keys() == tree.codes.keys()
    rows = vault.manifest.all_files()
    by_path = {}
    for row in rows:
        cipher = vault.keys.cipher(row.client_id, create=False)
        by_path[cipher.decrypt(row.path_ct, row.file_id)] = row
    assert len(by_path) == len(rows), "a file is recorded twice"
    assert by_path.keys() == on_disk.keys()
    for rel, row in by_path.items():
        path = on_disk[rel]
        assert (row.state, row.size) == ("indexed", path.stat().st_size), rel
        assert row.content_id == vault.keys.blind("content", content_hash(path)), rel
        assert row.chunks == 1, rel
        assert row.client_id == vault.keys.client_id(rel.split("/")[0]), rel

    # every chunk in the store is one of a file, and holds that file's text
    expected = {f"{row.file_id}-0": (rel, row) for rel, row in by_path.items()}
    assert vault.store.ids(MAIN) == expected.keys(), "orphan or missing chunks in the store"
    for chunk_id, meta in vault.store.get(sorted(expected)).items():
        rel, row = expected[chunk_id]
        text = vault.keys.cipher(row.client_id, create=False).decrypt(meta["ct"], chunk_id)
        assert tree.codes[rel] in text, rel
    english = set(vault.keywords.chunks_in("en"))
    assert english and vault.store.ids(ENGLISH) == english  # the English space too
    assert vault.keywords.chunks_by_file() == {row.file_id: 1 for row in rows}
    assert vault.keywords.count() == len(rows)
    assert _sql(vault.settings.home, "SELECT count(*) FROM intents") == 0

    # found by a phrase of its own; nothing deleted or replaced is found
    files = sorted(tree.codes)
    sample = files if search_all else tree.rng.sample(files, min(20, len(files)))
    for rel in sample:
        hits = hc.search(tree.codes[rel], top_k=1)
        assert hits and hits[0].path == rel, rel
    for code in sorted(tree.gone):
        assert not any(code in hit.text for hit in hc.search(code, top_k=3)), code

    again = hc.index(tree.root)
    assert again.chunks_written == 0
    assert (again.added, again.updated, again.moved, again.removed, again.failed) == (0,) * 5


def _snapshot(home: Path) -> dict[str, str]:
    return {
        p.relative_to(home).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(home.rglob("*"))
        if p.is_file()
    }


# --- kill -9 -------------------------------------------------------------------------


def _kill_during_writes(
    home: Path, root: Path, rng: random.Random, work: int
) -> subprocess.Popen[bytes]:
    """Start `huisclos index` and SIGKILL it at a random moment while it writes a batch.

    The moment: once a random number of this run's files are committed, when the
    next batch's chunks are being written (its intents recorded), after a random
    few milliseconds more.
    """
    committed_before = rng.randrange(0, max(1, work - BATCH))
    started = time.time()
    process = subprocess.Popen(
        [*HUISCLOS, "index", str(root)],
        env=_env(home),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    committed = f"SELECT count(*) FROM files WHERE updated >= {started}"
    while process.poll() is None:
        if _sql(home, committed) >= committed_before and _sql(home, "SELECT count(*) FROM intents"):
            time.sleep(rng.uniform(0, 0.03))
            break
        time.sleep(0.003)
    process.send_signal(signal.SIGKILL)
    assert process.wait(timeout=60) == -signal.SIGKILL, "the run ended before the crash point"
    return process


def test_kill_9_at_ten_random_points_then_index_leaves_exactly_the_files_on_disk(
    tmp_path: Path, vault_home: Path
) -> None:
    tree = Tree(tmp_path / "Clients", seed=8)
    tree.add(240)
    work = 240
    with Huisclos(_settings(vault_home)) as hc:
        for seed in range(10):
            rng = random.Random(seed)
            _kill_during_writes(vault_home, tree.root, rng, work)
            interrupted = _sql(vault_home, "SELECT count(*) FROM intents")
            if seed % 3 == 2:  # people go on working while it is down
                tree.mutate()
            report = hc.index(tree.root)  # what `huisclos index` runs, to completion
            assert report.failed == 0
            print(f"seed {seed}: killed with {interrupted} intents open; then {report}")
            _assert_exact(hc, tree, search_all=seed == 9)
            work = tree.mutate()  # the next run has new work to be killed in
    # and the command itself, after one more crash
    _kill_during_writes(vault_home, tree.root, random.Random(10), work)
    result = _cli(vault_home, "index", str(tree.root))
    assert result.returncode == 0, result.stderr
    with Huisclos(_settings(vault_home)) as hc:
        _assert_exact(hc, tree)


STEPS = {
    f"{when} {what}"
    for when in ("before", "after")
    for what in (
        "the manifest commit",
        "the keyword index commit",
        "a vector store write",
        "a vector store deletion",
    )
}


def test_a_crash_at_each_write_step_of_a_batch_is_recovered(
    tmp_path: Path, vault_home: Path
) -> None:
    """The test hook HUISCLOS_CRASH_AFTER=n ends the run at its n-th write step (os._exit)."""
    tree = Tree(tmp_path / "Clients", seed=3)
    tree.add(24)
    crashed: list[str] = []
    with Huisclos(_settings(vault_home)) as hc:
        hc.index(tree.root)
        for n in range(1, 40):
            # one batch: a French and an English file replaced (their old chunks deleted
            # from both spaces), a new English file
            for rel in ("Alpha/dossier-0/piece-0000.txt", "Beta/dossier-1/piece-0001.txt"):
                number, version = int(tree.codes[rel][2:6]), int(tree.codes[rel][7:-1])
                tree.gone.add(tree.codes[rel])  # an English and a French file replaced
                tree._write(rel, number, version + 1)
            tree.next += -tree.next % 5  # and a new file, in English
            tree.add(1)
            result = _cli(vault_home, "index", str(tree.root), HUISCLOS_CRASH_AFTER=str(n))
            if result.returncode == 0:  # n is past the last write step of the run
                break
            assert result.returncode == 137, result.stderr
            step = result.stderr.split(f"test crash at write step {n} (")[1].split(")")[0]
            crashed.append(step)
            hc.index(tree.root)
            _assert_exact(hc, tree)
        else:
            pytest.fail("the run never ended: more write steps than expected")
    print(f"{len(crashed)} crash points: {crashed}")
    assert set(crashed) == STEPS
    assert len(crashed) >= 14  # intents, chunks in two spaces, keywords, rows, old chunks
    result = _cli(vault_home, "index", str(tree.root))
    assert result.returncode == 0 and "0 chunks written" in result.stdout


# --- a full disk, a read-only vault --------------------------------------------------


@contextmanager
def _mounted(where: Path, *options: str) -> Iterator[None]:
    where.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(["mount", *options, str(where)], capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount here (needs root): {done.stderr.strip()}")
    try:
        yield
    finally:  # lazily: this process's Chroma client may hold files open until collected
        subprocess.run(["umount", "-l", str(where)], check=True)


def test_a_full_disk_stops_the_run_clearly_and_corrupts_nothing(tmp_path: Path) -> None:
    disk = tmp_path / "disk"
    home = disk / "vault"
    tree = Tree(tmp_path / "Clients", seed=5)
    tree.add(420)
    with _mounted(disk, "-t", "tmpfs", "-o", "size=2m", "tmpfs"):
        result = _cli(home, "index", str(tree.root))
        _clean_failure(result, "is full")
        assert "free some space" in result.stderr

        # still full: the store cannot even be opened (Chroma writes as it opens), which
        # is said as clearly; repair refuses too, and deletes nothing
        for command in (["status"], ["repair"]):
            done = _cli(home, *command)
            if done.returncode != 0:
                _clean_failure(done, "is full")
        assert (home / "chroma" / "chroma.sqlite3").exists()

        subprocess.run(["mount", "-o", "remount,size=200m", str(disk)], check=True)
        status = _cli(home, "status", "--json")  # space back: nothing was corrupted
        assert status.returncode == 0, status.stderr
        committed = _sql(home, "SELECT count(*) FROM files WHERE state = 'indexed'")
        assert 0 < committed < 420, committed
        with Huisclos(_settings(home)) as hc:  # what was committed is searchable
            rows = hc.vault.manifest.all_files()
            for row in rows[:: max(1, len(rows) // 10)]:
                rel = hc.vault.keys.cipher(row.client_id, create=False).decrypt(
                    row.path_ct, row.file_id
                )
                hits = hc.search(tree.codes[rel], top_k=1)
                assert hits and hits[0].path == rel
        assert _cli(home, "audit", "verify").returncode == 0
        result = _cli(home, "index", str(tree.root))
        assert result.returncode == 0, result.stderr
        with Huisclos(_settings(home)) as hc:
            _assert_exact(hc, tree)


def test_a_read_only_vault_is_refused_clearly_and_left_unchanged(
    tmp_path: Path, vault_home: Path
) -> None:
    tree = Tree(tmp_path / "Clients", seed=6)
    tree.add(30)
    with Huisclos(_settings(vault_home)) as hc:
        hc.index(tree.root)
    before = _snapshot(vault_home)
    tree.mutate()
    with _mounted(vault_home, "--bind", str(vault_home)):
        subprocess.run(["mount", "-o", "remount,ro,bind", str(vault_home)], check=True)
        for command in (["index", str(tree.root)], ["status"], ["search", "honoraires"]):
            _clean_failure(_cli(vault_home, *command), "is read-only")
    assert _snapshot(vault_home) == before
    result = _cli(vault_home, "index", str(tree.root))  # writable again: it catches up
    assert result.returncode == 0, result.stderr
    with Huisclos(_settings(vault_home)) as hc:
        _assert_exact(hc, tree)


# --- damaged store files, a manifest out of step ---------------------------------------


def test_damaged_chroma_files_are_rebuilt_by_repair_keeping_keys_and_audit(
    tmp_path: Path, vault_home: Path
) -> None:
    tree = Tree(tmp_path / "Clients", seed=7)
    tree.add(60)
    with Huisclos(_settings(vault_home)) as hc:
        hc.index(tree.root)
    chroma = vault_home / "chroma"
    keys = {name: (vault_home / name).read_bytes() for name in ("master.key", "vault.json")}

    # the vector index files (HNSW) truncated and overwritten: Chroma rebuilds them itself
    segments = [p for p in chroma.glob("*/*.bin") if p.stat().st_size]
    assert segments
    for n, segment in enumerate(segments):
        if n % 2:
            segment.write_bytes(os.urandom(segment.stat().st_size))
        else:
            with segment.open("r+b") as handle:
                handle.truncate(segment.stat().st_size // 3)
    tree.mutate()
    assert _cli(vault_home, "index", str(tree.root)).returncode == 0
    with Huisclos(_settings(vault_home), retrieval="dense") as hc:  # embeddings alone
        rel = sorted(tree.codes)[7]
        assert hc.search(tree.root.joinpath(rel).read_text(encoding="utf-8"))[0].path == rel
    with Huisclos(_settings(vault_home)) as hc:
        _assert_exact(hc, tree)

    # its database damaged: in the middle (reads fail), then its header (it cannot open)
    database = chroma / "chroma.sqlite3"
    for offset in (database.stat().st_size // 2, 0):
        with database.open("r+b") as handle:
            handle.seek(offset)
            handle.write(os.urandom(64 * 1024))
        tree.mutate()
        _clean_failure(_cli(vault_home, "index", str(tree.root)), "`huisclos repair`")
        result = _cli(vault_home, "repair")
        assert result.returncode == 0, result.stderr
        assert "rebuilt: vector store" in result.stdout
        with Huisclos(_settings(vault_home)) as hc:
            _assert_exact(hc, tree)

    # the keyword index damaged
    sparse = vault_home / "sparse.sqlite3"
    with sparse.open("r+b") as handle:
        handle.seek(4096)
        handle.write(os.urandom(sparse.stat().st_size - 4096))
    result = _cli(vault_home, "repair")
    assert result.returncode == 0, result.stderr
    assert "rebuilt: keyword index" in result.stdout
    with Huisclos(_settings(vault_home)) as hc:
        _assert_exact(hc, tree)
        assert {name: (vault_home / name).read_bytes() for name in keys} == keys
        repairs = hc.audit(actions=["repair"])
        assert [r.record.details["store_rebuilt"] for r in repairs] == [1, 1, 0]
        assert hc.verify_audit().ok


def test_a_manifest_out_of_step_with_the_store_is_brought_back(
    tmp_path: Path, vault_home: Path
) -> None:
    tree = Tree(tmp_path / "Clients", seed=9)
    tree.add(60)
    settings = _settings(vault_home)
    with Huisclos(settings) as hc:
        hc.index(tree.root)
        rows = hc.vault.manifest.all_files()
        hc.vault.store.delete_files([r.file_id for r in rows[:3]])  # chunks lost
        hc.vault.keywords.delete_files([r.file_id for r in rows[3:5]])  # keywords lost
        for row in rows[5:8]:  # rows lost, their chunks left behind
            hc.vault.manifest.delete_file(row.path_id)
    tree.mutate()
    result = _cli(vault_home, "index", str(tree.root))
    assert result.returncode == 0, result.stderr
    with Huisclos(settings) as hc:
        _assert_exact(hc, tree)

        # a loss that the counts do not show: a file's chunks gone, another's row gone
        rows = hc.vault.manifest.all_files()
        hc.vault.delete_files([rows[0].file_id])
        hc.vault.manifest.delete_file(rows[1].path_id)
    assert _cli(vault_home, "index", str(tree.root)).returncode == 0
    result = _cli(vault_home, "repair", "--json")
    assert result.returncode == 0, result.stderr
    assert '"stray_files": 1' in result.stdout and '"reread": 1' in result.stdout
    with Huisclos(settings) as hc:
        _assert_exact(hc, tree, search_all=True)


# --- two processes -------------------------------------------------------------------


def test_two_index_runs_on_one_vault_take_turns_or_refuse_clearly(
    tmp_path: Path, vault_home: Path
) -> None:
    tree = Tree(tmp_path / "Clients", seed=11)
    tree.add(160)
    first = subprocess.Popen(
        [*HUISCLOS, "index", "--json", str(tree.root)],
        env=_env(vault_home),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 120
    while _sql(vault_home, "SELECT count(*) FROM files") < 1:  # it holds the writer lock
        assert first.poll() is None and time.monotonic() < deadline
        time.sleep(0.01)
    second = _cli(vault_home, "index", "--json", str(tree.root))
    out, err = first.communicate(timeout=600)
    assert first.returncode == 0, err
    assert second.returncode == 0, second.stderr
    assert '"added": 160' in out
    assert '"added": 0' in second.stdout and '"unchanged": 160' in second.stdout  # it waited
    with Huisclos(_settings(vault_home)) as hc:
        _assert_exact(hc, tree)
        tree.mutate()
        files, chunks = len(hc.vault.manifest.all_files()), hc.vault.store.count()
        with hc.vault.writing():  # another writer that does not finish in time
            result = _cli(vault_home, "index", str(tree.root), HUISCLOS_WRITER_WAIT_SECONDS="2")
            _clean_failure(result, "another huisclos process is writing to this vault")
        assert (len(hc.vault.manifest.all_files()), hc.vault.store.count()) == (files, chunks)
        hc.index(tree.root)
        _assert_exact(hc, tree)
