"""Retention: data is kept no longer than the firm decided, then erased like a ``forget``.

Two rules, set globally and overridable per client (``retention_by_client``):

- ``deleted_days``: a file whose source was deleted is forgotten once the
  last full scan of its root is older than this. (A root that is indexed or
  watched drops deleted files at once; this rule covers folders no longer
  indexed. A root that is not there at all, such as an unmounted share,
  proves nothing and is left alone.)
- ``inactive_years``: a client none of whose files changed for this long, and
  that huisclos has known for this long, is forgotten, its key destroyed, and
  its folder, if still on disk, excluded from indexing like after ``huisclos
  forget``. Files directly in a root (``_shared``) only with an explicit rule.

The watcher applies the rules at start and at each periodic rescan;
``huisclos retention apply`` applies them on demand (``--dry-run`` shows what
would go). Every erasure is a ``retention`` record in the audit trail.
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from huisclos.config import Settings, TamperedError, VaultKeyError
from huisclos.connectors.scan import SHARED_CLIENT
from huisclos.index.manifest import FileRecord
from huisclos.index.vault import Vault
from huisclos.pipeline.privacy.erasure import Forgetter

__all__ = ["Retention", "RetentionAction", "RetentionReport", "retention_configured"]

log = logging.getLogger(__name__)

_DAY = 86_400.0
_LOCK_WAIT_SECONDS = 120.0
_YEAR = 365.25 * _DAY


def retention_configured(settings: Settings) -> bool:
    """Whether any retention rule is set."""
    return (
        settings.retention_deleted_days is not None
        or settings.retention_inactive_years is not None
        or any(settings.retention_by_client.values())
    )


@dataclass(slots=True)
class RetentionAction:
    """One erasure a rule calls for."""

    rule: str
    """"deleted_days" (files whose source is gone) or "inactive_years" (a client)."""
    client: str
    client_id: str
    files: list[FileRecord] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "rule": self.rule,
            "client": self.client,
            "files": len(self.files),
            "chunks": sum(row.chunks for row in self.files),
        }


@dataclass(slots=True)
class RetentionReport:
    """What a retention pass erased (or, in a dry run, would erase)."""

    dry_run: bool
    actions: list[RetentionAction] = field(default_factory=list)
    master_key: str = "unchanged"

    @property
    def files(self) -> int:
        return sum(len(action.files) for action in self.actions)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["actions"] = [action.to_dict() for action in self.actions]
        data["files"] = self.files
        return data


class Retention:
    """Applies the retention rules of the settings to one vault."""

    def __init__(self, vault: Vault) -> None:
        self.vault = vault
        self.forgetter = Forgetter(vault)

    def _override(self, client: str) -> dict[str, float]:
        return self.vault.settings.retention_by_client.get(client, {})

    def _rule(self, client: str, name: str) -> float | None:
        settings = self.vault.settings
        override = self._override(client)
        if name in override:
            return override[name]
        value: float | None = getattr(settings, f"retention_{name}")
        return value

    def plan(self, now: float | None = None) -> list[RetentionAction]:
        """The erasures the rules call for now (nothing is changed)."""
        now = time.time() if now is None else now
        vault = self.vault
        names = vault.client_names()
        roots = vault.roots()
        last_seen = vault.manifest.roots_last_seen()
        by_client: dict[str, list[FileRecord]] = {}
        for row in vault.manifest.all_files():
            by_client.setdefault(row.client_id, []).append(row)
        actions: list[RetentionAction] = []
        if by_client and now < max(row.updated for rows in by_client.values() for row in rows):
            log.warning("retention skipped: the clock is behind the last index run")
            return actions
        for client_id, rows in by_client.items():
            client = names.get(client_id)
            if client is None:  # no key: erased, its rows are being cleaned up
                continue
            years = self._rule(client, "inactive_years")
            if client == SHARED_CLIENT and "inactive_years" not in self._override(client):
                years = None  # files directly in a root are not a client that goes inactive
            # inactive since the newest change, or since huisclos first saw the client:
            # a folder restored or copied with old dates is not inactive on day one
            since = max(max(row.mtime_ns for row in rows) / 1e9, min(row.updated for row in rows))
            if years is not None and now - since > years * _YEAR:
                actions.append(RetentionAction("inactive_years", client, client_id, rows))
                continue
            days = self._rule(client, "deleted_days")
            if days is None:
                continue
            gone = [
                row
                for row in rows
                if (seen := last_seen.get(row.root_id)) is not None
                and now - seen > days * _DAY
                and self._gone(row, roots)
            ]
            if gone:
                actions.append(RetentionAction("deleted_days", client, client_id, gone))
        return actions

    def _gone(self, row: FileRecord, roots: dict[str, Path]) -> bool:
        """Whether the file's source is gone while its root is there (an absent root,
        such as an unmounted share, proves nothing)."""
        root = roots.get(row.root_id)
        if root is None or not root.is_dir():
            return False
        try:
            rel = self.vault.keys.cipher(row.client_id, create=False).decrypt(
                row.path_ct, row.file_id
            )
        except (VaultKeyError, TamperedError):
            return False  # unreadable: never erase on a guess
        return not (root / rel).exists()

    def apply(self, *, dry_run: bool = False, now: float | None = None) -> RetentionReport:
        """Erase what the rules call for; each erasure is audited.

        Raises:
            StoreError: another process kept the vault busy.
        """
        vault, forgetter = self.vault, self.forgetter
        forgetter.finish_pending()
        with vault.writing(wait=_LOCK_WAIT_SECONDS):  # the plan holds until it is carried out
            report = RetentionReport(dry_run, self.plan(now))
            if dry_run or not report.actions:
                return report
            for action in report.actions:
                if action.rule == "inactive_years":
                    forgetter.forget_client(
                        action.client, rotate=False, compact=False, trigger="retention"
                    )
                else:
                    forgetter.forget_files(action.files, trigger="retention")
            if any(action.rule == "inactive_years" for action in report.actions):
                report.master_key = forgetter.rotate()
            forgetter.compact()
            forgetter.done()
        log.info("retention: %d erasures, %d files", len(report.actions), report.files)
        return report
