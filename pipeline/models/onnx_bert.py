"""A sentence-transformers BERT model run by ONNX Runtime, exported locally once.

Behind the specs ``"minilm-onnx"`` (fp32) and ``"minilm-int8"`` (weights of
every linear layer dynamically quantized to int8, per output channel): the
packaged all-MiniLM-L6-v2 without torch at run time, about 2x (fp32) and 4x
(int8) faster than sentence-transformers on 2 cores, with the same SciFact
scores (``bench/compare_minilm_backends.py``, ``bench/results/minilm-backends.json``).

The ONNX graph is derived from the packaged ``model.safetensors``, never
downloaded: BERT, then mean pooling over the attention mask and L2
normalisation, as the model's ``modules.json`` and pooling config say
(checked; another pooling is refused). It is exported with torch on first use
(about 7 s, torch's import included) into ``<cache>/onnx/``
(:func:`huisclos.config.default_cache_dir`), under a name keyed by the sha256
of the weights, the export recipe version and the variant, and checked
against torch on probe sentences before it is kept. It is built in a
temporary directory and renamed into place; a lock file makes a second
process wait for the first one's export instead of repeating it; a sidecar
``.json`` holds the file's sha256, and a file that does not match it
(partial, corrupt, or from another recipe) is rebuilt.

Texts are tokenized by the model folder's ``tokenizer.json`` (the same fast
tokenizer sentence-transformers uses) and truncated to ``max_seq_length``.
fp32 runs batches of similar lengths (little padding is computed). int8 runs
one text at a time: dynamic quantization scales each MatMul's input by its
whole range, padding rows and batch neighbours included, so a batched text's
vector would depend on what it was batched with (cosine 0.99 between two such
vectors of one text). Alone, a chunk gets the same vector whether it is
indexed in bulk or by the watcher, and the same as a question would; and it
is faster here (107 chunks/s against 96 in batches of 16).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import logging
import os
import shutil
import tempfile
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from huisclos.config import EmbeddingError

__all__ = ["RECIPE", "OnnxEmbeddingModel", "onnx_file"]

log = logging.getLogger(__name__)

RECIPE = 1
"""Version of the export recipe (graph, opset, quantization): part of the cache key.
Vaults know a model by its spec only (the store stamps each collection with it):
a recipe whose vectors differ from this one's (another quantization) needs a new spec."""
_OPSET = 17
_BATCH = {"fp32": 16, "int8": 1}
_LOCK_WAIT = 600.0
_PROBES = (
    "What is the amount of the invoice?",
    "Montant TTC de la facture : 4 860 euros, réglée le 3 mars.",
    "Ok",
    "The lease may be terminated by either party with three months' notice, sent by "
    "registered letter; the tenant owes the rent until the end of the notice period.",
    " ".join(["Mitochondrial dysfunction drives inflammation in aged tissues."] * 40),
)
"""Sentences the exported graph must embed like torch (one beyond the 256-token window)."""
_MIN_COSINE = {"fp32": 0.9999, "int8": 0.95}
"""A broken export gives cosines far below; int8 gives 0.965-0.996 on the probes ("Ok" lowest)."""


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def read_model_config(model_dir: Path) -> tuple[int, int]:
    """The (dimension, token window) of a mean-pooled sentence-transformers folder.

    Raises:
        EmbeddingError: not a Transformer + mean Pooling (+ Normalize) model.
    """
    try:
        modules = json.loads((model_dir / "modules.json").read_text(encoding="utf-8"))
        kinds = [module["type"].rsplit(".", 1)[-1] for module in modules]
        if kinds[:2] != ["Transformer", "Pooling"] or not set(kinds[2:]) <= {"Normalize"}:
            raise EmbeddingError(f"{model_dir}: modules {kinds} are not Transformer + Pooling")
        pooling_dir = model_dir / modules[1]["path"]
        pooling = json.loads((pooling_dir / "config.json").read_text(encoding="utf-8"))
        st_config = json.loads((model_dir / "sentence_bert_config.json").read_text("utf-8"))
    except (OSError, ValueError, KeyError, IndexError) as exc:
        raise EmbeddingError(f"cannot read the sentence-transformers config: {exc}") from exc
    modes = {key for key, value in pooling.items() if key.startswith("pooling_mode") and value}
    if modes != {"pooling_mode_mean_tokens"}:
        raise EmbeddingError(f"{model_dir}: only mean pooling can be exported, not {modes}")
    return int(pooling["word_embedding_dimension"]), int(st_config["max_seq_length"])


def _tokenizer(model_dir: Path, max_tokens: int | None) -> Any:
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
    tokenizer.no_padding()  # the file pads every text to 128 tokens
    if max_tokens is None:
        tokenizer.no_truncation()
    else:
        tokenizer.enable_truncation(max_tokens)
    return tokenizer


def _pad(rows: list[list[int]]) -> tuple[np.ndarray, np.ndarray]:
    width = max(len(ids) for ids in rows)
    ids = np.zeros((len(rows), width), dtype=np.int64)
    mask = np.zeros((len(rows), width), dtype=np.int64)
    for r, row in enumerate(rows):
        ids[r, : len(row)] = row
        mask[r, : len(row)] = 1
    return ids, mask


def _session(path: Path, threads: int) -> Any:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = max(1, threads)
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    # idle threads must not spin: the other embedding model runs right after this one
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.log_severity_level = 3
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


# --- the cache -------------------------------------------------------------------------


def onnx_file(model_dir: Path, *, int8: bool, cache_dir: Path, label: str = "minilm") -> Path:
    """The checked ONNX export of a model folder, built on first use.

    Args:
        model_dir: a sentence-transformers BERT folder (``model.safetensors``).
        int8: the dynamically quantized variant, else fp32.
        cache_dir: where exports are kept (in its ``onnx/`` subfolder).
        label: first part of the file name.

    Raises:
        EmbeddingError: the cache cannot be written, or the export failed its check.
    """
    source = _sha256(model_dir / "model.safetensors")
    variant = "int8" if int8 else "fp32"
    folder = cache_dir / "onnx"
    target = folder / f"{label}-{source[:16]}-r{RECIPE}-{variant}.onnx"
    expected = {"recipe": RECIPE, "variant": variant, "source_sha256": source}
    if _valid(target, expected):
        return target
    try:
        folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        with _locked(target.with_suffix(".lock")):
            if _valid(target, expected, quiet=False):  # built by another process meanwhile
                return target
            _build(model_dir, target, expected)
    except OSError as exc:
        raise EmbeddingError(
            f"cannot write the ONNX export to {folder} ({exc}); point XDG_CACHE_HOME at a "
            "writable directory"
        ) from exc
    return target


def _valid(target: Path, expected: dict[str, Any], *, quiet: bool = True) -> bool:
    sidecar = target.with_suffix(".json")
    if not target.exists() and not sidecar.exists():
        return False
    try:
        meta = json.loads(sidecar.read_text(encoding="utf-8"))
        ok = (
            all(meta.get(key) == value for key, value in expected.items())
            and target.stat().st_size == meta["size"]
            and _sha256(target) == meta["sha256"]
        )
    except (OSError, ValueError, KeyError, TypeError):
        ok = False
    if not ok and not quiet:
        log.warning(
            "the cached ONNX export %s is incomplete or corrupt: rebuilding it", target.name
        )
    return ok


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    """An exclusive ``flock`` (another process exporting the same model: wait for it)."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        deadline = time.monotonic() + _LOCK_WAIT
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise EmbeddingError(
                        f"another process has been exporting {path.stem} for "
                        f"{_LOCK_WAIT:.0f} s; remove {path} if it is gone"
                    ) from None
                time.sleep(0.1)
        yield
    finally:
        os.close(fd)  # releases the lock


def _build(model_dir: Path, target: Path, expected: dict[str, Any]) -> None:
    started = time.perf_counter()
    scratch = Path(tempfile.mkdtemp(prefix=".build-", dir=target.parent))
    try:
        _, max_tokens = read_model_config(model_dir)
        probes = _pad([e.ids for e in _tokenizer(model_dir, max_tokens).encode_batch(_PROBES)])
        fp32 = scratch / "fp32.onnx"
        reference = _export(model_dir, fp32, probes)
        built = _quantize(fp32, scratch) if expected["variant"] == "int8" else fp32
        _check(built, probes, reference, _MIN_COSINE[expected["variant"]])
        meta = {**expected, "size": built.stat().st_size, "sha256": _sha256(built)}
        os.replace(built, target)
        sidecar = scratch / "meta.json"
        sidecar.write_text(json.dumps(meta, indent=1), encoding="utf-8")
        os.replace(sidecar, target.with_suffix(".json"))  # last: the file is now valid
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    log.info(
        "exported %s (%s) to ONNX in %.1f s: %d MB",
        target.name,
        expected["variant"],
        time.perf_counter() - started,
        target.stat().st_size // 1_000_000,
    )


def _export(model_dir: Path, out: Path, probes: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
    """Export BERT + mean pooling + normalisation; returns torch's vectors of the probes."""
    try:
        import torch
        from transformers import AutoModel
    except ImportError as exc:
        raise EmbeddingError(
            "the ONNX export needs torch and transformers (installed with "
            "sentence-transformers); run `make install`"
        ) from exc

    class Pooled(torch.nn.Module):
        def __init__(self, bert: Any) -> None:
            super().__init__()
            self.bert = bert

        def forward(self, input_ids: Any, attention_mask: Any) -> Any:
            tokens = self.bert(
                input_ids=input_ids,
                attention_mask=attention_mask,
                token_type_ids=torch.zeros_like(input_ids),
            ).last_hidden_state
            mask = attention_mask.unsqueeze(-1).to(tokens.dtype)
            mean = (tokens * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
            return torch.nn.functional.normalize(mean, p=2.0, dim=1)

    ids, mask = probes
    try:
        bert = AutoModel.from_pretrained(
            str(model_dir), local_files_only=True, attn_implementation="eager"
        )
        model = Pooled(bert).eval()
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # tracer notes on shape-dependent Python code
            reference = model(torch.from_numpy(ids), torch.from_numpy(mask)).numpy()
            torch.onnx.export(
                model,
                (torch.from_numpy(ids[:2, :8]), torch.from_numpy(mask[:2, :8])),
                str(out),
                dynamo=False,  # the torch.export path needs onnxscript, not installed
                input_names=["input_ids", "attention_mask"],
                output_names=["embedding"],
                dynamic_axes={
                    "input_ids": {0: "batch", 1: "tokens"},
                    "attention_mask": {0: "batch", 1: "tokens"},
                    "embedding": {0: "batch"},
                },
                opset_version=_OPSET,
            )
    except EmbeddingError:
        raise
    except Exception as exc:
        raise EmbeddingError(f"cannot export {model_dir} to ONNX: {exc}") from exc
    return np.asarray(reference, dtype=np.float32)


def _quantize(fp32: Path, scratch: Path) -> Path:
    """Dynamic int8: MatMul weights per output channel, activations per tensor at run time."""
    from onnxruntime.quantization import QuantType, quantize_dynamic
    from onnxruntime.quantization.shape_inference import quant_pre_process

    prepared, int8 = scratch / "prepared.onnx", scratch / "int8.onnx"
    quiet = _QuietQuantizer()
    logging.root.addFilter(quiet)  # the quantizer logs one INFO line per tensor to the root
    try:
        # the recommended pre-processing (ONNX shape inference, graph clean-up)
        quant_pre_process(str(fp32), str(prepared), skip_symbolic_shape=True)
        quantize_dynamic(
            str(prepared),
            str(int8),
            op_types_to_quantize=["MatMul"],  # not the embedding tables (Gather)
            per_channel=True,
            weight_type=QuantType.QInt8,
        )
    except Exception as exc:
        raise EmbeddingError(f"cannot quantize the ONNX export: {exc}") from exc
    finally:
        logging.root.removeFilter(quiet)
    return int8


class _QuietQuantizer(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno >= logging.WARNING or "onnxruntime" not in record.pathname


def _check(
    path: Path, probes: tuple[np.ndarray, np.ndarray], reference: np.ndarray, min_cosine: float
) -> None:
    ids, mask = probes
    try:
        got = _session(path, 1).run(["embedding"], {"input_ids": ids, "attention_mask": mask})[0]
    except Exception as exc:
        raise EmbeddingError(f"the ONNX export does not run: {exc}") from exc
    cosine = float(np.min(np.sum(got * reference, axis=1)))
    if not cosine >= min_cosine:
        raise EmbeddingError(
            f"the ONNX export differs from torch (cosine {cosine:.5f} < {min_cosine}); "
            f"this torch/transformers version is not supported by recipe {RECIPE}"
        )


# --- the model --------------------------------------------------------------------------


class OnnxEmbeddingModel:
    """A mean-pooled sentence-transformers BERT folder on ONNX Runtime (CPU).

    Example::

        model = OnnxEmbeddingModel(minilm_dir, 2, int8=True, cache_dir=default_cache_dir())
        vectors = model.embed(["What does the lease say about notice?"])  # (1, 384), unit norm

    Raises (from the constructor):
        EmbeddingError: unsupported folder, failed export, or the runtime is missing.
    """

    def __init__(
        self,
        model_dir: Path,
        threads: int,
        *,
        int8: bool,
        cache_dir: Path,
        name: str = "",
        batch: int | None = None,
    ) -> None:
        self.name = name or f"{model_dir.name}-{'int8' if int8 else 'onnx'}"
        self._batch = batch or _BATCH["int8" if int8 else "fp32"]
        self.dim, window = read_model_config(model_dir)
        self.max_tokens: int | None = window
        try:
            self._tokenizer = _tokenizer(model_dir, window)
            self._counter = _tokenizer(model_dir, None)
            self._session = _session(onnx_file(model_dir, int8=int8, cache_dir=cache_dir), threads)
        except EmbeddingError:
            raise
        except Exception as exc:  # onnxruntime's and tokenizers' own errors
            raise EmbeddingError(f"cannot load the ONNX embedding model: {exc}") from exc

    def count_tokens(self, texts: list[str]) -> list[int]:
        return [len(e.ids) for e in self._counter.encode_batch(list(texts))]

    def embed(self, texts: list[str], *, query: bool = False) -> np.ndarray:
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        if not texts:
            return out
        encoded = [e.ids for e in self._tokenizer.encode_batch(list(texts))]
        order = sorted(range(len(encoded)), key=lambda i: len(encoded[i]))
        for start in range(0, len(order), self._batch):
            rows = order[start : start + self._batch]
            ids, mask = _pad([encoded[i] for i in rows])
            try:
                vectors = self._session.run(
                    ["embedding"], {"input_ids": ids, "attention_mask": mask}
                )[0]
            except Exception as exc:
                raise EmbeddingError(f"the ONNX embedding model failed: {exc}") from exc
            out[rows] = vectors
        return out
