"""The store on a Chroma server (started here on loopback with `chroma run`)."""

from __future__ import annotations

import json
import os
import shutil
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from huisclos.config import StoreError, load_settings
from huisclos.pipeline import Huisclos
from tests.conftest import SAMPLE
from tests.fakes.ollama import FakeOllama

pytestmark = pytest.mark.integration


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def chroma_port(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    port = _free_port()
    data = tmp_path_factory.mktemp("chroma-server")
    binary = Path(sys.executable).with_name("chroma")
    proc = subprocess.Popen(
        [str(binary), "run", "--path", str(data), "--host", "127.0.0.1", "--port", str(port)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                time.sleep(0.3)
        else:
            pytest.fail("chroma run did not start within 60 s")
        yield port
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_index_and_search_on_a_chroma_server(tmp_path: Path, chroma_port: int) -> None:
    root = tmp_path / "Clients"
    shutil.copytree(SAMPLE, root)
    settings = load_settings(
        key_source="file", convert_workers=0, chroma_host="127.0.0.1", chroma_port=chroma_port
    )
    with Huisclos(settings) as hc:
        report = hc.index(root)
        assert (report.added, report.failed) == (6, 0)
        assert not (settings.home / "chroma").exists()  # nothing embedded locally
        hits = hc.search("préavis de résiliation", client="Dupont SARL", top_k=1)
        assert hits[0].path == "Dupont SARL/contrat-prestation.md"
        assert hc.index(root).chunks_written == 0


def test_unreachable_server_is_a_clear_store_error() -> None:
    settings = load_settings(key_source="file", chroma_host="127.0.0.1", chroma_port=_free_port())
    with pytest.raises(StoreError, match="cannot open the Chroma server"):
        Huisclos(settings)


def _watcher(root: Path, home: Path, port: int, log: Path) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "HUISCLOS_HOME": str(home),
        "HUISCLOS_KEY_SOURCE": "file",
        "HUISCLOS_CHROMA_HOST": "127.0.0.1",
        "HUISCLOS_CHROMA_PORT": str(port),
    }
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "huisclos.pipeline.cli", "watch", str(root)],
            env=env, stdout=out, stderr=out,
        )  # fmt: skip


def _indexed(home: Path) -> int:
    try:
        with sqlite3.connect(f"file:{home / 'manifest.sqlite3'}?mode=ro", uri=True) as db:
            return int(
                db.execute("SELECT count(*) FROM files WHERE state = 'indexed'").fetchone()[0]
            )
    except sqlite3.Error:
        return -1


def test_two_watchers_write_into_one_server_without_meeting(
    tmp_path: Path, chroma_port: int
) -> None:
    """One watcher per file server, both on one Chroma server, writing at the same time:
    each vault gets its own collections and finds only its own files."""
    servers = {"paris": "Cabinet Paris", "lyon": "Cabinet Lyon"}
    roots = {name: tmp_path / name / "Clients" for name in servers}
    for root in roots.values():
        (root / "Martin").mkdir(parents=True)
    watchers = [
        _watcher(roots[name], tmp_path / name / "vault", chroma_port, tmp_path / f"{name}.log")
        for name in servers
    ]
    try:
        time.sleep(8)  # both watching: their first scans are done or under way
        for n in range(40):  # the two file servers receive files at the same time
            for name, firm in servers.items():
                (roots[name] / "Martin" / f"note-{n:02}.txt").write_text(
                    f"{firm} : note {n} du dossier Martin, honoraires de {100 + n} euros.\n"
                    f"Le code de ce bureau est {name.upper()}-{n:02}.",
                    encoding="utf-8",
                )
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline:
            if all(_indexed(tmp_path / name / "vault") == 40 for name in servers):
                break
            assert all(w.poll() is None for w in watchers), "a watcher died"
            time.sleep(0.5)
        else:
            pytest.fail("the two watchers did not index their 40 files within 240 s")
    finally:
        for watcher in watchers:
            watcher.terminate()
            watcher.wait(timeout=60)

    collections = set()
    for name, firm in servers.items():
        settings = load_settings(
            home=tmp_path / name / "vault", key_source="file",
            chroma_host="127.0.0.1", chroma_port=chroma_port,
        )  # fmt: skip
        with Huisclos(settings) as hc:
            collections.add(hc.vault.store.collection)
            assert hc.vault.store.count() == 40
            hits = hc.search(f"code du bureau {name.upper()}-07", top_k=3)
            assert hits[0].path == "Martin/note-07.txt"
            assert all(firm in hit.text for hit in hits)  # never the other vault's chunks
            assert hc.index(roots[name]).chunks_written == 0
    assert len(collections) == 2


def test_a_collection_of_another_vault_is_refused(tmp_path: Path, chroma_port: int) -> None:
    shared = {"chroma_host": "127.0.0.1", "chroma_port": chroma_port, "collection": "cabinet"}
    with Huisclos(load_settings(home=tmp_path / "a", key_source="file", **shared)) as hc:
        assert hc.vault.store.collection == "cabinet"
    with pytest.raises(StoreError, match="belongs to another vault"):
        Huisclos(load_settings(home=tmp_path / "b", key_source="file", **shared))
    # its owner opens it again
    with Huisclos(load_settings(home=tmp_path / "a", key_source="file", **shared)) as hc:
        assert hc.vault.store.count() == 0


def test_the_scale_out_configuration_answers_with_a_citation(
    tmp_path: Path, chroma_port: int
) -> None:
    """Store on a Chroma server, generator on an Ollama server: a cited answer."""
    root = tmp_path / "Clients"
    shutil.copytree(SAMPLE, root)

    def reply(body: dict[str, object]) -> str:
        prompt = json.dumps(body, ensure_ascii=False)
        return "Le préavis est de trois mois [1]." if "préavis" in prompt else "Je ne sais pas."

    with FakeOllama(models=["qwen2.5:7b-instruct"], reply=reply) as ollama:
        settings = load_settings(
            key_source="file", convert_workers=0, chroma_host="127.0.0.1",
            chroma_port=chroma_port, generator="ollama", ollama_url=ollama.url,
        )  # fmt: skip
        with Huisclos(settings) as hc:
            hc.index(root)
            answer = hc.ask("Quel est le préavis de résiliation du contrat ?", client="Dupont SARL")
    assert answer.answer == "Le préavis est de trois mois [1]."
    assert answer.backend == "ollama"
    assert [c.path for c in answer.citations] == ["Dupont SARL/contrat-prestation.md"]
    # the passage read from the server's store reached the Ollama server
    assert "avant la clôture" in json.dumps(ollama.chat_requests[-1], ensure_ascii=False)
