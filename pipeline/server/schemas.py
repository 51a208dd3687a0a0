"""The shapes of the HTTP API (request and response bodies), as pydantic models.

They are the OpenAPI description's schemas (``docs/openapi.json``); the
routes in :mod:`huisclos.pipeline.server` fill them from the Python API's own
results (:class:`SearchHit`, :class:`Answer`, :class:`Status`...).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

__all__ = [
    "AnswerOut",
    "AskRequest",
    "AuditOut",
    "AuditRecordOut",
    "CitationOut",
    "ClientOut",
    "ClientsOut",
    "ErrorBody",
    "ErrorOut",
    "FailureOut",
    "ForgetOut",
    "ForgetRequest",
    "HitOut",
    "SearchOut",
    "SearchRequest",
    "StatusOut",
    "WatcherOut",
]

MAX_QUESTION_CHARS = 4000


class ErrorBody(BaseModel):
    message: str = Field(description="What went wrong and what to do; never document text.")
    type: str = Field(description="Error family, e.g. invalid_request_error, authentication_error.")
    code: str = Field(description="Machine-readable reason, e.g. unknown_client, vault_busy.")


class ErrorOut(BaseModel):
    """Every error, with its HTTP status (the shape OpenAI clients read, too)."""

    error: ErrorBody


class AskRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    question: str = Field(min_length=1, max_length=MAX_QUESTION_CHARS, description="FR or EN.")
    client: str | None = Field(None, description="Only this client's documents (its folder name).")


class SearchRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    query: str = Field(min_length=1, max_length=MAX_QUESTION_CHARS)
    client: str | None = Field(None, description="Only this client's documents.")
    top_k: int = Field(5, ge=1, le=50, description="How many passages, best first.")


class ForgetRequest(BaseModel):
    """Exactly one of ``client`` and ``path``."""

    model_config = ConfigDict(extra="forbid")

    client: str | None = Field(None, description="Erase this client and destroy its key.")
    path: str | None = Field(None, description="Erase the files at or under this path.")

    @model_validator(mode="after")
    def _one_target(self) -> ForgetRequest:
        if (self.client is None) == (self.path is None):
            raise ValueError("give either a client or a path")
        return self


class HitOut(BaseModel):
    path: str = Field(description="Relative to its root, e.g. 'Dupont SARL/factures/f.docx'.")
    client: str
    page: int | None
    score: float = Field(description="Fused retrieval score; 1.0 is first in every list.")
    text: str = Field(description="The passage (decrypted).")
    source: str | None = Field(None, description="For an e-mail attachment: its file name.")
    section: str | None = Field(None, description="Sheet name or slide title.")
    location: str | None = Field(None, description="The file's full path on disk, if known.")
    client_id: str
    file_id: str
    chunk_id: str


class SearchOut(BaseModel):
    hits: list[HitOut]


class CitationOut(BaseModel):
    n: int = Field(description="The marker [n] in the answer.")
    path: str
    client: str
    page: int | None
    snippet: str = Field(description="The passage's sentence that supports the answer.")
    source: str | None = None
    passage: str = Field(description="The whole passage the model was given as [n].")
    score: float | None = None
    location: str | None = Field(None, description="The file's full path on disk, if known.")


class AnswerOut(BaseModel):
    """The last event of ``POST /api/ask`` (``event: answer``)."""

    answer: str = Field(description="The final text, with [n] markers; replaces streamed text.")
    citations: list[CitationOut]
    not_found: bool = Field(description="No document holds the answer; nothing is cited.")
    language: Literal["fr", "en"]
    attributed: bool
    backend: str
    model: str
    seconds: float
    first_token_seconds: float | None
    passages: int


class ClientOut(BaseModel):
    name: str
    files: int
    chunks: int
    failed: int


class ClientsOut(BaseModel):
    clients: list[ClientOut]


class FailureOut(BaseModel):
    path: str
    reason: str


class WatcherOut(BaseModel):
    state: str = Field(description="starting, catching up, running, waiting for a root, stopped")
    modes: list[str]
    queue: int
    indexed: int
    failed: int
    last_error: str | None
    last_error_at: float | None
    last_indexed_at: float | None
    started_at: float
    updated_at: float


class StatusOut(BaseModel):
    vault: str
    store: str
    generator: str
    embedding_model: str
    embedding_model_en: str | None
    retrieval: str
    files: int = Field(description="Documents indexed (failed ones included).")
    chunks: int
    failed: int
    last_update: float | None = Field(description="When a file was last indexed (Unix time).")
    clients: list[ClientOut]
    failures: list[FailureOut] = Field(description="Files that could not be read, and why.")
    watcher: WatcherOut | None


class ForgetOut(BaseModel):
    target: Literal["client", "path"]
    files: int
    chunks: int
    key_destroyed: bool
    master_key: str
    still_on_disk: list[str] = Field(description="Excluded from indexing until included again.")
    chunks_kept: int
    client_ids: list[str]
    file_ids: list[str]


class AuditRecordOut(BaseModel):
    seq: int
    time: str
    user: str
    action: str
    clients: list[str]
    client_ids: list[str]
    files: list[str]
    chunks: list[str]
    backend: str | None
    model: str | None
    local: bool
    details: dict[str, Any]
    question_kept: bool = Field(description="The question is kept, encrypted (never sent here).")


class AuditOut(BaseModel):
    entries: list[AuditRecordOut] = Field(description="The last `limit` matching, oldest first.")
    total: int = Field(description="How many records matched.")
