"""The one typed settings object.

Sources, strongest first: arguments given to :func:`load_settings`, then
environment variables prefixed ``HUISCLOS_``, then ``config.toml`` in the
vault, then the defaults below. Every field is listed, with its environment
variable, in ``docs/configuration.md`` (generated from this class by
``docs/generate.py``): a field's ``description`` is its documentation.

The environment: every setting is read here, and only here. A few other
variables are read or set elsewhere, and are not settings:

- read here for defaults: ``HUISCLOS_HOME``, ``XDG_DATA_HOME`` (the vault),
  ``XDG_CACHE_HOME`` (:func:`default_cache_dir`);
- ``HUISCLOS_NEW_PASSPHRASE``: read once by ``huisclos keys rotate`` on a
  passphrase vault (the CLI, :mod:`huisclos.pipeline.cli`), so that the new
  passphrase need not be typed;
- ``HUISCLOS_CRASH_AFTER``: a test hook of the fault-injection suite
  (:mod:`huisclos.index.faults`), unset in use;
- set, never read: :mod:`huisclos.config` and :mod:`huisclos.config.privacy` set
  the third-party libraries' switches (telemetry off, model hubs offline, passive
  OpenMP waits) at import; a conversion worker sets its ``TMPDIR`` to the
  vault's private ``tmp/`` (:mod:`huisclos.connectors.worker_pool`).

Example::

    settings = load_settings(home="/srv/huisclos")
    settings.embedding_model   # "usem3"
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from huisclos.config.errors import ConfigError

__all__ = ["Settings", "default_cache_dir", "default_home", "load_settings"]

CONFIG_FILE = "config.toml"


def default_home() -> Path:
    """The vault used when ``HUISCLOS_HOME`` is not set."""
    env = os.environ.get("HUISCLOS_HOME")
    if env:
        return Path(env).expanduser()
    data = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(data) / "huisclos"


def default_cache_dir() -> Path:
    """Where huisclos keeps files it can rebuild (e.g. ONNX exports of packaged models):
    ``$XDG_CACHE_HOME/huisclos``, by default ``~/.cache/huisclos``. Nothing in it is
    client data."""
    cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(cache).expanduser() / "huisclos"


class Settings(BaseSettings):
    """Everything huisclos can be told. Frozen: build once, pass down."""

    model_config = SettingsConfigDict(
        env_prefix="HUISCLOS_",
        frozen=True,
        extra="forbid",
        env_nested_delimiter="__",
    )

    home: Path = Field(
        default_factory=default_home,
        description="The vault: the store, the manifest, the keys, the audit trail and "
        "config.toml. Default: $XDG_DATA_HOME/huisclos, that is ~/.local/share/huisclos.",
    )

    # Embedding and chunking
    embedding_model: str = Field(
        "usem3",
        description='"usem3" (multilingual Universal Sentence Encoder v3, packaged; the '
        'default), "minilm" (English all-MiniLM-L6-v2, packaged), or the path of any local '
        "sentence-transformers model directory. Every passage is embedded by it.",
    )
    embedding_model_en: str | None = Field(
        "minilm-int8",
        description="A second model for English passages and questions: packaged "
        'all-MiniLM-L6-v2 ("minilm-int8", the default: on ONNX Runtime, int8, 4x faster than '
        '"minilm" through torch with the same SciFact scores; "minilm-onnx": fp32, 2x), or a '
        "local sentence-transformers "
        'directory; English chunks are embedded by both. "" or none: only embedding_model '
        "(English passages are then embedded once, faster, and English search is weaker). "
        "Changing it re-embeds the English chunks at the next index run; the old vectors "
        "are never mixed with the new ones.",
    )
    embedding_threads: int = Field(
        0, ge=0, description="Threads of the embedding models; 0: one per CPU core."
    )
    chunk_tokens: int = Field(
        200,
        ge=32,
        le=2048,
        description="Target chunk size, in tokens of the embedding model (capped by the "
        "model's window).",
    )
    chunk_overlap_tokens: int = Field(
        24, ge=0, le=256, description="Tokens a chunk shares with the one before it."
    )
    embed_batch_size: int = Field(
        64,
        ge=1,
        le=4096,
        description="Not read by the code at present (the embedders size their own "
        "batches); accepted, so that a config.toml that sets it stays valid.",
    )

    # Conversion
    ocr_languages: str = Field(
        "fra+eng", description="tesseract languages for scanned pages and images."
    )
    max_file_mb: float = Field(
        200.0,
        gt=0,
        description="Larger files are recorded as failed (too large). Also the most a zip "
        "archive may expand to, nested archives included.",
    )
    file_timeout_seconds: float = Field(
        600.0,
        gt=0,
        description="A file whose conversion takes longer is failed (timed out); a worker "
        "stuck where its alarm cannot reach is killed 30 s later.",
    )
    file_memory_mb: float = Field(
        6144.0,
        gt=0,
        description=(
            "Memory a conversion process may hold (with the LibreOffice and tesseract it "
            "starts) before it is killed and its file failed as too large. OCR of a large "
            "scanned page takes about 3.5 GB."
        ),
    )
    convert_workers: int | None = Field(
        None,
        ge=0,
        description=(
            "Conversion processes; 0: convert in the main process; none: half the CPU cores, "
            "at least one (the embedder uses the cores too: on 2 cores, a second converter "
            "made text corpora slower)."
        ),
    )
    ignore_patterns: tuple[str, ...] = Field(
        ("~$*", ".~lock.*", "*.tmp", "*.temp", "*.swp", "*~", ".*"),
        description="Names never indexed, of files and folders alike (Office lock files, "
        "temporary and hidden files).",
    )

    # Retrieval
    retrieval: Literal["hybrid", "dense", "sparse"] = Field(
        "hybrid",
        description='"hybrid": keyword (BM25) and embedding search, fused (default); '
        '"dense": embeddings only; "sparse": keywords only.',
    )
    retrieval_candidates: int = Field(
        50,
        ge=1,
        le=1000,
        description="Passages each list (keywords, embeddings) brings to the fusion.",
    )
    fusion: Literal["weighted", "rrf"] = Field(
        "weighted",
        description='"weighted": sum of each list\'s scores divided by its best, weighted '
        '(default); "rrf": reciprocal rank fusion.',
    )
    rrf_k: float = Field(60.0, gt=0, description='Reciprocal rank fusion constant (fusion "rrf").')
    sparse_weight: float = Field(0.7, ge=0, description="Weight of the keyword list in fusion.")
    dense_weight: float = Field(0.3, ge=0, description="Weight of the embedding list in fusion.")
    bm25_k1: float = Field(0.9, ge=0, le=10, description="BM25 term saturation.")
    bm25_b: float = Field(0.4, ge=0, le=1, description="BM25 length normalisation.")

    # Store
    chroma_host: str | None = Field(
        None,
        description="A Chroma server to hold the vectors instead of the embedded store; "
        "the network guard lets it through.",
    )
    chroma_port: int = Field(8000, description="The Chroma server's port.")
    collection: str | None = Field(
        None,
        description=(
            "Chroma collection of this vault. Default: 'huisclos' in the embedded store; on a "
            "Chroma server, a name derived from the vault's key, so that the vaults of several "
            "watchers share one server without meeting."
        ),
    )
    write_batch_size: int = Field(
        512, ge=1, le=5000, description="Chunks per request to the vector store."
    )
    writer_wait_seconds: float = Field(
        120.0,
        ge=0,
        description=(
            "Seconds an index run waits for another process writing to the vault (a "
            "watcher's batch, an erasure, another index run) before giving up with a message "
            "(exit 1)."
        ),
    )
    batch_files: int = Field(
        256,
        ge=1,
        le=4096,
        description=(
            "Files embedded and committed together (fewer when their text is long): each "
            "commit costs a few fsyncs, which dominate for small files, while more files "
            "wait to become searchable in a burst."
        ),
    )

    # Keys
    key_source: Literal["auto", "keyring", "file", "passphrase"] = Field(
        "auto",
        description='Where the master key comes from. "auto": the source recorded when the '
        "vault was created; for a new vault, the passphrase if one is set, else the OS "
        "keyring if one is usable, else a key file.",
    )
    key_file: Path | None = Field(
        None,
        description="The key file of the file source (mode 0600). Default: master.key in "
        "the vault; keep it out of the vault's backups.",
    )
    passphrase: SecretStr | None = Field(
        None, description="The passphrase the master key is derived from (scrypt)."
    )

    # Answering
    generator: Literal["llamacpp", "ollama"] = Field(
        "llamacpp",
        description='"llamacpp": the embedded model, no server (default); '
        '"ollama": an Ollama server at ollama_url.',
    )
    llm_model: str = Field(
        "qwen2.5-coder-1.5b",
        description="Embedded model: a packaged name (see `huisclos models list`) or a .gguf path.",
    )
    models_dir: Path | None = Field(
        None,
        description="Where packaged models are assembled and verified "
        "(default: <venv>/share/huisclos/models).",
    )
    llm_threads: int = Field(
        0, ge=0, description="Threads of the embedded model (llama.cpp); 0: one per CPU core."
    )
    llm_context_tokens: int = Field(
        4096, ge=512, le=131072, description="Context window of the embedded model (llama.cpp)."
    )
    answer_passages: int = Field(
        3, ge=1, le=20, description="Passages retrieved and given to the model per question."
    )
    max_answer_tokens: int = Field(
        320, ge=16, le=8192, description="The longest answer, in tokens."
    )
    default_language: Literal["fr", "en"] = Field(
        "fr", description="Language assumed when a question's language cannot be told."
    )
    ollama_url: str = Field(
        "http://127.0.0.1:11434",
        description='The Ollama server (generator "ollama"); the network guard lets its '
        "host through.",
    )
    ollama_model: str = Field("qwen2.5:7b-instruct", description="The model on the Ollama server.")
    ollama_timeout_seconds: float = Field(
        120.0, gt=0, description="How long to wait for the Ollama server."
    )

    # Watching
    watch_mode: Literal["auto", "inotify", "polling"] = Field(
        "auto",
        description='"auto": inotify, or polling on network filesystems (NFS, SMB/CIFS, ...) '
        "and when inotify is unavailable; or force one.",
    )
    watch_quiet_ms: int = Field(300, ge=10, le=60_000, description="Quiet period before a batch.")
    watch_max_delay_ms: int = Field(
        3000, ge=50, le=600_000, description="Upper bound on the delay of a batch under activity."
    )
    watch_poll_seconds: float = Field(1.0, gt=0, le=600, description="Polling interval.")
    watch_settle_seconds: float = Field(
        2.0,
        gt=0,
        le=3600,
        description="A file left open (inotify), or any file (polling), is taken after "
        "this long unchanged.",
    )
    watch_rescan_minutes: float = Field(
        60.0,
        ge=0,
        description="Full reconcile every so often, to catch missed events (0: never); "
        "the retention rules are applied then too.",
    )

    # Privacy
    audit_questions: bool = Field(
        True,
        description="Keep each question in the audit trail, encrypted under the keys of the "
        "clients it concerned (erasing a client makes them unreadable); false: never kept.",
    )
    mask_personal_data: bool = Field(
        False,
        description="Replace e-mail addresses, phone numbers, IBANs, NIR, SIRET/SIREN and card "
        "numbers by placeholders in the passages given to the model and in citations.",
    )
    personal_data_names: bool = Field(
        False,
        description="Also count person names (spaCy fr_core_news_sm) at indexing; slower.",
    )
    retention_deleted_days: float | None = Field(
        None,
        ge=0,
        description="Forget files whose source was deleted, this many days after the last "
        "full scan of their folder (a folder no longer indexed; an indexed one drops deleted "
        "files at once). A folder that is not there at all (an unmounted share) is left alone.",
    )
    retention_inactive_years: float | None = Field(
        None,
        gt=0,
        description="Forget clients none of whose files changed, and that huisclos has known, "
        "for this many years (key destroyed, folder kept out of indexing); the shared client "
        "_shared only with an explicit per-client rule.",
    )
    retention_by_client: dict[str, dict[str, float]] = Field(
        default_factory=dict,
        description='Per-client overrides, e.g. {"Dupont SARL": {"inactive_years": 10}}.',
    )
    controller_name: str | None = Field(
        None, description="The firm, printed in the processing register."
    )
    controller_contact: str | None = Field(
        None,
        description="Who answers data-protection requests (name, e-mail), printed in the "
        "processing register.",
    )

    # Network
    allowed_hosts: tuple[str, ...] = Field(
        (),
        description="Hosts the process may connect to besides loopback, chroma_host and the "
        "Ollama host.",
    )

    @field_validator("ollama_url", mode="after")
    @classmethod
    def _http_url(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"ollama_url must look like http://host:11434, not {value!r}")
        return value.rstrip("/")

    @field_validator("embedding_model_en", mode="after")
    @classmethod
    def _no_empty_model(cls, value: str | None) -> str | None:
        return value or None

    @field_validator("retention_by_client", mode="after")
    @classmethod
    def _retention_rules(cls, value: dict[str, dict[str, float]]) -> dict[str, dict[str, float]]:
        for client, rule in value.items():
            unknown = set(rule) - {"deleted_days", "inactive_years"}
            if unknown:
                raise ValueError(
                    f"retention for {client!r}: unknown {sorted(unknown)}; "
                    "use deleted_days and inactive_years"
                )
            if rule.get("deleted_days", 0) < 0 or rule.get("inactive_years", 1) <= 0:
                raise ValueError(
                    f"retention for {client!r}: deleted_days must be 0 or more, "
                    "inactive_years more than 0"
                )
        return value

    @field_validator("home", "key_file", "models_dir", mode="after")
    @classmethod
    def _absolute(cls, value: Path | None) -> Path | None:
        return None if value is None else value.expanduser().resolve()

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        home = _home_from(init_settings, env_settings)
        toml = TomlConfigSettingsSource(settings_cls, toml_file=home / CONFIG_FILE)
        return (init_settings, env_settings, toml)

    @property
    def resolved_key_file(self) -> Path:
        """Where the master key file lives (inside the vault unless configured)."""
        return self.key_file or self.home / "master.key"

    @property
    def resolved_models_dir(self) -> Path:
        """Where packaged language models are assembled and verified."""
        return self.models_dir or Path(sys.prefix) / "share" / "huisclos" / "models"

    @property
    def generation_threads(self) -> int:
        """Threads for the embedded language model."""
        return self.llm_threads or (os.cpu_count() or 1)

    @property
    def conversion_workers(self) -> int:
        """Conversion processes (0: in the main process)."""
        if self.convert_workers is not None:
            return self.convert_workers
        return max(1, (os.cpu_count() or 1) // 2)

    @property
    def threads(self) -> int:
        """Threads for the embedding model."""
        return self.embedding_threads or (os.cpu_count() or 1)

    @property
    def answers_stay_local(self) -> bool:
        """Whether questions and passages stay on this machine (embedded model, or loopback)."""
        return self.generator != "ollama" or _loopback(urlsplit(self.ollama_url).hostname or "")

    @property
    def store_is_local(self) -> bool:
        """Whether the vector store is on this machine (embedded, or a server on loopback)."""
        return not self.chroma_host or _loopback(self.chroma_host)

    def network_hosts(self) -> tuple[str, ...]:
        """Hosts the network guard must allow besides loopback."""
        hosts = list(self.allowed_hosts)
        if self.chroma_host:
            hosts.append(self.chroma_host)
        if self.generator == "ollama":
            hosts.append(urlsplit(self.ollama_url).hostname or "")
        return tuple(host for host in hosts if host)


def _loopback(host: str) -> bool:
    return host in ("localhost", "::1") or host.startswith("127.")


def _home_from(*sources: PydanticBaseSettingsSource) -> Path:
    for source in sources:
        value = source().get("home")
        if value:
            return Path(value).expanduser()
    return default_home()


def load_settings(**overrides: Any) -> Settings:
    """Build the settings from arguments, environment, the vault's config.toml.

    Raises:
        ConfigError: a value is invalid; the message names the field.
    """
    try:
        return Settings(**overrides)
    except ValueError as exc:  # pydantic.ValidationError and TOML errors
        raise ConfigError(f"invalid huisclos settings: {exc}") from exc
