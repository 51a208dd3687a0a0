"""What the routes of :mod:`huisclos.pipeline.server` share: the vault, errors, answers, streams.

Routes reach the opened vault through the :data:`Vault` dependency, which
reads ``app.state.huisclos`` (set by :func:`~huisclos.pipeline.server.app.create_app`;
None only when the app is built for its OpenAPI description). Every error is
answered as ``{"error": {"message", "type", "code"}}`` with its status
(:class:`ApiError`, :data:`EXCEPTION_HANDLERS`).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncGenerator, Callable, Coroutine
from typing import TYPE_CHECKING, Annotated, Any

import anyio
from fastapi import Depends, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from huisclos.config import (
    ConfigError,
    EmbeddingError,
    GeneratorError,
    HuisclosError,
    StoreError,
    VaultBusyError,
)
from huisclos.pipeline.api import Huisclos
from huisclos.pipeline.server.schemas import AnswerOut, CitationOut, ErrorOut

if TYPE_CHECKING:
    from huisclos.pipeline.answering.answer import Answer, AnswerStream

__all__ = [
    "EXCEPTION_HANDLERS",
    "STREAM_HEADERS",
    "ApiError",
    "Vault",
    "answer_out",
    "api_error",
    "check_client",
    "error_responses",
    "location",
    "opened_vault",
    "printable",
    "stream_answer",
]

log = logging.getLogger(__name__)

STREAM_HEADERS = {"cache-control": "no-cache", "x-accel-buffering": "no"}
"""Headers of a server-sent event stream (no proxy may buffer it)."""

_Handler = Callable[[Request, Any], Coroutine[Any, Any, Response]]


class ApiError(Exception):
    """An error answered with ``status`` and ``{"error": {"message", "type", "code"}}``."""

    def __init__(
        self, status: int, code: str, message: str, kind: str = "invalid_request_error"
    ) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.kind = status, code, message, kind

    def body(self) -> dict[str, Any]:
        return {"error": {"message": self.message, "type": self.kind, "code": self.code}}

    def response(self, headers: dict[str, str] | None = None) -> JSONResponse:
        return JSONResponse(self.body(), status_code=self.status, headers=headers)


def api_error(exc: BaseException) -> ApiError:
    """The HTTP form of a huisclos error (what status, what code)."""
    if isinstance(exc, ApiError):
        return exc
    message = str(exc)
    if isinstance(exc, VaultBusyError):
        return ApiError(409, "vault_busy", message, "conflict_error")
    if isinstance(exc, ConfigError):
        return ApiError(422, "invalid_request", message)
    if isinstance(exc, GeneratorError):
        return ApiError(503, "model_unavailable", message, "server_error")
    if isinstance(exc, StoreError | EmbeddingError):
        return ApiError(503, "store_unavailable", message, "server_error")
    if isinstance(exc, HuisclosError):
        return ApiError(500, "internal_error", message, "server_error")
    return ApiError(500, "internal_error", "internal error; see the server's log", "server_error")


def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """The OpenAPI ``responses`` entries of a route's errors (each an :class:`ErrorOut`)."""
    return {status: {"model": ErrorOut} for status in statuses}


async def _on_api_error(request: Request, exc: ApiError) -> Response:
    return exc.response()


async def _on_huisclos_error(request: Request, exc: HuisclosError) -> Response:
    log.warning("request failed: %s", type(exc).__name__)
    return api_error(exc).response()


async def _on_invalid(request: Request, exc: RequestValidationError) -> Response:
    problems = "; ".join(
        ".".join(str(part) for part in error.get("loc", ()) if part != "body")
        + f": {error.get('msg', 'invalid')}"
        for error in exc.errors()
    )
    return ApiError(422, "invalid_request", problems or "invalid request").response()


async def _on_http_error(request: Request, exc: StarletteHTTPException) -> Response:
    code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
    return ApiError(exc.status_code, code, str(exc.detail)).response()


EXCEPTION_HANDLERS: dict[int | type[Exception], _Handler] = {
    ApiError: _on_api_error,
    HuisclosError: _on_huisclos_error,
    RequestValidationError: _on_invalid,
    StarletteHTTPException: _on_http_error,
}
"""FastAPI's ``exception_handlers``: every error in the one JSON shape."""


async def opened_vault(request: Request) -> Huisclos:
    """The vault the app serves (a FastAPI dependency: use :data:`Vault`).

    Raises:
        ApiError: 503, the app was built without a vault (for its OpenAPI description only).
    """
    hc: Huisclos | None = request.app.state.huisclos
    if hc is None:
        raise ApiError(503, "no_vault", "no vault is open", "server_error")
    return hc


Vault = Annotated[Huisclos, Depends(opened_vault)]
"""A route's parameter ``hc: Vault`` receives the opened vault."""


def printable(value: Any) -> Any:
    """``value`` with every string made valid UTF-8 for a JSON answer: a file name that is
    not UTF-8 (surrogate escapes from the file system) shows its odd bytes as ``\\xe9``."""
    if isinstance(value, str):
        try:
            value.encode()
        except UnicodeEncodeError:
            return value.encode(errors="surrogateescape").decode(errors="backslashreplace")
        return value
    if isinstance(value, dict):
        return {key: printable(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [printable(item) for item in value]
    return value


def location(hc: Huisclos, file_id: str) -> str | None:
    found = hc.locate(file_id) if file_id else None
    return printable(str(found)) if found is not None else None


def answer_out(hc: Huisclos, answer: Answer) -> AnswerOut:
    """The ``answer`` event: the final text and each cited source with its passage."""
    citations = [
        CitationOut.model_validate(
            printable({**citation.to_dict(), "location": location(hc, citation.file_id)})
        )
        for citation in answer.citations
    ]
    return AnswerOut(
        answer=answer.answer,
        citations=citations,
        not_found=answer.not_found,
        language="en" if answer.language == "en" else "fr",
        attributed=answer.attributed,
        backend=answer.backend,
        model=answer.model,
        seconds=answer.seconds,
        first_token_seconds=answer.first_token_seconds,
        passages=answer.passages,
    )


def check_client(hc: Huisclos, client: str | None) -> None:
    """Raises ApiError 404 when ``client`` names no indexed client."""
    if client is not None and not hc.has_client(client):
        raise ApiError(
            404, "unknown_client", f"no indexed client is named {client!r}; see /api/clients"
        )


async def stream_answer(
    hc: Huisclos, question: str, client: str | None
) -> tuple[AnswerStream, AsyncGenerator[str | None]]:
    """Start answering (errors before the first token raise); then pieces, None at the end."""
    check_client(hc, client)
    stream = await anyio.to_thread.run_sync(lambda: hc.ask_stream(question, client=client))

    async def pieces() -> AsyncGenerator[str | None]:
        try:
            while True:
                piece = await anyio.to_thread.run_sync(next, stream, None)
                yield piece
                if piece is None:
                    return
        finally:
            stream.close()  # the reader left: stop generating

    return stream, pieces()
