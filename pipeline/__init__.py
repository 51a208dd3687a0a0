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
"""

from typing import TYPE_CHECKING, Any

import huisclos.config  # noqa: F401  (privacy switches before any third-party import)
from huisclos.config import Settings, load_settings
from huisclos.pipeline.answer import Answer, AnswerStream, Citation
from huisclos.pipeline.api import ClientStatus, Huisclos, Status
from huisclos.pipeline.auditing import AuditEntry
from huisclos.pipeline.forget import ForgetReport
from huisclos.pipeline.ingest import IndexReport
from huisclos.pipeline.register import register_schema, render_markdown
from huisclos.pipeline.retention import RetentionReport
from huisclos.pipeline.search import SearchHit
from huisclos.pipeline.watch import WatchState

if TYPE_CHECKING:
    from huisclos.pipeline.server import create_app

__all__ = [
    "Answer",
    "AnswerStream",
    "AuditEntry",
    "Citation",
    "ClientStatus",
    "ForgetReport",
    "Huisclos",
    "IndexReport",
    "RetentionReport",
    "SearchHit",
    "Settings",
    "Status",
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
