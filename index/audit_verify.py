"""Verification of the audit trail: what is wrong, and where (for :mod:`.audit_log`).

Each line of the log becomes a row (line, seq, mac if authentic). Records out
of place are those outside every longest increasing run of seqs; gaps in the
seqs are missing records; the head file, written on every append, reveals
records cut from the end.
"""

from __future__ import annotations

import bisect
from collections import Counter
from dataclasses import dataclass
from typing import Literal

__all__ = ["AuditProblem", "AuditReport", "Row", "gap_problems", "order_problems"]


@dataclass(frozen=True)
class AuditProblem:
    """One finding of :meth:`AuditLog.verify`; ``line`` 0 is the head file."""

    line: int
    seq: int | None
    kind: Literal["altered", "missing", "reordered", "unreadable", "truncated"]
    message: str


@dataclass(frozen=True)
class AuditReport:
    """What :meth:`AuditLog.verify` found; ``records`` counts the lines of the log."""

    records: int
    problems: tuple[AuditProblem, ...]

    @property
    def ok(self) -> bool:
        """True when nothing is wrong."""
        return not self.problems


Row = tuple[int, int | None, str | None]  # line, seq, mac if the line is authentic


def _levels(values: list[int]) -> list[int]:
    """Length of the longest strictly increasing subsequence ending at each value."""
    tails: list[int] = []
    levels = []
    for value in values:
        at = bisect.bisect_left(tails, value)
        tails[at : at + 1] = [value]
        levels.append(at + 1)
    return levels


def order_problems(rows: list[Row]) -> list[AuditProblem]:
    """Records out of place: those missing from some longest increasing run of seqs."""
    problems: list[AuditProblem] = []
    line_of: dict[int, int] = {}
    kept: list[tuple[int, int]] = []
    for line, seq, mac in rows:
        if mac and seq is not None and seq in line_of:
            message = f"line {line} (seq {seq}) duplicates line {line_of[seq]}"
            problems.append(AuditProblem(line, seq, "reordered", message))
        elif mac and seq is not None:
            line_of[seq] = line
            kept.append((line, seq))
    ending = _levels([seq for _, seq in kept])
    starting = _levels([-seq for _, seq in reversed(kept)])[::-1]
    best = max(ending, default=0)
    on_best = [a + b - 1 == best for a, b in zip(ending, starting, strict=True)]
    at_level = Counter(level for level, on in zip(ending, on_best, strict=True) if on)
    runs: list[list[tuple[int, int]]] = []
    for (line, seq), level, on in zip(kept, ending, on_best, strict=True):
        if on and at_level[level] == 1:
            continue  # in every longest run: in place
        if runs and runs[-1][-1] == (line - 1, seq - 1):
            runs[-1].append((line, seq))
        else:
            runs.append([(line, seq)])
    for (line, seq), *rest in runs:
        last_line, last_seq = rest[-1] if rest else (line, seq)
        what = f"line {line} (seq {seq}) is out of order; it belongs"
        if rest:
            what = f"lines {line}-{last_line} (seq {seq}-{last_seq}) are out of order; they belong"
        place = f"after seq {seq - 1} (line {line_of[seq - 1]})" if seq - 1 in line_of else ""
        place = place or ("at the start" if seq == 1 else f"after seq {seq - 1}")
        problems.append(AuditProblem(line, seq, "reordered", f"{what} {place}"))
    return problems


def _fill(rows: list[Row]) -> dict[int, int]:
    """Seq -> line of the damaged lines, placed by the authentic records around them."""
    filled: dict[int, int] = {}
    before, run = 0, []
    for line, seq, mac in [*rows, (0, None, "end")]:
        if mac is None:
            run.append((line, seq))
            continue
        if seq is None or seq - before - 1 == len(run):  # at the end, or filling the gap
            filled.update({before + 1 + at: damaged for at, (damaged, _) in enumerate(run)})
        else:  # lines cut or inserted too: trust hints, then guess in order if lines are short
            hinted = {hint: damaged for damaged, hint in run if hint and before < hint < seq}
            filled.update(hinted)
            if len(run) < seq - before - 1:
                free = (guess for guess in range(before + 1, seq) if guess not in hinted)
                placed = set(hinted.values())
                unplaced = [damaged for damaged, _ in run if damaged not in placed]
                filled.update(zip(free, unplaced, strict=False))
        before, run = seq or before, []
    return filled


def gap_problems(
    rows: list[Row], head: bytes | None, link: tuple[int, str] | None, count: int
) -> list[AuditProblem]:
    """Seqs missing inside the log, and records cut from its end (per the head file)."""
    line_of = {seq: line for line, seq, mac in reversed(rows) if mac and seq is not None}
    mac_of = {seq: mac for _, seq, mac in reversed(rows) if mac and seq is not None}
    present = _fill(rows) | line_of
    problems, top = [], 0
    for seq in sorted(present):
        if seq > top + 1:
            what = f"seq {top + 1} is" if seq == top + 2 else f"seq {top + 1}-{seq - 1} are"
            after = f"line {present[top]} (seq {top})" if top else "the start"
            message = f"{what} missing between {after} and line {present[seq]} (seq {seq})"
            problems.append(AuditProblem(present[seq], top + 1, "missing", message))
        top = seq
    if head is None and line_of:
        message = "the head file is missing: records cut from the end would go unnoticed"
        problems.append(AuditProblem(count + 1, None, "truncated", message))
    elif head is not None and link is None:
        problems.append(AuditProblem(0, None, "unreadable", "the head file cannot be read"))
    elif link is not None and link[0] > top:
        ends = f"the log ends at line {count} (seq {top})" if top else "the log has no records"
        message = f"{ends} but its head file names seq {link[0]}: "
        message += f"{link[0] - top} record(s) were removed from the end"
        problems.append(AuditProblem(count + 1, top + 1, "truncated", message))
    elif link is not None and mac_of.get(link[0], link[1]) != link[1]:
        message = f"line {line_of[link[0]]} (seq {link[0]}) is not the record the head names"
        problems.append(AuditProblem(line_of[link[0]], link[0], "altered", message))
    return problems
