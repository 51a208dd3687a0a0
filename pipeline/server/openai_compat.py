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
from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING, Any, Literal

import anyio
from fastapi import APIRouter
from fastapi.responses import JSONResponse, Response, StreamingResponse
from pydantic import BaseModel, Field

from huisclos.pipeline.server.core import (
    ApiError,
    answer_out,
    api_error,
    check_client,
    printable,
    stream_answer,
)
from huisclos.pipeline.server.schemas import CitationOut, ErrorOut

if TYPE_CHECKING:
    from huisclos.pipeline.answering.answer import Answer
    from huisclos.pipeline.api import Huisclos

__all__ = ["MODEL", "ChatRequest", "router", "sources_text"]

log = logging.getLogger(__name__)

MODEL = "huisclos"
"""The model name for every client; ``huisclos:<client>`` for one."""


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


def _chunk(ident: str, created: int, model: str, delta: dict[str, Any], finish: str | None) -> str:
    chunk = {
        "id": ident,
        "object": "chat.completion.chunk",
        "created": created,
        "model": model,
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
    }
    return f"data: {json.dumps(chunk, ensure_ascii=False)}\n\n"


def router(vault: Callable[[], Huisclos]) -> APIRouter:
    """The ``/v1`` routes over the vault that ``vault()`` returns."""
    routes = APIRouter(prefix="/v1", tags=["OpenAI-compatible"])
    errors: dict[int | str, dict[str, Any]] = {
        status: {"model": ErrorOut} for status in (401, 403, 404, 422)
    }

    def scope(model: str) -> str | None:
        if model == MODEL:
            return None
        if model.startswith(f"{MODEL}:") and len(model) > len(MODEL) + 1:
            return model[len(MODEL) + 1 :]
        raise ApiError(
            404, "model_not_found", f"no model {model!r}: use 'huisclos' or 'huisclos:<client>'"
        )

    @routes.get("/models", response_model=ModelsOut, responses=errors, summary="Models")
    def models() -> ModelsOut:
        created = int(time.time())
        names = [MODEL] + [f"{MODEL}:{c.name}" for c in vault().status().clients]
        return ModelsOut(data=[ModelOut(id=name, created=created) for name in names])

    @routes.post(
        "/chat/completions",
        response_model=ChatCompletionOut,
        responses={
            **errors,
            200: {
                "description": "A chat.completion, or with stream=true server-sent "
                "chat.completion.chunk events then 'data: [DONE]'",
                "content": {"text/event-stream": {}},
            },
        },
        summary="Answer the last user message (OpenAI-compatible)",
    )
    async def chat(request: ChatRequest) -> Response:
        opened = vault()
        client = scope(request.model)
        question = _question(request)
        ident = "chatcmpl-" + secrets.token_hex(12)
        created = int(time.time())
        if not request.stream:
            check_client(opened, client)
            answer = await anyio.to_thread.run_sync(lambda: opened.ask(question, client=client))
            out = await anyio.to_thread.run_sync(answer_out, opened, answer)
            completion = ChatCompletionOut(
                id=ident,
                created=created,
                model=request.model,
                choices=[
                    ChoiceOut(message=MessageOut(content=answer.answer + sources_text(answer)))
                ],
                citations=out.citations,
            )
            return JSONResponse(completion.model_dump())
        stream, pieces = await stream_answer(opened, question, client)

        async def events() -> AsyncIterator[str]:
            yield _chunk(ident, created, request.model, {"role": "assistant", "content": ""}, None)
            written: list[str] = []
            try:
                async for piece in pieces:
                    if piece is None:
                        break
                    written.append(piece)
                    yield _chunk(ident, created, request.model, {"content": piece}, None)
                answer = await anyio.to_thread.run_sync(stream.result)
                shown = "".join(written).strip()
                tail = ""
                if not answer.not_found and shown != answer.answer:
                    tail = "\n\n" + answer.answer  # a marker was moved: the corrected answer
                tail += sources_text(answer)
                if tail:
                    yield _chunk(ident, created, request.model, {"content": tail}, None)
                yield _chunk(ident, created, request.model, {}, "stop")
            except Exception as exc:  # noqa: BLE001  (the status line is sent: report in-stream)
                log.warning("question failed: %s", type(exc).__name__)
                yield f"data: {json.dumps(api_error(exc).body(), ensure_ascii=False)}\n\n"
            finally:
                await pieces.aclose()
            yield "data: [DONE]\n\n"

        return StreamingResponse(
            events(),
            media_type="text/event-stream",
            headers={"cache-control": "no-cache", "x-accel-buffering": "no"},
        )

    return routes
