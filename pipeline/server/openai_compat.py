"""The OpenAI-compatible part of the HTTP API: huisclos as a "model" for chat front ends.

``GET /v1/models`` lists ``huisclos`` (every client) and ``huisclos:<client>``
(one client's documents only). ``POST /v1/chat/completions`` takes the last
user message as the question (earlier messages and the front end's system
prompt are not used: each question is answered from the documents alone) and
answers with the sources the answer cites appended to the content, plus a
``citations`` list beside ``choices``. ``stream: true`` sends
``chat.completion.chunk`` events and ``data: [DONE]``, as OpenAI does.

Example::

    from openai import OpenAI

    client = OpenAI(base_url="http://127.0.0.1:8765/v1", api_key="TOKEN or anything on loopback")
    reply = client.chat.completions.create(
        model="huisclos", messages=[{"role": "user", "content": "Montant de la facture 2024-117 ?"}]
    )
    print(reply.choices[0].message.content)
"""

from __future__ import annotations

import json
import logging
import secrets
import time
from collections.abc import AsyncGenerator, AsyncIterator
from typing import TYPE_CHECKING, Any, Literal

import anyio
from fastapi import APIRouter
from fastapi.responses import JSONResponse, Response, StreamingResponse
from pydantic import BaseModel, Field

from huisclos.pipeline.server.core import (
    STREAM_HEADERS,
    ApiError,
    Vault,
    answer_out,
    api_error,
    check_client,
    error_responses,
    printable,
    stream_answer,
)
from huisclos.pipeline.server.schemas import CitationOut

if TYPE_CHECKING:
    from huisclos.pipeline.answering.answer import Answer, AnswerStream
    from huisclos.pipeline.api import Huisclos

__all__ = ["MODEL", "ChatRequest", "router", "sources_text"]

log = logging.getLogger(__name__)

MODEL = "huisclos"
"""The model name for every client; ``huisclos:<client>`` for one."""

router = APIRouter(prefix="/v1", tags=["OpenAI-compatible"])
_ERRORS = error_responses(401, 403, 404, 422)


class ContentPart(BaseModel):
    type: str
    text: str | None = None


class ChatMessageIn(BaseModel):
    role: str
    content: str | list[ContentPart] | None = None


class ChatRequest(BaseModel):
    """The fields huisclos reads; others (temperature, max_tokens...) are accepted and ignored."""

    model: str = Field(description="'huisclos', or 'huisclos:<client>' for one client.")
    messages: list[ChatMessageIn] = Field(min_length=1)
    stream: bool = False


class ModelOut(BaseModel):
    id: str
    object: Literal["model"] = "model"
    created: int
    owned_by: str = "huisclos"


class ModelsOut(BaseModel):
    object: Literal["list"] = "list"
    data: list[ModelOut]


class MessageOut(BaseModel):
    role: Literal["assistant"] = "assistant"
    content: str


class ChoiceOut(BaseModel):
    index: int = 0
    message: MessageOut
    finish_reason: Literal["stop"] = "stop"


class ChatCompletionOut(BaseModel):
    id: str
    object: Literal["chat.completion"] = "chat.completion"
    created: int
    model: str
    choices: list[ChoiceOut]
    citations: list[CitationOut] = Field(description="huisclos: the sources the answer cites.")


def sources_text(answer: Answer) -> str:
    """The cited sources, as appended to the answer's content ("" when nothing is cited)."""
    if not answer.citations:
        return ""
    lines = ["", "", "Sources :" if answer.language == "fr" else "Sources:"]
    for citation in answer.citations:
        where = printable(citation.path) + (f" › {citation.source}" if citation.source else "")
        where += f", p. {citation.page}" if citation.page else ""
        lines.append(f"[{citation.n}] {where} ({citation.client}) « {citation.snippet} »")
    return "\n".join(lines)


def _question(request: ChatRequest) -> str:
    for message in reversed(request.messages):
        if message.role != "user":
            continue
        content = message.content
        if isinstance(content, list):
            content = " ".join(part.text or "" for part in content if part.type == "text")
        if content and content.strip():
            return content
        break
    raise ApiError(422, "invalid_request", "the last user message holds no text")


class _Reply:
    """One reply's id, time and model, as every chunk of it repeats them."""

    def __init__(self, model: str) -> None:
        self.ident = "chatcmpl-" + secrets.token_hex(12)
        self.created = int(time.time())
        self.model = model

    def chunk(self, delta: dict[str, Any], finish: str | None = None) -> str:
        """One ``chat.completion.chunk`` event."""
        chunk = {
            "id": self.ident,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
        }
        return f"data: {json.dumps(chunk, ensure_ascii=False)}\n\n"


def _scope(model: str) -> str | None:
    """The client a model name stands for (None: every client).

    Raises:
        ApiError: 404, the name is neither ``huisclos`` nor ``huisclos:<client>``.
    """
    if model == MODEL:
        return None
    if model.startswith(f"{MODEL}:") and len(model) > len(MODEL) + 1:
        return model[len(MODEL) + 1 :]
    raise ApiError(
        404, "model_not_found", f"no model {model!r}: use 'huisclos' or 'huisclos:<client>'"
    )


async def _completion(
    hc: Huisclos, question: str, client: str | None, reply: _Reply
) -> ChatCompletionOut:
    """The whole answer at once, its sources appended, as a ``chat.completion``."""
    check_client(hc, client)
    answer = await anyio.to_thread.run_sync(lambda: hc.ask(question, client=client))
    out = await anyio.to_thread.run_sync(answer_out, hc, answer)
    return ChatCompletionOut(
        id=reply.ident,
        created=reply.created,
        model=reply.model,
        choices=[ChoiceOut(message=MessageOut(content=answer.answer + sources_text(answer)))],
        citations=out.citations,
    )


async def _chunks(
    stream: AnswerStream, pieces: AsyncGenerator[str | None], reply: _Reply
) -> AsyncIterator[str]:
    """``chat.completion.chunk`` events as the pieces come, the sources, then ``[DONE]``."""
    yield reply.chunk({"role": "assistant", "content": ""})
    written: list[str] = []
    try:
        async for piece in pieces:
            if piece is None:
                break
            written.append(piece)
            yield reply.chunk({"content": piece})
        answer = await anyio.to_thread.run_sync(stream.result)
        shown = "".join(written).strip()
        tail = ""
        if not answer.not_found and shown != answer.answer:
            tail = "\n\n" + answer.answer  # a marker was moved: the corrected answer
        tail += sources_text(answer)
        if tail:
            yield reply.chunk({"content": tail})
        yield reply.chunk({}, "stop")
    except Exception as exc:  # noqa: BLE001  (the status line is sent: report in-stream)
        log.warning("question failed: %s", type(exc).__name__)
        yield f"data: {json.dumps(api_error(exc).body(), ensure_ascii=False)}\n\n"
    finally:
        await pieces.aclose()
    yield "data: [DONE]\n\n"


@router.get("/models", response_model=ModelsOut, responses=_ERRORS, summary="Models")
def models(hc: Vault) -> ModelsOut:
    created = int(time.time())
    names = [MODEL] + [f"{MODEL}:{c.name}" for c in hc.status().clients]
    return ModelsOut(data=[ModelOut(id=name, created=created) for name in names])


@router.post(
    "/chat/completions",
    response_model=ChatCompletionOut,
    responses={
        **_ERRORS,
        200: {
            "description": "A chat.completion, or with stream=true server-sent "
            "chat.completion.chunk events then 'data: [DONE]'",
            "content": {"text/event-stream": {}},
        },
    },
    summary="Answer the last user message (OpenAI-compatible)",
)
async def chat(request: ChatRequest, hc: Vault) -> Response:
    client = _scope(request.model)
    question = _question(request)
    reply = _Reply(request.model)
    if not request.stream:
        completion = await _completion(hc, question, client, reply)
        return JSONResponse(completion.model_dump())
    stream, pieces = await stream_answer(hc, question, client)
    return StreamingResponse(
        _chunks(stream, pieces, reply), media_type="text/event-stream", headers=STREAM_HEADERS
    )
