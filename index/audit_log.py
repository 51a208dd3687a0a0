"""The audit trail: a tamper-evident, append-only log of what huisclos did.

JSON Lines, one canonical JSON record per line (sorted keys, compact, ASCII).
Each record carries ``prev``, the MAC of the record before it, and ``mac`` =
HMAC-SHA256(key, prev + "\\n" + the record without ``mac``): without the
vault's key nobody can rewrite the log consistently. Records hold opaque ids,
counts and ciphertext only, never document text or plain questions.

Next to ``audit.jsonl`` (all files 0600): ``audit.jsonl.head`` holds the seq
and mac of the last record, rewritten on every append, so records removed
from the end are noticed; ``audit.jsonl.lock`` is ``flock``-ed around every
append (exclusive) and every read snapshot (shared), so many processes append.

A crash during a write can leave a last line without its newline. The next
append looks at the head: if the cut line was never committed (the head names
the line before it), its bytes are moved to ``audit.jsonl.partial-<time>`` and
an ``audit.recover`` record naming that file joins the chain. If it was
committed (the log was cut inside a recorded line), it is kept and terminated,
and verify() goes on reporting it as unreadable. Until the next append,
records() skips an incomplete last line and verify() reports it.

Example::

    log = AuditLog(vault / "audit.jsonl", key)
    log.append("ask", clients=[client_id], chunks=chunk_ids, question=question_ct,
               backend="llamacpp", model="qwen", details={"hits": 4})
    assert log.verify().ok
"""

from __future__ import annotations

import fcntl
import getpass
import hashlib
import hmac
import json
import logging
import math
import os
import re
from collections.abc import Collection, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from types import MappingProxyType, NoneType
from typing import Any

from huisclos.config import StoreError, TamperedError, VaultKeyError
from huisclos.index.audit_verify import AuditProblem, AuditReport, Row, gap_problems, order_problems

__all__ = ["AuditLog", "AuditProblem", "AuditRecord", "AuditReport"]

log = logging.getLogger(__name__)

Detail = str | int | float | bool | None
_TIME = "%Y-%m-%dT%H:%M:%SZ"
_SEQ_HINT = re.compile(rb'"seq":(\d{1,18})')
_IDS = ("clients", "files", "chunks")
_HEAD_SIZE = 128  # fixed, so that the head can be rewritten in place
_OPTIONAL = (str, NoneType)
_SCHEMA: dict[str, tuple[type, ...]] = {  # exact JSON types of each field
    "seq": (int,), "time": (str,), "user": (str,), "action": (str,), "clients": (list,),
    "files": (list,), "chunks": (list,), "backend": _OPTIONAL, "model": _OPTIONAL,
    "local": (bool,), "details": (dict,), "question": _OPTIONAL, "prev": (str,), "mac": (str,),
}  # fmt: skip


@dataclass(frozen=True, slots=True)
class AuditRecord:
    """One entry of the audit trail (see the module docstring for ``prev`` and ``mac``)."""

    seq: int
    time: str
    user: str
    action: str
    clients: tuple[str, ...]
    files: tuple[str, ...]
    chunks: tuple[str, ...]
    backend: str | None
    model: str | None
    local: bool
    details: Mapping[str, Detail]
    question: str | None
    prev: str
    mac: str


def _clock() -> datetime:
    return datetime.now(UTC)


def _os_user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return str(os.getuid())


def _canonical(obj: Mapping[str, Any]) -> bytes:
    text = json.dumps(obj, sort_keys=True, separators=(",", ":"), allow_nan=False)
    return text.encode("ascii")  # json.dumps escapes non-ASCII by default


def _mac(key: bytes, prev: str, body: Mapping[str, Any]) -> str:
    return hmac.new(key, prev.encode() + b"\n" + _canonical(body), hashlib.sha256).hexdigest()


def _fits(obj: Mapping[str, Any]) -> bool:
    """Whether parsed JSON (or a record's body) has exactly the fields and types of a record."""
    details = obj.get("details")
    return (
        obj.keys() <= _SCHEMA.keys()
        and all(type(obj.get(name)) in kinds for name, kinds in _SCHEMA.items() if name != "mac")
        and all(type(v) is str for name in _IDS for v in obj[name])
        and isinstance(details, dict)
        and all(type(v) in (str, int, float, bool, NoneType) for v in details.values())
        and all(math.isfinite(v) for v in details.values() if type(v) is float)
    )


def _record(obj: Any) -> AuditRecord:
    """A record from parsed JSON; raises ValueError if it does not fit."""
    if not isinstance(obj, dict) or obj.keys() != _SCHEMA.keys() or not _fits(obj):
        raise ValueError("not an audit record")
    values = obj | {name: tuple(obj[name]) for name in _IDS}
    values["details"] = MappingProxyType(obj["details"])
    return AuditRecord(**values)


def _body(record: AuditRecord) -> dict[str, Any]:
    """The record as JSON values, without its ``mac``."""
    body = {name: getattr(record, name) for name in _SCHEMA if name != "mac"}
    body.update({name: list(body[name]) for name in _IDS}, details=dict(record.details))
    return body


def _link(raw: bytes | None) -> tuple[int, str] | None:
    """(seq, mac) named by a raw line or head file, unauthenticated; None if unreadable."""
    try:
        obj = json.loads(raw) if raw else None
    except (ValueError, RecursionError):
        return None
    if isinstance(obj, dict) and type(obj.get("seq")) is int and type(obj.get("mac")) is str:
        return obj["seq"], obj["mac"]
    return None


def _tail(fd: int, size: int) -> tuple[bytes | None, int]:
    """The last complete line (without newline) and the number of bytes after it."""
    buf, pos = b"", size
    while True:
        end = buf.rfind(b"\n")
        start = buf.rfind(b"\n", 0, max(end, 0))
        if end >= 0 and (start >= 0 or pos == 0):
            return buf[start + 1 : end], len(buf) - end - 1
        if pos == 0:
            return None, len(buf)
        step = min(4096, pos)
        pos -= step
        buf = os.pread(fd, step, pos) + buf


def _write_new(path: Path, data: bytes) -> None:
    """Write a new private (0600) file durably."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)


class AuditLog:
    """The audit trail of one vault, shared by every process that uses it.

    Args:
        path: the JSON Lines file, created 0600 on the first append; its
            directory must exist.
        key: the 32-byte MAC key (derived from the vault's master key).

    Raises:
        VaultKeyError: the key is not 32 bytes long.
    """

    def __init__(self, path: Path, key: bytes) -> None:
        if len(key) != 32:
            raise VaultKeyError("the audit key must be 32 bytes; derive it from the master key")
        self.path = path
        self._key = key
        self._head = path.with_name(path.name + ".head")
        self._lock = path.with_name(path.name + ".lock")

    @contextmanager
    def _locked(self, exclusive: bool) -> Iterator[None]:
        try:
            fd = os.open(self._lock, os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as exc:
            raise StoreError(f"cannot lock the audit log {self.path}: {exc}") from exc
        try:
            fcntl.flock(fd, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
            yield
        finally:
            os.close(fd)

    def append(
        self,
        action: str,
        *,
        clients: Iterable[str] = (),
        files: Iterable[str] = (),
        chunks: Iterable[str] = (),
        backend: str | None = None,
        model: str | None = None,
        local: bool = True,
        details: Mapping[str, Detail] | None = None,
        question: str | None = None,
        user: str | None = None,
    ) -> AuditRecord:
        """Add one record at the end of the chain, atomically and durably.

        Args:
            action: what was done, e.g. ``"ask"``, ``"forget"``, ``"key.rotate"``.
            clients, files, chunks: opaque ids in scope, affected or shown.
            backend, model, local: what processed the data, and whether it stayed here.
            details: counts, outcome, error type as flat values; never text.
            question: the question's ciphertext, never the question itself.
            user: who did it; the OS user by default.

        Returns:
            The record as written.

        Raises:
            StoreError: a field has the wrong type, or the log cannot be written.
        """
        draft = AuditRecord(
            0, "", user or _os_user(), action, tuple(clients), tuple(files), tuple(chunks),
            backend, model, local, MappingProxyType(dict(details or {})), question, "", "",
        )  # fmt: skip
        if not action or not _fits(_body(draft)):
            raise StoreError(
                "an audit record needs an action, string ids and flat, finite details "
                "(str, int, float, bool or None); put counts and ids there, never text"
            )
        with self._locked(exclusive=True):
            try:
                fd = os.open(self.path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o600)
                try:
                    os.fchmod(fd, 0o600)
                    seq, prev, prefix = self._chain_end(fd)
                    return self._write(fd, replace(draft, seq=seq, prev=prev), prefix)
                finally:
                    os.close(fd)
            except OSError as exc:
                raise StoreError(f"cannot write the audit log {self.path}: {exc}") from exc

    def _chain_end(self, fd: int) -> tuple[int, str, bytes]:
        """Seq and prev of the next record, and bytes to write before it.

        Handles a last line cut short as the module docstring says.
        """
        size = os.fstat(fd).st_size
        last, partial = _tail(fd, size)
        end = _link(last) or self._scan_end(size)
        head = _link(self._head.read_bytes()) if self._head.exists() else None
        if head is not None and head[0] > end[0]:
            # Records were cut from the end: follow the head, so verify() still sees the gap.
            log.warning("audit log ends at seq %d, before its head (seq %d)", end[0], head[0])
            return head[0] + 1, head[1], b"\n" if partial else b""
        if partial:
            saved = self.path.with_name(f"{self.path.name}.partial-{_clock():%Y%m%dT%H%M%S%fZ}")
            _write_new(saved, os.pread(fd, partial, size - partial))
            os.ftruncate(fd, size - partial)
            log.warning("audit log: %d bytes of an interrupted write set aside", partial)
            note: dict[str, Detail] = {"partial_bytes": partial, "saved_as": saved.name}
            draft = AuditRecord(
                end[0] + 1, "", _os_user(), "audit.recover", (), (), (), None, None, True,
                MappingProxyType(note), None, end[1], "",
            )  # fmt: skip
            recovered = self._write(fd, draft, b"")
            end = recovered.seq, recovered.mac
        return end[0] + 1, end[1], b""

    def _scan_end(self, size: int) -> tuple[int, str]:
        """The highest (seq, mac) in the log, for when its last line is unreadable."""
        links = (_link(raw) for _, raw, complete in self._lines(size) if complete)
        return max((link for link in links if link), default=(0, ""))

    def _write(self, fd: int, draft: AuditRecord, prefix: bytes) -> AuditRecord:
        """Time-stamp and MAC ``draft``, write it as one line (one os.write), update the head."""
        draft = replace(draft, time=f"{_clock():{_TIME}}")
        body = _body(draft)
        record = replace(draft, mac=_mac(self._key, draft.prev, body))
        line = prefix + _canonical(body | {"mac": record.mac}) + b"\n"
        if os.write(fd, line) != len(line):
            raise StoreError(f"the audit log {self.path} was not fully written; is the disk full?")
        os.fsync(fd)
        # Overwritten in place, not synced: the log line is durable first, so after a
        # crash the head is at worst behind the log, which is harmless.
        head = _canonical({"mac": record.mac, "seq": record.seq}).ljust(_HEAD_SIZE - 1) + b"\n"
        head_fd = os.open(self._head, os.O_WRONLY | os.O_CREAT, 0o600)
        try:
            os.pwrite(head_fd, head, 0)
            os.ftruncate(head_fd, _HEAD_SIZE)
        finally:
            os.close(head_fd)
        return record

    def _snapshot(self) -> tuple[int, bytes | None]:
        """Size of the log and the head, read together while no append runs."""
        with self._locked(exclusive=False):
            size = self.path.stat().st_size if self.path.exists() else 0
            head = self._head.read_bytes() if self._head.exists() else None
        return size, head

    def _lines(self, size: int) -> Iterator[tuple[int, bytes, bool]]:
        """(line number, bytes without newline, complete) within the first ``size`` bytes."""
        if size == 0:
            return
        with self.path.open("rb") as file:
            done = 0
            for number, raw in enumerate(file, start=1):
                raw = raw[: size - done]
                done += len(raw)
                yield number, raw.removesuffix(b"\n"), raw.endswith(b"\n")
                if done >= size:
                    return

    def records(self) -> Iterator[AuditRecord]:
        """Every committed record in file order. MACs are not checked: see :meth:`verify`.

        Raises:
            TamperedError: a line is not a record; the message names the line.
        """
        size, _ = self._snapshot()
        for number, raw, complete in self._lines(size):
            if not complete:
                log.warning("audit log line %d is an interrupted write; skipped", number)
                return
            try:
                yield _record(json.loads(raw))
            except (ValueError, RecursionError) as exc:
                raise TamperedError(
                    f"line {number} of the audit log {self.path} is not a record: it was "
                    "damaged or edited; run verify() and restore the log from a backup"
                ) from exc

    def select(
        self,
        *,
        clients: Collection[str] | None = None,
        since: datetime | None = None,
        actions: Collection[str] | None = None,
    ) -> list[AuditRecord]:
        """The records that match every filter given.

        Args:
            clients: records naming at least one of these client ids.
            since: records from this time on, to the second (a naive time is UTC).
            actions: records of these actions.

        Raises:
            TamperedError: as :meth:`records`.
        """
        after = ""
        if since is not None:
            after = f"{since.replace(tzinfo=since.tzinfo or UTC).astimezone(UTC):{_TIME}}"
        wanted = None if clients is None else set(clients)
        return [
            record
            for record in self.records()
            if (wanted is None or not wanted.isdisjoint(record.clients))
            and record.time >= after
            and (actions is None or record.action in actions)
        ]

    def verify(self) -> AuditReport:
        """Check the whole log in one pass and report every problem, with its line.

        Each line's MAC is checked against its own ``prev``, so an edit is
        reported at the edited line only. Seqs reveal missing and reordered
        records, ``prev`` a splice of two copies of the log, the head file
        records cut from the end.

        Returns:
            The report; ``report.ok`` is False if anything is wrong.
        """
        size, head = self._snapshot()
        problems: list[AuditProblem] = []
        rows: list[Row] = []
        count = 0
        for count, raw, complete in self._lines(size):
            seq, found = self._check(count, raw, complete)
            if isinstance(found, AuditProblem):
                problems.append(found)
                rows.append((count, seq, None))
                continue
            _, last_seq, last_mac = rows[-1] if rows else (0, None, None)
            if last_mac and last_seq == found.seq - 1 and found.prev != last_mac:
                message = f"line {count} (seq {seq}) does not follow on from line {count - 1}"
                problems.append(AuditProblem(count, seq, "altered", message))
            rows.append((count, found.seq, found.mac))
        problems += order_problems(rows) + gap_problems(rows, head, _link(head), count)
        return AuditReport(count, tuple(sorted(problems, key=lambda p: (p.line, p.kind))))

    def _check(
        self, line: int, raw: bytes, complete: bool
    ) -> tuple[int | None, AuditRecord | AuditProblem]:
        """Seq and authentic record, or problem, of one line (a damaged line's seq is a guess)."""
        hints = _SEQ_HINT.findall(raw)  # the last one: "details" sorts before "seq"
        seq = int(hints[-1]) if hints else None
        where = f"line {line}" + (f" (seq {seq})" if seq is not None else "")
        try:
            obj = json.loads(raw)
        except (ValueError, RecursionError):
            why = "cannot be read" if complete else "is incomplete: a write was interrupted"
            return seq, AuditProblem(line, seq, "unreadable", f"{where} {why}")
        try:
            record = _record(obj)
            expected = _mac(self._key, record.prev, {k: v for k, v in obj.items() if k != "mac"})
            if raw == _canonical(obj) and hmac.compare_digest(record.mac, expected):
                return record.seq, record
        except (ValueError, TypeError):
            pass
        message = f"{where} was altered: it does not match its MAC"
        return seq, AuditProblem(line, seq, "altered", message)
