"""The embedded chunk store shared by several processes (a watcher and readers)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from huisclos.config import load_settings
from huisclos.index.store import ChunkRecord, EncryptedStore

_DIM = 8


def _record(n: int) -> ChunkRecord:
    embedding = [0.0] * _DIM
    embedding[n % _DIM] = 1.0
    embedding[(n + 1) % _DIM] = 0.5
    meta = {"client": "c", "file": f"f{n}", "page": 0, "n": 0, "ct": f"ciphertext-{n}"}
    return ChunkRecord(id=f"chunk-{n}", embedding=embedding, meta=meta)  # type: ignore[arg-type]


_DELETE_ELSEWHERE = """
import sys
from pathlib import Path
from huisclos.config import load_settings
from huisclos.index.store import EncryptedStore

home = Path(sys.argv[1])
marker = home / "chroma" / "changed"
before = marker.read_text(encoding="ascii")
EncryptedStore(load_settings(home=home)).delete_files(["f0", "f1"])
marker.write_text(before, encoding="ascii")  # as if the reader looked before the bump
"""


def test_a_reader_never_returns_chunks_another_process_deleted(tmp_path: Path) -> None:
    """The window between another process's delete and its marker bump."""
    settings = load_settings(home=tmp_path)
    writer = EncryptedStore(settings)
    writer.upsert(_record(n) for n in range(6))
    reader = EncryptedStore(settings)
    assert {h.id for h in reader.query(_record(0).embedding, top_k=6)} == {
        f"chunk-{n}" for n in range(6)
    }

    subprocess.run(
        [sys.executable, "-c", _DELETE_ELSEWHERE, str(tmp_path)], check=True, timeout=120
    )

    hits = reader.query(_record(0).embedding, top_k=6)
    assert all(h.meta is not None for h in hits)
    assert {h.id for h in hits} == {f"chunk-{n}" for n in range(2, 6)}
