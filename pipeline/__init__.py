"""huisclos's public Python API (the one place stable names are exported).

from huisclos.pipeline import Huisclos

with Huisclos() as hc:                       # vault from $HUISCLOS_HOME
    hc.index("/srv/Clients")
    hits = hc.search("résiliation du bail", client="Dupont SARL")
    answer = hc.ask("Que dit le contrat sur la résiliation ?", client="Dupont SARL")
    hc.watch("/srv/Clients", stop_event=stop)   # blocks: keeps the folder indexed
"""

import huisclos.config  # noqa: F401  (privacy switches before any third-party import)
from huisclos.config import Settings, load_settings
from huisclos.pipeline.answer import Answer, AnswerStream, Citation
from huisclos.pipeline.api import ClientStatus, Huisclos, Status
from huisclos.pipeline.ingest import IndexReport
from huisclos.pipeline.search import SearchHit
from huisclos.pipeline.watch import WatchState

__all__ = [
    "Answer",
    "AnswerStream",
    "Citation",
    "ClientStatus",
    "Huisclos",
    "IndexReport",
    "SearchHit",
    "Settings",
    "Status",
    "WatchState",
    "load_settings",
]
