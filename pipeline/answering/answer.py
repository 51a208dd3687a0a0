"""Answering questions over the encrypted index, with numbered citations.

The query pipeline (Haystack)::

    embedder ─▶ retriever ─▶ prompt ─▶ llm ─▶ cite
                    └──────────────────────────▲ (passages, to map [n] back)

The retriever decrypts the passages of one client (or of all); the prompt
numbers them; the model answers in the question's language (told by
:func:`huisclos.index.language.detect_language`, as search tells it) and marks what
it used with ``[n]``; ``cite`` maps each valid marker back to its passage and
returns only the sources the answer cites. When the passages do not hold the
answer the result says so, in the question's language, with no citation.

Example::

    answerer = Answerer(vault, Searcher(vault), LocalChatGenerator.from_settings(settings))
    stream = answerer.stream("Quel est le montant de la facture 2024-117 ?")
    for token in stream:
        print(token, end="", flush=True)
    print(stream.result().citations)
"""

from __future__ import annotations

import logging
import queue
import re
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from typing import Any

from haystack import Document, Pipeline, component
from haystack.core.errors import PipelineRuntimeError
from haystack.dataclasses import ChatMessage, StreamingChunk

from huisclos.config import ConfigError, GeneratorError, HuisclosError
from huisclos.connectors.personal_data import mask_personal_data
from huisclos.index.language import Language, detect_language
from huisclos.index.vault import Vault
from huisclos.pipeline.answering.prompts import NOT_FOUND, build_messages, is_not_found
from huisclos.pipeline.answering.search import Searcher
from huisclos.pipeline.models.embedding import TextEmbedder
from huisclos.pipeline.models.generators import LocalChatGenerator

__all__ = ["Answer", "AnswerStream", "Answerer", "Citation", "build_query_pipeline"]

log = logging.getLogger(__name__)

_MARKER = re.compile(
    r"\[\s*(?:(?:doc(?:ument)?|extrait|passage|source)\s*)?(\d+(?:\s*[,;]\s*\d+)*)\s*\]", re.I
)
_SENTENCE = re.compile(r"(?<=[.!?;:])\s+|\n+")
_TOKEN = re.compile(r"[^\W_]+", re.UNICODE)
_FIGURE = re.compile(r"\d(?:\d|[.,](?=\d)|[ \u00a0\u202f](?=\d{3}\b))*")
_SNIPPET_CHARS = 300


@dataclass(frozen=True, slots=True)
class Citation:
    """A source the answer cites as ``[n]``. ``path`` is relative to its root."""

    n: int
    path: str
    client: str
    page: int | None
    snippet: str
    source: str | None = None
    """For an e-mail attachment: the attachment's file name."""
    passage: str = ""
    """The whole passage the model was given as ``[n]`` (masked like the prompt)."""
    score: float | None = None
    """The passage's retrieval score (see :class:`SearchHit`)."""
    file_id: str = ""
    """Opaque id of the cited file (as in the audit trail); see ``Huisclos.locate``."""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True, slots=True)
class Answer:
    """A complete answer with the sources it cites."""

    answer: str
    citations: list[Citation]
    backend: str
    model: str
    language: str
    not_found: bool
    seconds: float = 0.0
    first_token_seconds: float | None = None
    passages: int = 0
    """How many passages the model was given."""
    attributed: bool = False
    """True when the model gave no valid marker and huisclos attributed the answer
    to the passage that shares the most words with it (marked ``[n]`` at the end)."""
    shown: tuple[tuple[str, str, str], ...] = ()
    """(client id, file id, chunk id) of each passage the model was given."""

    def to_dict(self) -> dict[str, Any]:
        """The ``ask --json`` shape: answer, citations, backend, model."""
        return {
            "answer": self.answer,
            "citations": [
                {"n": c.n, "path": c.path, "client": c.client, "page": c.page, "snippet": c.snippet}
                for c in self.citations
            ],
            "backend": self.backend,
            "model": self.model,
        }


AnswerHook = Callable[[str, str | None, Answer | None, BaseException | None], None]


@component
class PassageRetriever:
    """Decrypted passages best matching a query (keywords and embedding), maybe of one client."""

    def __init__(self, searcher: Searcher, top_k: int = 4, mask: bool = False) -> None:
        self.searcher = searcher
        self.top_k = top_k
        self.mask = mask

    @component.output_types(documents=list[Document])
    def run(
        self,
        query: str,
        query_embedding: list[float],
        client: str | None = None,
        top_k: int | None = None,
    ) -> dict[str, list[Document]]:
        hits = self.searcher.retrieve(
            query, query_embedding, client=client, top_k=top_k or self.top_k
        )
        documents = [
            Document(
                content=mask_personal_data(hit.text) if self.mask else hit.text,
                score=hit.score,
                meta={
                    "path": hit.path,
                    "client": hit.client,
                    "page": hit.page,
                    "source": hit.source,
                    "section": hit.section,
                    "ids": (hit.client_id, hit.file_id, hit.chunk_id),
                },
            )
            for hit in hits
        ]
        return {"documents": documents}


@component
class AnswerPromptBuilder:
    """Numbered passages and rules, in the question's language."""

    def __init__(self, default_language: Language = "fr") -> None:
        self.default_language: Language = default_language

    @component.output_types(messages=list[ChatMessage], language=str)
    def run(self, question: str, documents: list[Document]) -> dict[str, Any]:
        language = detect_language(question, self.default_language)
        if not documents:  # nothing to answer from: the model is not asked
            return {"language": language}
        return {"messages": build_messages(question, documents, language), "language": language}


@component
class CitationMapper:
    """Map ``[n]`` markers back to passages; keep only cited sources."""

    @component.output_types(
        answer=str, citations=list[Citation], not_found=bool, attributed=bool, language=str
    )
    def run(
        self,
        documents: list[Document],
        language: str,
        replies: list[ChatMessage] | None = None,
    ) -> dict[str, Any]:
        lang: Language = "en" if language == "en" else "fr"
        text = (replies[0].text or "").strip() if replies else ""
        text = _drop_invalid_markers(text, len(documents))
        numbers = _cited_numbers(text, len(documents))
        if not documents or is_not_found(text, cited=bool(numbers)):
            return {
                "answer": NOT_FOUND[lang],
                "citations": [],
                "not_found": True,
                "attributed": False,
                "language": lang,
            }
        text, numbers, attributed = _check_figures(text, numbers, documents)
        if not numbers:
            best = _best_passage(text, documents)
            if best is not None:
                numbers = [best]
                text = f"{text} [{best}]"
                attributed = True
        citations = [_citation(n, documents[n - 1], text) for n in numbers]
        return {
            "answer": text,
            "citations": citations,
            "not_found": False,
            "attributed": attributed,
            "language": lang,
        }


def _drop_invalid_markers(text: str, count: int) -> str:
    """Remove marker numbers that name no passage (and markers left empty)."""

    def keep(match: re.Match[str]) -> str:
        numbers = [p.strip() for p in re.split(r"[,;]", match.group(1))]
        valid = [n for n in numbers if 1 <= int(n) <= count]
        return f"[{', '.join(valid)}]" if valid else ""

    cleaned = _MARKER.sub(keep, text)
    return re.sub(r"[ \t]+([.,;:!?])", r"\1", cleaned).strip()


def _cited_numbers(text: str, count: int) -> list[int]:
    """Valid passage numbers in order of first mention."""
    seen: list[int] = []
    for match in _MARKER.finditer(text):
        for part in re.split(r"[,;]", match.group(1)):
            n = int(part)
            if 1 <= n <= count and n not in seen:
                seen.append(n)
    return seen


def _figures(text: str) -> set[str]:
    """Amounts, dates and identifiers of two digits or more, spaces removed ("4 860,00")."""
    found = {re.sub(r"[ \u00a0\u202f]", "", match.group()) for match in _FIGURE.finditer(text)}
    return {figure for figure in found if len(figure) > 1}


def _check_figures(
    text: str, numbers: list[int], documents: list[Document]
) -> tuple[str, list[int], bool]:
    """Move a marker to the passage that holds the figures of the words it follows, when
    none of the passages it names holds any (small models mistake the number of the
    passage they quote: « 4 860,00 € [3] » from passage 1).

    Returns the text, the cited numbers, and whether a marker was moved.
    """
    held = [_figures(doc.content or "") for doc in documents]
    moved = False
    start = 0

    def check(match: re.Match[str]) -> str:
        nonlocal moved, start
        figures = _figures(_MARKER.sub(" ", text[start : match.start()]))
        start = match.end()
        cited = [int(p) for p in re.split(r"[,;]", match.group(1))]
        if not figures or any(figures & held[n - 1] for n in cited if 1 <= n <= len(held)):
            return match.group()
        best = max(range(len(held)), key=lambda i: len(figures & held[i]))
        if not figures & held[best]:
            return match.group()
        moved = True
        return f"[{best + 1}]"

    if not numbers:
        return text, numbers, False
    text = _MARKER.sub(check, text)
    return text, _cited_numbers(text, len(documents)), moved


def _words(text: str) -> set[str]:
    return {w for w in _TOKEN.findall(text.lower()) if len(w) > 2 or w.isdigit()}


def _best_passage(answer: str, documents: list[Document]) -> int | None:
    """The passage sharing the most words with an unmarked answer, if any clearly does."""
    words = _words(_MARKER.sub(" ", answer))
    if not words:
        return None
    scores = [len(words & _words(doc.content or "")) for doc in documents]
    best = max(range(len(scores)), key=lambda i: scores[i])
    if scores[best] < max(2, len(words) // 3):
        return None
    return best + 1


def _snippet(passage: str, answer: str) -> str:
    """The sentence of the passage that shares the most words with the answer."""
    words = _words(_MARKER.sub(" ", answer))
    sentences = [s.strip() for s in _SENTENCE.split(passage) if s.strip()] or [passage]
    best = max(sentences, key=lambda s: len(words & _words(s)))
    best = " ".join(best.split())
    if len(best) > _SNIPPET_CHARS:
        best = best[: _SNIPPET_CHARS - 1].rstrip() + "…"
    return best


def _citation(n: int, document: Document, answer: str) -> Citation:
    meta = document.meta
    return Citation(
        n=n,
        path=str(meta.get("path", "")),
        client=str(meta.get("client", "")),
        page=meta.get("page") or None,
        snippet=_snippet(document.content or "", answer),
        source=meta.get("source") or None,
        passage=document.content or "",
        score=document.score,
        file_id=str(meta.get("ids", ("", "", ""))[1]),
    )


def build_query_pipeline(
    searcher: Searcher, generator: LocalChatGenerator, *, top_k: int, default_language: Language
) -> Pipeline:
    """embed → retrieve (decrypt, scope) → prompt → generate → cite."""
    settings = searcher.vault.settings
    pipeline = Pipeline()
    pipeline.add_component(
        "embedder", TextEmbedder(model=settings.embedding_model, threads=settings.threads)
    )
    pipeline.add_component(
        "retriever", PassageRetriever(searcher, top_k, mask=settings.mask_personal_data)
    )
    pipeline.add_component("prompt", AnswerPromptBuilder(default_language))
    pipeline.add_component("llm", generator)
    pipeline.add_component("cite", CitationMapper())
    pipeline.connect("embedder.embedding", "retriever.query_embedding")
    pipeline.connect("retriever.documents", "prompt.documents")
    pipeline.connect("retriever.documents", "cite.documents")
    pipeline.connect("prompt.messages", "llm.messages")
    pipeline.connect("prompt.language", "cite.language")
    pipeline.connect("llm.replies", "cite.replies")
    return pipeline


_DONE = object()


class AnswerStream(Iterator[str]):
    """Tokens of an answer as the model writes them; then :meth:`result`.

    Iterating yields text pieces; when the model gave no marker and huisclos
    attributed the answer, the marker comes as a last piece. Stopping early
    (``close()``) stops the generation.
    """

    def __init__(self) -> None:
        self._queue: queue.Queue[object] = queue.Queue()
        self._result: Answer | None = None
        self._error: BaseException | None = None
        self._finished = threading.Event()
        self._cancelled = threading.Event()
        self._text: list[str] = []

    def __iter__(self) -> AnswerStream:
        return self

    def __next__(self) -> str:
        item = self._queue.get()
        if item is _DONE:
            self._queue.put(_DONE)  # later calls end too
            if self._error is not None:
                raise self._error
            raise StopIteration
        assert isinstance(item, str)
        return item

    def result(self) -> Answer:
        """The complete answer (waits for the model to finish).

        Raises:
            GeneratorError, ConfigError, StoreError: the question could not be answered.
        """
        self._finished.wait()
        if self._error is not None:
            raise self._error
        assert self._result is not None
        return self._result

    def close(self) -> None:
        """Stop generating (the partial answer is discarded)."""
        self._cancelled.set()

    # Producer side (the worker thread)
    def _put(self, text: str) -> None:
        if self._cancelled.is_set():
            raise _Cancelled
        if text:
            self._text.append(text)
            self._queue.put(text)

    def _finish(self, result: Answer | None, error: BaseException | None) -> None:
        if result is not None:
            streamed = "".join(self._text)
            if result.answer.startswith(streamed) and len(result.answer) > len(streamed):
                if not result.not_found:
                    self._queue.put(result.answer[len(streamed) :])
            elif not streamed:
                self._queue.put(result.answer)
        self._result, self._error = result, error
        self._finished.set()
        self._queue.put(_DONE)


class _Cancelled(Exception):
    """Raised inside the streaming callback to stop a generation."""


class Answerer:
    """Questions in, cited answers out, for one vault. One question at a time.

    Args:
        vault: the opened vault.
        searcher: dense search over it (shared with ``Huisclos.search``).
        generator: the configured local model.
    """

    def __init__(self, vault: Vault, searcher: Searcher, generator: LocalChatGenerator) -> None:
        settings = vault.settings
        self.generator = generator
        self.pipeline = build_query_pipeline(
            searcher,
            generator,
            top_k=settings.answer_passages,
            default_language=settings.default_language,
        )
        self._lock = threading.Lock()
        self.on_answer: AnswerHook | None = None
        """Called with (question, client, answer or None, error or None) before the
        answer is handed out (the audit trail); if it raises, the question fails."""

    def warm_up(self) -> None:
        """Load the embedding and language models now (else on the first question)."""
        self.pipeline.warm_up()

    def ask(self, question: str, *, client: str | None = None) -> Answer:
        """Answer ``question`` completely (see :meth:`stream` for tokens as they come)."""
        stream = self.stream(question, client=client)
        for _ in stream:
            pass
        return stream.result()

    def stream(self, question: str, *, client: str | None = None) -> AnswerStream:
        """Start answering ``question``; iterate the result for tokens.

        Raises (from iteration or ``result()``):
            ConfigError: empty question, or unknown client.
            GeneratorError: the model is missing or its server unreachable.
        """
        if not question or not question.strip():
            raise ConfigError("the question is empty")
        stream = AnswerStream()
        worker = threading.Thread(
            target=self._run, args=(question, client, stream), name="huisclos-answer", daemon=True
        )
        worker.start()
        return stream

    def _run(self, question: str, client: str | None, stream: AnswerStream) -> None:
        started = time.perf_counter()
        first: list[float] = []

        def on_chunk(chunk: StreamingChunk) -> None:
            if chunk.content and not first:
                first.append(time.perf_counter() - started)
            stream._put(chunk.content)

        try:
            with self._lock:
                out = self.pipeline.run(
                    {
                        "embedder": {"text": question},
                        "retriever": {"query": question, "client": client},
                        "prompt": {"question": question},
                        "llm": {"streaming_callback": on_chunk},
                    },
                    include_outputs_from={"retriever"},
                )
        except PipelineRuntimeError as exc:
            cause = exc.__cause__
            if isinstance(cause, _Cancelled):
                stream._finish(None, GeneratorError("the answer was cancelled"))
                return
            error = cause if isinstance(cause, HuisclosError) else exc
            log.warning("question failed: %s", type(error).__name__)
            stream._finish(None, self._hook(question, client, None, error) or error)
            return
        except BaseException as exc:  # noqa: BLE001  (handed to the consumer thread, not lost)
            stream._finish(None, exc)
            return
        cite = out["cite"]
        passages = out.get("retriever", {}).get("documents", [])
        answer = Answer(
            answer=cite["answer"],
            citations=cite["citations"],
            backend=self.generator.backend,
            model=self.generator.model_name,
            language=cite["language"],
            not_found=cite["not_found"],
            seconds=round(time.perf_counter() - started, 3),
            first_token_seconds=round(first[0], 3) if first else None,
            passages=len(passages),
            attributed=cite["attributed"],
            shown=tuple(doc.meta["ids"] for doc in passages),
        )
        log.info(
            "answered: %d passages, %d citations, not_found=%s, %.1f s",
            answer.passages,
            len(answer.citations),
            answer.not_found,
            answer.seconds,
        )
        failed = self._hook(question, client, answer, None)
        stream._finish(None if failed else answer, failed)

    def _hook(
        self,
        question: str,
        client: str | None,
        answer: Answer | None,
        error: BaseException | None,
    ) -> BaseException | None:
        if self.on_answer is None:
            return None
        try:
            self.on_answer(question, client, answer, error)
        except BaseException as exc:  # noqa: BLE001  (handed to the consumer thread)
            return exc
        return None
