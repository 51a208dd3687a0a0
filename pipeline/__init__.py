"""huisclos's public Python API (the one place stable names are exported).

from huisclos.pipeline import Huisclos

with Huisclos() as hc:                       # vault from $HUISCLOS_HOME
    hc.index("/srv/Clients")
    hits = hc.search("résiliation du bail", client="Dupont SARL")
"""

import huisclos.config  # noqa: F401  (privacy switches before any third-party import)
from huisclos.config import Settings, load_settings
from huisclos.pipeline.api import ClientStatus, Huisclos, Status
from huisclos.pipeline.ingest import IndexReport
from huisclos.pipeline.search import SearchHit

__all__ = [
    "ClientStatus",
    "Huisclos",
    "IndexReport",
    "SearchHit",
    "Settings",
    "Status",
    "load_settings",
]
