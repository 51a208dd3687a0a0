import time
from pathlib import Path

from huisclos.index.manifest import FileRecord, Manifest


def _row(path_id: str, file_id: str) -> FileRecord:
    return FileRecord(
        path_id,
        "root",
        "client",
        file_id,
        "ct",
        "content",
        "txt",
        1,
        1,
        "indexed",
        None,
        3,
        time.time(),
    )


def test_intent_is_cleared_when_a_row_adopts_the_file_id(tmp_path: Path) -> None:
    manifest = Manifest(tmp_path / "m.sqlite3")
    manifest.add_intents(["f1", "f2"])
    manifest.put_file(_row("p1", "f1"))
    assert manifest.pending_intents() == ["f2"]  # f2's chunks belong to nobody


def test_rolled_back_transaction_leaves_nothing(tmp_path: Path) -> None:
    manifest = Manifest(tmp_path / "m.sqlite3")
    try:
        with manifest.transaction():
            manifest.put_file(_row("p1", "f1"))
            raise RuntimeError("crash")
    except RuntimeError:
        pass
    assert manifest.all_files() == []


def test_replacing_a_row_keeps_one_row_per_path(tmp_path: Path) -> None:
    manifest = Manifest(tmp_path / "m.sqlite3")
    manifest.put_file(_row("p1", "f1"))
    manifest.put_file(_row("p1", "f2"))
    assert [r.file_id for r in manifest.all_files()] == ["f2"]
    assert manifest.counts_by_client() == [("client", 1, 3, 0)]
