"""The huisclos error tree.

Every error huisclos raises on purpose derives from :class:`HuisclosError`,
so an integration can catch one type. Third-party errors (chromadb,
cryptography, unstructured, ...) are translated at the adapter that calls the
library, with ``raise ... from exc``::

    HuisclosError
    ├── ConfigError          bad or inconsistent settings
    ├── VaultKeyError            master key missing, wrong, or unusable
    ├── StoreError           the vector store or the manifest cannot be used
    │   ├── TamperedError    a record failed authentication
    │   └── VaultBusyError   another process holds the vault's writer or watcher lock
    ├── ParseError           one document could not be turned into text
    ├── EmbeddingError       the embedding model could not be loaded or run
    ├── GeneratorError       the language model is missing, unreachable or failed
    └── OfflineViolation     an outbound connection was refused by the guard

Messages say what to do, and never contain document text or key material.
"""

from __future__ import annotations

__all__ = [
    "ConfigError",
    "EmbeddingError",
    "GeneratorError",
    "HuisclosError",
    "OfflineViolation",
    "ParseError",
    "StoreError",
    "TamperedError",
    "VaultBusyError",
    "VaultKeyError",
]


class HuisclosError(Exception):
    """Base class of every error raised by huisclos."""


class ConfigError(HuisclosError):
    """The settings are invalid or inconsistent."""


class VaultKeyError(HuisclosError):
    """The master key is missing, wrong for this vault, or cannot be obtained."""


class StoreError(HuisclosError):
    """The vector store or the manifest cannot be read or written."""


class TamperedError(StoreError):
    """An encrypted record failed authentication: it was altered or swapped."""


class VaultBusyError(StoreError):
    """Another huisclos process holds the vault's writer (or watcher) lock."""


class ParseError(HuisclosError):
    """A document could not be converted to text.

    ``reason`` is a short, fixed, human-readable phrase (for ``status``); it
    never includes document text.
    """

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class EmbeddingError(HuisclosError):
    """The embedding model could not be loaded or run."""


class GeneratorError(HuisclosError):
    """The language model could not be loaded, reached, or run.

    The message names the backend, the model and (for Ollama) the URL.
    """


class OfflineViolation(HuisclosError, PermissionError):
    """An outbound network connection outside the allowed hosts was attempted."""
