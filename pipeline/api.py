"""The Python API: the verbs the CLI offers, for integrations.

Example::

    from huisclos.pipeline import Huisclos

    with Huisclos(home="/srv/huisclos-vault") as hc:
        report = hc.index("/srv/Clients")
        print(report.added, report.chunks_written)
        for hit in hc.search("montant de la facture", client="Dupont SARL"):
            print(hit.path, hit.page, hit.score)
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

from huisclos.config import Settings, install_network_guard, load_settings
from huisclos.index.vault import Vault
from huisclos.pipeline.ingest import IndexReport, Ingestor, Progress
from huisclos.pipeline.search import Searcher, SearchHit

__all__ = ["ClientStatus", "Huisclos", "Status"]

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class ClientStatus:
    name: str
    files: int
    chunks: int
    failed: int


@dataclass(frozen=True, slots=True)
class Status:
    """What the vault holds."""

    vault: str
    embedding_model: str
    store: str
    files: int
    chunks: int
    failed: int
    clients: list[ClientStatus] = field(default_factory=list)
    failures: list[dict[str, str]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class Huisclos:
    """An opened vault with its models. Use as a context manager, or call close().

    Args:
        settings: a :class:`Settings`; if omitted, built from ``overrides``,
            the environment and the vault's ``config.toml``.
        guard: refuse outbound connections beyond loopback and configured
            hosts for the rest of this process (default on).

    Raises:
        ConfigError, VaultKeyError, StoreError: the vault cannot be opened.
    """

    def __init__(self, settings: Settings | None = None, *, guard: bool = True, **overrides: Any):
        self.settings = settings or load_settings(**overrides)
        if guard:
            install_network_guard(self.settings.network_hosts())
        self.vault = Vault(self.settings)
        self._ingestor: Ingestor | None = None
        self._searcher: Searcher | None = None

    def __enter__(self) -> Huisclos:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        if self._ingestor is not None:
            self._ingestor.close()
        self.vault.close()

    def index(self, *roots: str | Path, progress: Progress | None = None) -> IndexReport:
        """Index the client folders under each root, incrementally.

        Returns:
            What changed: files added/updated/moved/removed/unchanged/failed,
            chunks written, seconds.

        Raises:
            ConfigError: a root is not a directory.
        """
        if self._ingestor is None:
            self._ingestor = Ingestor(self.vault)
        return self._ingestor.index([Path(root) for root in roots], progress)

    def search(self, query: str, *, client: str | None = None, top_k: int = 5) -> list[SearchHit]:
        """Passages closest to ``query``, best first, optionally of one client."""
        if self._searcher is None:
            self._searcher = Searcher(self.vault)
        return self._searcher.search(query, client=client, top_k=top_k)

    def status(self) -> Status:
        """Counts by client, failures with their reasons."""
        vault = self.vault
        names = vault.client_names()
        clients = [
            ClientStatus(names.get(cid, cid), files, chunks, failed)
            for cid, files, chunks, failed in vault.manifest.counts_by_client()
        ]
        clients.sort(key=lambda c: c.name)
        failures = []
        for row in vault.manifest.failures():
            cipher = vault.keys.cipher(row.client_id, create=False)
            failures.append(
                {"path": cipher.decrypt(row.path_ct, row.file_id), "reason": row.reason or ""}
            )
        failures.sort(key=lambda f: f["path"])
        settings = self.settings
        return Status(
            vault=str(settings.home),
            embedding_model=settings.embedding_model,
            store=(
                f"chroma server {settings.chroma_host}:{settings.chroma_port}"
                if settings.chroma_host
                else "embedded chroma"
            ),
            files=sum(c.files for c in clients),
            chunks=vault.store.count(),
            failed=len(failures),
            clients=clients,
            failures=failures,
        )
