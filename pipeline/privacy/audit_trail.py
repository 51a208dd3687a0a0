"""What goes into the audit trail for each user-facing action, and how questions are kept.

A question may name a client or quote personal data, so it is never kept in
clear. With ``audit_questions`` on (the default) it is encrypted in layers
under the data key of every client whose passages it was shown (or that it
was scoped to): erasing any of those clients makes it unreadable, like the
rest of that client's data. A question that touched no client's data is not
kept (no client key could erase it later). With ``audit_questions`` off, no
question is kept: only ids and counts.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from huisclos.config import TamperedError, VaultKeyError
from huisclos.index.audit_log import AuditRecord
from huisclos.index.vault import Vault

__all__ = ["ERASED", "AuditEntry", "Auditor"]

log = logging.getLogger(__name__)

ERASED = "(unreadable: a client it concerned was erased)"
_AAD = "audit question"


@dataclass(frozen=True, slots=True)
class AuditEntry:
    """An audit record for display: ids resolved to names where keys still exist."""

    record: AuditRecord
    clients: list[str]
    question: str | None

    def to_dict(self) -> dict[str, Any]:
        record = self.record
        return {
            "seq": record.seq,
            "time": record.time,
            "user": record.user,
            "action": record.action,
            "clients": self.clients,
            "client_ids": list(record.clients),
            "files": list(record.files),
            "chunks": list(record.chunks),
            "backend": record.backend,
            "model": record.model,
            "local": record.local,
            "details": dict(record.details),
            "question": self.question,
        }


class Auditor:
    """Writes and reads the audit trail of one vault."""

    def __init__(self, vault: Vault) -> None:
        self.vault = vault

    def seal(self, text: str, client_ids: Sequence[str]) -> str | None:
        """The question as kept in the trail (None when questions are not kept)."""
        if not self.vault.settings.audit_questions:
            return None
        keys = self.vault.keys
        ids = sorted(set(client_ids))
        if not ids:
            # it touched no client's data, but may name one: no key could erase it later
            return None
        token = text
        for client_id in ids:
            token = keys.cipher(client_id, create=False).encrypt(token, _AAD)
        return "c:" + ",".join(ids) + ":" + token

    def unseal(self, sealed: str | None) -> str | None:
        """The question in clear, :data:`ERASED` if a key is gone, None if not kept."""
        if not sealed:
            return None
        keys = self.vault.keys
        try:
            _, ids, token = sealed.split(":", 2)
            for client_id in reversed(ids.split(",")):
                token = keys.cipher(client_id, create=False).decrypt(token, _AAD)
            return token
        except (VaultKeyError, TamperedError, ValueError):
            return ERASED

    def record(self, action: str, **fields: Any) -> AuditRecord:
        """Append one record (see :meth:`huisclos.index.audit_log.AuditLog.append`)."""
        return self.vault.audit.append(action, **fields)

    def question(
        self,
        action: str,
        text: str,
        *,
        scope: str | None,
        shown: Sequence[tuple[str, str, str]],
        backend: str | None = None,
        model: str | None = None,
        details: dict[str, Any] | None = None,
    ) -> AuditRecord:
        """Record a search or a question: scope, what was shown (client, file, chunk ids)."""
        clients = [self.vault.find_client(scope)[1]] if scope is not None else []
        clients += [client_id for client_id, _, _ in shown if client_id not in clients]
        settings = self.vault.settings
        return self.record(
            action,
            clients=clients,
            files=list(dict.fromkeys(file_id for _, file_id, _ in shown)),
            chunks=[chunk_id for _, _, chunk_id in shown],
            backend=backend,
            model=model,
            local=settings.answers_stay_local if backend else True,
            details={"scoped": scope is not None, **(details or {})},
            question=self.seal(text, clients),
        )

    def entries(
        self,
        *,
        client: str | None = None,
        since: datetime | None = None,
        actions: Sequence[str] | None = None,
        questions: bool = False,
    ) -> list[AuditEntry]:
        """Records for display, optionally of one client, since a date, of some actions.

        ``questions``: decrypt the questions (where the keys still exist); this
        reading is itself recorded (``audit.show``).
        """
        vault = self.vault
        names = vault.client_names()
        clients = None if client is None else [vault.find_client(client)[1]]
        records = vault.audit.select(clients=clients, since=since, actions=actions)
        if questions:
            self.record(
                "audit.show",
                clients=clients or [],
                details={"questions": True, "records": len(records)},
            )
        return [
            AuditEntry(
                record,
                [names.get(cid, f"(erased {cid[:8]})") for cid in record.clients],
                self.unseal(record.question) if questions else None,
            )
            for record in records
        ]
