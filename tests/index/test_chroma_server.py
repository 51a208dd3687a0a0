"""The store on a Chroma server (started here on loopback with `chroma run`)."""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from huisclos.config import StoreError, load_settings
from huisclos.pipeline import Huisclos
from tests.conftest import SAMPLE

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
