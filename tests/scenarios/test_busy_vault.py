"""Searches and questions keep answering while another process indexes heavily into the vault.

A vault holds the sample tree; then ``huisclos index`` (a separate process, as
the watcher or a scheduled run would be) writes 300 new files into it while
this process searches and asks again and again. Every search and question
must succeed, quickly, with the passages committed before; the new files
become searchable as their batches commit, and the index run ends complete.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from huisclos.config import Settings, load_settings
from huisclos.pipeline import Huisclos
from tests.conftest import SAMPLE
from tests.fakes.ollama import FakeOllama

pytestmark = pytest.mark.integration

MODEL = "qwen2.5:1.5b"
QUESTION = "How much are the quarterly fees?"


@pytest.fixture
def fake() -> Iterator[FakeOllama]:
    with FakeOllama(models=[MODEL], reply=lambda body: "1 200 euros par trimestre [1].") as server:
        yield server


@pytest.fixture
def settings(vault_home: Path, fake: FakeOllama) -> Settings:
    return load_settings(
        key_source="file", generator="ollama", ollama_url=fake.url, ollama_model=MODEL
    )


def _bulk(root: Path, files: int) -> None:
    for n in range(files):
        folder = root / f"Client {n % 12:02d}"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"note-{n:04d}.txt").write_text(
            f"Note de suivi numéro {n} du dossier. "
            + " ".join(f"ligne {n}-{k} : échéance, relance et solde du compte." for k in range(40))
            + f"\nRéférence unique REF{n:04d}X.\n"
        )


def test_searches_and_questions_answer_during_a_heavy_index_run(
    tmp_path: Path, settings: Settings
) -> None:
    with Huisclos(settings) as hc:
        hc.index(SAMPLE)
        before = hc.search("quarterly fees", client="Acme Ltd", top_k=3)
        assert before
        bulk = tmp_path / "Bulk"
        _bulk(bulk, 300)
        env = {**os.environ, "HUISCLOS_HOME": str(settings.home), "HUISCLOS_KEY_SOURCE": "file"}
        env["HUISCLOS_BATCH_FILES"] = "25"  # many commits: the searches see them land
        writer = subprocess.Popen(
            [sys.executable, "-m", "huisclos.pipeline.cli", "index", str(bulk)],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        latencies: list[float] = []
        seen_new = False
        try:
            while writer.poll() is None:
                began = time.monotonic()
                hits = hc.search("quarterly fees", client="Acme Ltd", top_k=3)
                answer = hc.ask(QUESTION, client="Acme Ltd")
                latencies.append(time.monotonic() - began)
                assert [h.chunk_id for h in hits] == [h.chunk_id for h in before]
                assert answer.citations and not answer.not_found
                new = hc.search("REF0007X", top_k=1)
                seen_new = seen_new or bool(new and "REF0007X" in new[0].text)
        finally:
            _, errors = writer.communicate(timeout=900)
        assert writer.returncode == 0, errors[-2000:]
        assert len(latencies) >= 5, "the index run ended before the searches could overlap it"
        assert max(latencies) < 15.0 and statistics.median(latencies) < 5.0, latencies
        assert seen_new  # passages of the running index became searchable as batches landed
        assert hc.search("REF0299X", top_k=1)[0].path == "Client 11/note-0299.txt"
