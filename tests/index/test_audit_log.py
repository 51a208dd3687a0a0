"""The audit trail: chain, tamper evidence, concurrent appends, crash recovery."""

from __future__ import annotations

import hashlib
import hmac
import itertools
import json
import re
import stat
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

import huisclos.index.audit_log as audit
from huisclos.config import StoreError, TamperedError, VaultKeyError
from huisclos.index.audit_log import AuditLog

KEY = bytes(range(32))


@pytest.fixture
def log_path(tmp_path: Path) -> Path:
    return tmp_path / "audit.jsonl"


def _filled(path: Path, count: int) -> AuditLog:
    log = AuditLog(path, KEY)
    for n in range(1, count + 1):
        log.append("ask", clients=[f"c{n % 2}"], chunks=[f"k{n}"], details={"hits": 10 + n})
    return log


def _lines(path: Path) -> list[bytes]:
    return path.read_bytes().splitlines(keepends=True)


def _problems(log: AuditLog) -> list[tuple[int, int | None, str]]:
    report = log.verify()
    assert report.ok is (not report.problems)
    return [(p.line, p.seq, p.kind) for p in report.problems]


def test_appended_records_read_back_as_a_chain(log_path: Path) -> None:
    log = AuditLog(log_path, KEY)
    written = [
        log.append("index", clients=["c1"], files=["f1", "f2"], details={"files": 2}),
        log.append(
            "ask",
            clients=["c1"],
            chunks=["k1"],
            backend="llamacpp",
            model="qwen",
            question="gAAAA-ciphertext",
            details={"hits": 1, "score": 0.5, "ok": True, "error": None},
            user="alice",
        ),
    ]
    assert list(log.records()) == written
    first, second = written
    assert (first.seq, second.seq) == (1, 2)
    assert first.prev == "" and second.prev == first.mac
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", second.time)
    assert second.user == "alice" and first.user
    assert second.question == "gAAAA-ciphertext" and second.details["score"] == 0.5
    # canonical JSON lines, MAC keyed as documented
    line = json.loads(_lines(log_path)[1])
    body = json.dumps(
        {k: v for k, v in line.items() if k != "mac"}, sort_keys=True, separators=(",", ":")
    )
    expected = hmac.new(KEY, (first.mac + "\n" + body).encode(), hashlib.sha256).hexdigest()
    assert line["mac"] == expected == second.mac


def test_files_are_private(log_path: Path) -> None:
    _filled(log_path, 1)
    for path in (log_path, Path(f"{log_path}.head"), Path(f"{log_path}.lock")):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_untouched_and_missing_logs_verify(log_path: Path) -> None:
    report = AuditLog(log_path, KEY).verify()
    assert report.ok and report.records == 0
    report = _filled(log_path, 5).verify()
    assert report.ok and report.records == 5 and report.problems == ()


def test_one_edited_byte_is_reported_at_that_line_only(log_path: Path) -> None:
    log = _filled(log_path, 8)
    lines = _lines(log_path)
    lines[4] = lines[4].replace(b'"hits":15', b'"hits":95')
    log_path.write_bytes(b"".join(lines))
    report = log.verify()
    assert not report.ok
    assert [(p.line, p.seq, p.kind) for p in report.problems] == [(5, 5, "altered")]
    assert "line 5" in report.problems[0].message


def test_edit_that_breaks_json_is_unreadable(log_path: Path) -> None:
    log = _filled(log_path, 6)
    lines = _lines(log_path)
    lines[2] = lines[2].replace(b'"action":', b'"action";')
    log_path.write_bytes(b"".join(lines))
    assert _problems(log) == [(3, 3, "unreadable")]
    with pytest.raises(TamperedError, match="line 3 "):
        list(log.records())


def test_deleted_record_is_missing(log_path: Path) -> None:
    log = _filled(log_path, 8)
    lines = _lines(log_path)
    del lines[4]
    log_path.write_bytes(b"".join(lines))
    report = log.verify()
    assert [(p.line, p.seq, p.kind) for p in report.problems] == [(5, 5, "missing")]
    assert (
        report.problems[0].message == "seq 5 is missing between line 4 (seq 4) and line 5 (seq 6)"
    )


def test_swapped_records_are_reordered(log_path: Path) -> None:
    log = _filled(log_path, 8)
    lines = _lines(log_path)
    lines[3], lines[4] = lines[4], lines[3]
    log_path.write_bytes(b"".join(lines))
    assert _problems(log) == [(4, 5, "reordered"), (5, 4, "reordered")]


def test_record_moved_far_is_the_one_reported(log_path: Path) -> None:
    log = _filled(log_path, 8)
    lines = _lines(log_path)
    lines.append(lines.pop(1))  # seq 2 moved to the end
    log_path.write_bytes(b"".join(lines))
    report = log.verify()
    assert [(p.line, p.seq, p.kind) for p in report.problems] == [(8, 2, "reordered")]
    assert "after seq 1 (line 1)" in report.problems[0].message


def test_removed_last_records_are_truncated(log_path: Path) -> None:
    log = _filled(log_path, 6)
    lines = _lines(log_path)
    log_path.write_bytes(b"".join(lines[:4]))
    report = log.verify()
    assert [(p.line, p.seq, p.kind) for p in report.problems] == [(5, 5, "truncated")]
    assert "2 record(s) were removed from the end" in report.problems[0].message
    # the chain continues after the head, so the gap stays visible
    log.append("search")
    assert _problems(log) == [(5, 5, "missing")]


def test_missing_head_is_reported(log_path: Path) -> None:
    log = _filled(log_path, 3)
    Path(f"{log_path}.head").unlink()
    assert _problems(log) == [(4, None, "truncated")]


def test_record_rewritten_with_a_wrong_key_is_caught(log_path: Path) -> None:
    log = _filled(log_path, 5)
    lines = _lines(log_path)
    record = json.loads(lines[2])
    record["details"] = {"hits": 0}
    del record["mac"]
    body = json.dumps(record, sort_keys=True, separators=(",", ":"))
    record["mac"] = hmac.new(b"x" * 32, f"{record['prev']}\n{body}".encode(), "sha256").hexdigest()
    lines[2] = json.dumps(record, sort_keys=True, separators=(",", ":")).encode() + b"\n"
    log_path.write_bytes(b"".join(lines))
    assert _problems(log) == [(3, 3, "altered")]


def test_record_from_another_copy_of_the_log_is_caught(tmp_path: Path) -> None:
    ours, theirs = _filled(tmp_path / "a.jsonl", 4), AuditLog(tmp_path / "b.jsonl", KEY)
    for n in range(4):
        theirs.append("search", details={"n": n})
    lines = _lines(ours.path)
    lines[3] = _lines(theirs.path)[3]  # same key, same seq, other chain
    ours.path.write_bytes(b"".join(lines))
    assert _problems(ours) == [(4, 4, "altered"), (4, 4, "altered")]  # link and head


def test_select_filters_by_client_time_and_action(
    log_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    times = iter(datetime(2026, 11, 30, 10, 0, s, tzinfo=UTC) for s in (1, 2, 3, 4))
    monkeypatch.setattr(audit, "_clock", lambda: next(times))
    log = AuditLog(log_path, KEY)
    log.append("index", clients=["c1"])
    log.append("ask", clients=["c2", "c3"])
    log.append("forget", clients=["c3"])
    log.append("key.rotate")

    def seqs(**filters: object) -> list[int]:
        return [record.seq for record in log.select(**filters)]  # type: ignore[arg-type]

    assert seqs() == [1, 2, 3, 4]
    assert seqs(clients=["c3", "c9"]) == [2, 3]
    assert seqs(clients=[]) == []
    assert seqs(since=datetime(2026, 11, 30, 10, 0, 2, 500_000, tzinfo=UTC)) == [2, 3, 4]
    assert seqs(since=datetime(2026, 11, 30, 10, 0, 3)) == [3, 4]  # naive is UTC
    assert seqs(actions={"ask", "forget"}, clients=["c2"]) == [2]


def test_details_must_be_flat_and_the_key_32_bytes(log_path: Path) -> None:
    log = AuditLog(log_path, KEY)
    for details in ({"text": ["a", "b"]}, {"ratio": float("nan")}, {"n": {"x": 1}}):
        with pytest.raises(StoreError, match="never text"):
            log.append("ask", details=details)  # type: ignore[dict-item]
    with pytest.raises(StoreError):
        log.append("")
    assert not log_path.exists() or log_path.read_bytes() == b""
    with pytest.raises(VaultKeyError):
        AuditLog(log_path, b"short")


CHILD = """
import sys, time
from pathlib import Path
from huisclos.index.audit_log import AuditLog
path, worker = Path(sys.argv[1]), sys.argv[2]
log = AuditLog(path, bytes(range(32)))
Path(f"{path}.ready-{worker}").touch()
while not Path(f"{path}.go").exists():
    time.sleep(0.001)
for n in range(200):
    log.append("watch", details={"worker": worker, "n": n})
"""


def test_two_processes_appending_make_one_chain(log_path: Path) -> None:
    children = [
        subprocess.Popen([sys.executable, "-c", CHILD, str(log_path), worker])
        for worker in ("a", "b")
    ]
    deadline = time.monotonic() + 30
    while not all(Path(f"{log_path}.ready-{w}").exists() for w in "ab"):
        assert time.monotonic() < deadline and all(c.poll() is None for c in children)
        time.sleep(0.005)
    Path(f"{log_path}.go").touch()
    assert [child.wait(timeout=60) for child in children] == [0, 0]
    report = AuditLog(log_path, KEY).verify()
    assert report.ok and report.records == 400
    records = list(AuditLog(log_path, KEY).records())
    assert [r.seq for r in records] == list(range(1, 401))
    workers = [r.details["worker"] for r in records]
    for worker in "ab":
        assert [r.details["n"] for r in records if r.details["worker"] == worker] == list(
            range(200)
        )
    assert sum(a != b for a, b in itertools.pairwise(workers)) > 1  # the two interleaved


def test_interrupted_write_is_set_aside_and_recorded(log_path: Path) -> None:
    log = _filled(log_path, 3)
    partial = b'{"action":"ask","backend":null,"chunks":["k4"],"cli'
    with log_path.open("ab") as file:
        file.write(partial)  # a crash cut the 4th record short; the head still says 3
    assert _problems(log) == [(4, None, "unreadable")]
    assert "incomplete" in log.verify().problems[0].message
    assert [r.seq for r in log.records()] == [1, 2, 3]

    log.append("ask", clients=["c1"])
    assert log.verify().ok
    recover, new = list(log.records())[3:]
    assert (recover.seq, recover.action, new.seq) == (4, "audit.recover", 5)
    assert recover.details["partial_bytes"] == len(partial)
    saved = log_path.with_name(str(recover.details["saved_as"]))
    assert saved.name.startswith("audit.jsonl.partial-")
    assert saved.read_bytes() == partial
    assert stat.S_IMODE(saved.stat().st_mode) == 0o600


def test_log_cut_inside_a_committed_record_stays_reported(log_path: Path) -> None:
    log = _filled(log_path, 3)
    size = log_path.stat().st_size
    with log_path.open("r+b") as file:
        file.truncate(size - 20)  # the head says 3: line 3 was committed
    assert _problems(log) == [(3, 3, "unreadable")]

    head = json.loads(Path(f"{log_path}.head").read_bytes())
    record = log.append("ask")
    assert (record.seq, record.prev) == (4, head["mac"])
    assert _problems(log) == [(3, 3, "unreadable")]
    with pytest.raises(TamperedError, match="line 3 "):
        list(log.records())
