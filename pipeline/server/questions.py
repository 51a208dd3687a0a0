"""Questions over the documents, under ``/api``: a streamed, cited answer, or passages.

Asking answers with server-sent events: a ``token`` event for each piece as
the model writes it, then one ``answer`` event (an :class:`AnswerOut`, whose
``answer`` replaces the streamed text), or an ``error`` event when answering
fails after the status line was sent. An error before the first piece
(unknown client, model unavailable) is an ordinary JSON error with its status.
Searching returns the closest passages, best first, one search at a time.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import AsyncGenerator, AsyncIterator
from typing import TYPE_CHECKING, Annotated, Any

import anyio
from fastapi import APIRouter, Depends, Request
from fastapi.responses import StreamingResponse

from huisclos.pipeline.server.core import (
    STREAM_HEADERS,
    Vault,
    answer_out,
    api_error,
    check_client,
    error_responses,
    location,
    printable,
    stream_answer,
)
from huisclos.pipeline.server.schemas import (
    AnswerOut,
    AskRequest,
    HitOut,
    SearchOut,
    SearchRequest,
)

if TYPE_CHECKING:
    from huisclos.pipeline.answering.answer import AnswerStream
    from huisclos.pipeline.api import Huisclos

__all__ = ["router"]

log = logging.getLogger(__name__)

router = APIRouter(prefix="/api")


def _search_lock(request: Request) -> threading.Lock:
    """The app's lock around searches (``app.state.search_lock``): one at a time."""
    lock: threading.Lock = request.app.state.search_lock
    return lock


SearchLock = Annotated[threading.Lock, Depends(_search_lock)]


def _sse(event: str, data: Any) -> str:
    return f"event: {event}\ndata: {json.dumps(data, ensure_ascii=False)}\n\n"


async def _answer_events(
    hc: Huisclos, stream: AnswerStream, pieces: AsyncGenerator[str | None]
) -> AsyncIterator[str]:
    """``token`` events as the pieces come, then ``answer`` (or ``error``)."""
    try:
        async for piece in pieces:
            if piece is None:
                break
            yield _sse("token", {"text": piece})
        out = await anyio.to_thread.run_sync(lambda: answer_out(hc, stream.result()))
        yield _sse("answer", out.model_dump())
    except Exception as exc:  # noqa: BLE001  (the status line is sent: report in-stream)
        error = api_error(exc)
        log.warning("question failed: %s", type(exc).__name__)
        yield _sse("error", {**error.body(), "status": error.status})
    finally:
        await pieces.aclose()


@router.post(
    "/ask",
    response_class=StreamingResponse,
    responses={
        200: {
            "description": 'Server-sent events: `event: token` with `{"text"}` for each '
            "piece as the model writes it, then `event: answer` with an AnswerOut (its "
            "`answer` replaces the streamed text), or `event: error` with an ErrorOut.",
            "content": {"text/event-stream": {"schema": AnswerOut.model_json_schema()}},
        },
        **error_responses(401, 403, 404, 422),
    },
    summary="Ask a question (streamed answer with citations)",
)
async def ask(body: AskRequest, hc: Vault) -> StreamingResponse:
    stream, pieces = await stream_answer(hc, body.question, body.client)
    return StreamingResponse(
        _answer_events(hc, stream, pieces), media_type="text/event-stream", headers=STREAM_HEADERS
    )


@router.post(
    "/search",
    response_model=SearchOut,
    responses=error_responses(401, 403, 404, 422),
    summary="Passages closest to a query",
)
def search(body: SearchRequest, hc: Vault, lock: SearchLock) -> SearchOut:
    check_client(hc, body.client)
    with lock:
        hits = hc.search(body.query, client=body.client, top_k=body.top_k)
    return SearchOut(
        hits=[
            HitOut.model_validate(
                printable({**hit.to_dict(), "location": location(hc, hit.file_id)})
            )
            for hit in hits
        ]
    )
