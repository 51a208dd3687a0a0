"""huisclos's public Python API (the one place stable names are exported).

from huisclos.pipeline import Huisclos

with Huisclos() as hc:                       # vault from $HUISCLOS_HOME
    hc.index("/srv/Clients")
    hits = hc.search("résiliation du bail", client="Dupont SARL")
    answer = hc.ask("Que dit le contrat sur la résiliation ?", client="Dupont SARL")
    hc.watch("/srv/Clients", stop_event=stop)   # blocks: keeps the folder indexed
    hc.forget(client="Dupont SARL")             # erasure: records, key, traces
    print(render_markdown(hc.register(), "fr")) # the processing register

    app = create_app(hc)                        # the web page and HTTP API (FastAPI)

The rooms of the pipeline, lowest first. A module imports its own room and
lower rooms only; rooms on one line are peers and never import each other
(``tests/test_architecture.py`` checks it). Below them all:
:mod:`huisclos.config` ← :mod:`huisclos.connectors`, :mod:`huisclos.index`,
which never import the pipeline.

1. ``models/``: embedding models, the language models' weights, the generators.
2. ``indexing/``: chunking, the incremental index run, the watcher;
   ``answering/``: search, prompts, cited answers.
3. ``privacy/``: erasure, retention, the audit trail's entries, the register.
4. ``api.py``: :class:`Huisclos`, the facade every entry point goes through.
5. ``repair.py``, ``evaluation/``, ``server/`` (HTTP API and web page): entry points.
6. ``cli/``: the ``huisclos`` command (it starts the server and the evaluations).
7. This package: the public names, re-exported.
"""

from typing import TYPE_CHECKING, Any

import huisclos.config  # noqa: F401  (privacy switches before any third-party import)
from huisclos.config import (
    ConfigError,
    EmbeddingError,
    GeneratorError,
    HuisclosError,
    OfflineViolation,
    ParseError,
    Settings,
    StoreError,
    TamperedError,
    VaultBusyError,
    VaultKeyError,
    load_settings,
)
from huisclos.pipeline.answering.answer import Answer, AnswerStream, Citation
from huisclos.pipeline.answering.search import SearchHit
from huisclos.pipeline.api import ClientStatus, Huisclos, Status
from huisclos.pipeline.indexing.ingest import IndexReport
from huisclos.pipeline.indexing.watcher import WatchState
from huisclos.pipeline.privacy.audit_trail import AuditEntry
from huisclos.pipeline.privacy.erasure import ForgetReport
from huisclos.pipeline.privacy.register import register_schema, render_markdown
from huisclos.pipeline.privacy.retention import RetentionReport

if TYPE_CHECKING:
    from huisclos.pipeline.server import create_app

__all__ = [
    "Answer",
    "AnswerStream",
    "AuditEntry",
    "Citation",
    "ClientStatus",
    "ConfigError",
    "EmbeddingError",
    "ForgetReport",
    "GeneratorError",
    "Huisclos",
    "HuisclosError",
    "IndexReport",
    "OfflineViolation",
    "ParseError",
    "RetentionReport",
    "SearchHit",
    "Settings",
    "Status",
    "StoreError",
    "TamperedError",
    "VaultBusyError",
    "VaultKeyError",
    "WatchState",
    "create_app",
    "load_settings",
    "register_schema",
    "render_markdown",
]


def __getattr__(name: str) -> Any:
    # The HTTP layer (FastAPI) is imported only by those who use it.
    if name == "create_app":
        from huisclos.pipeline.server import create_app

        return create_app
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
