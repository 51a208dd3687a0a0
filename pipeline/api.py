"""The Python API: the verbs the CLI offers, for integrations.

Example::

    from huisclos.pipeline import Huisclos

    with Huisclos(home="/srv/huisclos-vault") as hc:
        report = hc.index("/srv/Clients")
        print(report.added, report.chunks_written)
        for hit in hc.search("montant de la facture", client="Dupont SARL"):
            print(hit.path, hit.page, hit.score)
        answer = hc.ask("Quel est le montant de la facture 2024-117 ?", client="Dupont SARL")
        print(answer.answer, [(c.n, c.path, c.page) for c in answer.citations])
        stream = hc.ask_stream("What does the engagement letter say about fees?")
        for token in stream:
            print(token, end="", flush=True)
        print(stream.result().citations)
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from types import TracebackType
from typing import Any

from huisclos.config import (
    ConfigError,
    Settings,
    TamperedError,
    VaultKeyError,
    install_network_guard,
    load_settings,
)
from huisclos.connectors.changes import EventSource
from huisclos.index.audit_log import AuditReport
from huisclos.index.vault import Vault
from huisclos.pipeline.answering.answer import Answer, Answerer, AnswerStream
from huisclos.pipeline.answering.search import Searcher, SearchHit
from huisclos.pipeline.indexing.ingest import IndexReport, Ingestor, Progress
from huisclos.pipeline.indexing.watcher import Watcher, WatchState, read_state
from huisclos.pipeline.models.generators import LocalChatGenerator
from huisclos.pipeline.privacy.audit_trail import AuditEntry, Auditor
from huisclos.pipeline.privacy.erasure import ForgetReport, Forgetter
from huisclos.pipeline.privacy.register import build_register
from huisclos.pipeline.privacy.retention import Retention, RetentionReport, retention_configured

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
    generator: str
    """Answering backend and model, e.g. ``llamacpp qwen2.5-coder-1.5b``."""
    files: int
    chunks: int
    failed: int
    embedding_model_en: str | None = None
    """Second model for English passages and questions, if any."""
    retrieval: str = "hybrid"
    clients: list[ClientStatus] = field(default_factory=list)
    failures: list[dict[str, str]] = field(default_factory=list)
    watcher: WatchState | None = None
    """The last state of ``huisclos watch`` on this vault (None: never run)."""
    last_update: float | None = None
    """When a file was last indexed, failed or re-checked (Unix time; None: never)."""

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
        self._answerer: Answerer | None = None
        self._auditor: Auditor | None = None

    def __enter__(self) -> Huisclos:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        if self._answerer is not None:
            self._answerer.generator.close()
        if self._ingestor is not None:
            self._ingestor.close()
        if self._searcher is not None:
            self._searcher.close()
        self.vault.close()

    def index(self, *roots: str | Path, progress: Progress | None = None) -> IndexReport:
        """Index the client folders under each root, incrementally.

        Returns:
            What changed: files added/updated/moved/removed/unchanged/failed,
            chunks written, seconds.

        Raises:
            ConfigError: a root is not a directory.
        """
        Forgetter(self.vault).finish_pending()
        return self._ingest.index([Path(root) for root in roots], progress)

    @property
    def _ingest(self) -> Ingestor:
        if self._ingestor is None:
            self._ingestor = Ingestor(self.vault)
        return self._ingestor

    def watch(
        self,
        *roots: str | Path,
        stop_event: threading.Event | None = None,
        source: EventSource | None = None,
        on_batch: Callable[[IndexReport], None] | None = None,
    ) -> None:
        """Keep the roots indexed until ``stop_event`` is set (blocks; see ``huisclos watch``).

        Catches up first (the same reconcile as :meth:`index`, plus changes an
        interrupted run had accepted), then indexes changes as they happen.

        Raises:
            StoreError: another process is writing to the vault.
        """
        Forgetter(self.vault).finish_pending()
        watcher = Watcher(
            self.vault,
            self._ingest,
            [Path(root) for root in roots],
            stop_event=stop_event,
            source=source,
            on_batch=on_batch,
            retention=self.apply_retention if retention_configured(self.settings) else None,
        )
        watcher.run()

    def apply_retention(self, *, dry_run: bool = False) -> RetentionReport:
        """Erase what the retention settings call for (each erasure audited).

        ``dry_run``: only say what would be erased.
        """
        return Retention(self.vault).apply(dry_run=dry_run)

    def search(self, query: str, *, client: str | None = None, top_k: int = 5) -> list[SearchHit]:
        """Passages closest to ``query``, best first, optionally of one client (audited)."""
        hits = self._search().search(query, client=client, top_k=top_k)
        self.auditor.question(
            "search",
            query,
            scope=client,
            shown=[(hit.client_id, hit.file_id, hit.chunk_id) for hit in hits],
            details={"hits": len(hits)},
        )
        return hits

    @property
    def auditor(self) -> Auditor:
        """The audit trail: records, verification, questions for those entitled to read them."""
        if self._auditor is None:
            self._auditor = Auditor(self.vault)
        return self._auditor

    def audit(
        self,
        *,
        client: str | None = None,
        since: datetime | None = None,
        actions: Sequence[str] | None = None,
        questions: bool = False,
    ) -> list[AuditEntry]:
        """Audit records, oldest first, optionally of one client, since a date, of some actions.

        ``questions``: decrypt the questions where the keys allow (recorded as ``audit.show``).
        """
        return self.auditor.entries(
            client=client, since=since, actions=actions, questions=questions
        )

    def register(self) -> dict[str, Any]:
        """The processing register (GDPR art. 30 style) as a dict; see ``register.schema.json``.

        Render it with :func:`huisclos.pipeline.privacy.register.render_markdown`.
        """
        register = build_register(self.vault)
        self.auditor.record("register", details={"clients": register["totals"]["clients"]})
        return register

    def verify_audit(self) -> AuditReport:
        """Check the audit trail's hash chain: edited, removed, reordered or truncated records."""
        return self.vault.audit.verify()

    def _search(self) -> Searcher:
        if self._searcher is None:
            self._searcher = Searcher(self.vault)
        return self._searcher

    @property
    def answerer(self) -> Answerer:
        """The question-answering pipeline (built on first use; models load lazily)."""
        if self._answerer is None:
            generator = LocalChatGenerator.from_settings(self.settings)
            self._answerer = Answerer(self.vault, self._search(), generator)
            self._answerer.on_answer = self._audit_answer
        return self._answerer

    def warm_up(self) -> None:
        """Load the embedding and language models now rather than on the first question.

        Raises:
            GeneratorError: the model is missing, corrupt, or Ollama is unreachable.
        """
        self.answerer.warm_up()

    def ask(self, question: str, *, client: str | None = None) -> Answer:
        """Answer ``question`` from the indexed documents, with the sources it cites.

        Args:
            question: in French or English; the answer comes in the same language.
            client: only this client's documents are retrieved and can be cited.

        Returns:
            The answer, its citations (``[n]`` in the text), backend and model.
            When no document holds the answer, ``not_found`` is true and the
            answer says so, with no citation.

        Raises:
            ConfigError: empty question or unknown client.
            GeneratorError: the model is missing, or its server unreachable.
        """
        return self.answerer.ask(question, client=client)

    def _audit_answer(
        self,
        question: str,
        client: str | None,
        answer: Answer | None,
        error: BaseException | None,
    ) -> None:
        generator = self.answerer.generator
        details: dict[str, Any]
        if answer is None:
            details = {"outcome": "error", "error": type(error).__name__}
        else:
            details = {
                "outcome": "not_found" if answer.not_found else "answered",
                "passages": answer.passages,
                "citations": len(answer.citations),
            }
        self.auditor.question(
            "ask",
            question,
            scope=client,
            shown=answer.shown if answer is not None else (),
            backend=generator.backend,
            model=generator.model_name,
            details=details,
        )

    def ask_stream(self, question: str, *, client: str | None = None) -> AnswerStream:
        """Like :meth:`ask`, as an iterator of text pieces; then ``.result()``."""
        return self.answerer.stream(question, client=client)

    def forget(self, *, client: str | None = None, path: str | Path | None = None) -> ForgetReport:
        """Erase a client (and destroy its key), or the files at or under a path.

        What was forgotten is not indexed again while it stays on disk, until
        :meth:`include`. Forgetting a client rotates the master key, so that
        copies of the vault taken before cannot be read with the keys in use.

        Raises:
            ConfigError: neither or both given, or nothing indexed under that name.
            StoreError: another process kept the vault busy.
        """
        if (client is None) == (path is None):
            raise ConfigError("forget needs either a client or a path")
        forgetter = Forgetter(self.vault)
        if client is not None:
            return forgetter.forget_client(client)
        assert path is not None
        return forgetter.forget_path(path)

    def include(self, *, client: str | None = None, path: str | Path | None = None) -> bool:
        """Let a forgotten client or path be indexed again; returns whether it was excluded."""
        included = Forgetter(self.vault).include(client=client, path=path)
        clients = [self.vault.find_client(client)[1]] if client is not None else []
        self.auditor.record(
            "include",
            clients=clients,
            details={
                "target": "client" if client is not None else "path",
                "was_excluded": included,
            },
        )
        return included

    def rotate_master_key(self, new_passphrase: str | None = None) -> str:
        """Replace the master key (every key re-wrapped, no record re-encrypted).

        Returns where the new key is kept: "file", "keyring", or "passphrase".

        Raises:
            VaultKeyError: the vault uses a passphrase and no new one was given.
        """
        return self.vault.rotate_master_key(new_passphrase)

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
            embedding_model_en=settings.embedding_model_en,
            retrieval=settings.retrieval,
            generator=(
                f"ollama {settings.ollama_model} at {settings.ollama_url}"
                if settings.generator == "ollama"
                else f"llamacpp {settings.llm_model}"
            ),
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
            watcher=read_state(settings.home),
            last_update=vault.manifest.last_update(),
        )

    def files(self) -> list[dict[str, Any]]:
        """Every file the vault knows, with its outcome: ``path`` (relative to its root),
        ``client``, ``kind``, ``state`` ("indexed" or "failed"), ``reason`` (why it failed)
        and ``chunks``; sorted by path."""
        vault = self.vault
        names = vault.client_names()
        found: list[dict[str, Any]] = []
        for row in vault.manifest.all_files():
            cipher = vault.keys.cipher(row.client_id, create=False)
            found.append(
                {
                    "path": cipher.decrypt(row.path_ct, row.file_id),
                    "client": names.get(row.client_id, row.client_id),
                    "kind": row.kind,
                    "state": row.state,
                    "reason": row.reason,
                    "chunks": row.chunks,
                }
            )
        found.sort(key=lambda f: f["path"])
        return found

    def has_client(self, name: str) -> bool:
        """Whether a client of this name (in any Unicode form) has indexed documents."""
        _, client_id = self.vault.find_client(name)
        return client_id in self.vault.manifest.clients()

    def roots(self) -> list[Path]:
        """The folders this vault has indexed (each holds one subfolder per client)."""
        return sorted(self.vault.roots().values())

    def locate(self, file_id: str) -> Path | None:
        """Where an indexed file is on disk: its root joined with its relative path.

        ``file_id`` is the opaque id of a :class:`SearchHit` or a :class:`Citation`.
        Returns None when the file is no longer indexed (or its client was forgotten).
        """
        vault = self.vault
        record = vault.manifest.by_file_ids([file_id]).get(file_id)
        root = vault.roots().get(record.root_id) if record is not None else None
        if record is None or root is None:
            return None
        try:
            cipher = vault.keys.cipher(record.client_id, create=False)
            relative = cipher.decrypt(record.path_ct, record.file_id)
        except (TamperedError, VaultKeyError):
            return None
        return root / relative
