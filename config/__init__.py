"""Settings, the error tree, and the privacy switches.

Importing this package turns every third-party library's telemetry and hub
access off, so it must be imported before them (``huisclos.pipeline``,
``huisclos.index`` and ``huisclos.connectors`` all do).
"""

import os

from huisclos.config.privacy import apply_privacy_switches

apply_privacy_switches()
# A question is embedded by two models in turn (USE on numpy, MiniLM on torch): idle
# OpenMP threads of one that spin-wait for work starve the other on a small machine.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")  # no "Loading weights" bars on stderr

from huisclos.config.errors import (  # noqa: E402
    ConfigError,
    EmbeddingError,
    GeneratorError,
    HuisclosError,
    OfflineViolation,
    ParseError,
    StoreError,
    TamperedError,
    VaultBusyError,
    VaultKeyError,
)
from huisclos.config.privacy import allow_hosts, install_network_guard  # noqa: E402
from huisclos.config.settings import (  # noqa: E402
    Settings,
    default_cache_dir,
    default_home,
    load_settings,
)

__all__ = [
    "ConfigError",
    "EmbeddingError",
    "GeneratorError",
    "HuisclosError",
    "OfflineViolation",
    "ParseError",
    "Settings",
    "StoreError",
    "TamperedError",
    "VaultBusyError",
    "VaultKeyError",
    "allow_hosts",
    "apply_privacy_switches",
    "default_cache_dir",
    "default_home",
    "install_network_guard",
    "load_settings",
]
