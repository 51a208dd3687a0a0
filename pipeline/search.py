"""Searching the encrypted index: embed, retrieve (optionally one client), decrypt."""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass

from huisclos.config import ConfigError, TamperedError, VaultKeyError
from huisclos.index.vault import Vault
from huisclos.pipeline.embedding import TextEmbedder

__all__ = ["SearchHit", "Searcher"]

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class SearchHit:
    """One passage found. ``path`` is relative to its root."""

    path: str
    client: str
    page: int | None
    score: float
    text: str
    source: str | None = None
    """For an e-mail attachment: the attachment's file name."""
    section: str | None = None
    """Sheet name or slide title, when the format has one."""
    client_id: str = ""
    file_id: str = ""
    chunk_id: str = ""
    """Opaque ids (as in the audit trail)."""

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


class Searcher:
    """Dense search over one vault."""

    def __init__(self, vault: Vault) -> None:
        self.vault = vault
        settings = vault.settings
        self._embedder = TextEmbedder(model=settings.embedding_model, threads=settings.threads)

    def warm_up(self) -> None:
        self._embedder.warm_up()

    def search(self, query: str, *, client: str | None = None, top_k: int = 5) -> list[SearchHit]:
        """The ``top_k`` passages closest to ``query``, best first.

        Raises:
            ConfigError: ``top_k`` is not positive, or ``client`` is unknown.

        A stored passage that fails authentication (altered, or swapped onto
        another record) is never returned: it is left out, logged as a warning
        and recorded in the audit trail (action ``tamper``).
        """
        embedding = self._embedder.run(text=query)["embedding"]
        return self.retrieve(embedding, client=client, top_k=top_k)

    def retrieve(
        self, embedding: list[float], *, client: str | None = None, top_k: int = 5
    ) -> list[SearchHit]:
        """The ``top_k`` passages closest to a query embedding, best first.

        Raises:
            ConfigError: ``top_k`` is not positive, or ``client`` is unknown.
        """
        if top_k < 1:
            raise ConfigError("top_k must be at least 1")
        vault = self.vault
        client_id = None
        if client is not None:
            _, client_id = vault.find_client(client)
            if client_id not in vault.manifest.clients():
                raise ConfigError(f"no indexed client is named {client!r}; see `huisclos status`")
        hits = vault.store.query(embedding, top_k, client_id)
        files = vault.manifest.by_file_ids(hit.meta["file"] for hit in hits)
        names = vault.client_names()
        results = []
        tampered: list[str] = []
        stale: list[str] = []
        for hit in hits:
            record = files.get(hit.meta["file"])
            if record is None:  # written by a run that has not committed yet
                continue
            try:
                cipher = vault.keys.cipher(record.client_id, create=False)
            except VaultKeyError:
                if vault.manifest.has_key(record.client_id):
                    raise  # the key is there but does not open: say so, not "tampered"
                continue  # the client was erased meanwhile
            try:
                payload = json.loads(cipher.decrypt(hit.meta["ct"], hit.id))
                path = cipher.decrypt(record.path_ct, record.file_id)
            except TamperedError:
                tampered.append(hit.id)
                stale.append(record.file_id)
                continue
            results.append(
                SearchHit(
                    path=path,
                    client=names.get(record.client_id, ""),
                    page=hit.meta["page"] or None,
                    score=round(1.0 - hit.distance, 6),
                    text=payload["text"],
                    source=payload.get("source") or None,
                    section=payload.get("section") or None,
                    client_id=record.client_id,
                    file_id=record.file_id,
                    chunk_id=hit.id,
                )
            )
        if tampered:
            log.warning(
                "%d stored passage(s) failed authentication (altered, swapped, or under an "
                "erased key) and were left out; they are named in the audit trail, and the next "
                "`huisclos index` (or the watcher's rescan) rebuilds them from the files.",
                len(tampered),
            )
            vault.manifest.invalidate(stale)  # the next index run rebuilds these files
            vault.audit.append(
                "tamper", files=stale, chunks=tampered, details={"records": len(tampered)}
            )
        log.info("search returned %d hits", len(results))
        return results
