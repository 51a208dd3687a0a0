"""all-MiniLM-L6-v2 on ONNX Runtime: torch's vectors, a cache built once, rebuilt when damaged."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from huisclos.config import EmbeddingError, load_settings
from huisclos.index.store import ENGLISH
from huisclos.pipeline import Huisclos
from huisclos.pipeline.models import onnx_bert as onnx_backend
from huisclos.pipeline.models.embedding import DocumentEmbedder, _minilm_dir, load_model
from huisclos.pipeline.models.onnx_bert import OnnxEmbeddingModel, onnx_file, read_model_config
from tests.conftest import DATA

SENTENCES = [
    "What is the amount of the invoice?",
    "The lease may be terminated by either party with three months' notice.",
    "Fees are billed quarterly at a fixed rate of 1,200 euros per quarter.",
    "Montant TTC de la facture : 4 860 euros, réglée le 3 mars.",
]


def _scifact(n: int) -> list[str]:
    with (DATA / "scifact" / "corpus.jsonl").open(encoding="utf-8") as lines:
        return [json.loads(line)["text"] for line, _ in zip(lines, range(n), strict=False)]


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One cache for the module: each variant exported once."""
    return tmp_path_factory.mktemp("cache")


def _model(cache: Path, *, int8: bool) -> OnnxEmbeddingModel:
    return OnnxEmbeddingModel(_minilm_dir(), 2, int8=int8, cache_dir=cache)


# --- no model ------------------------------------------------------------------------


def test_the_specs_are_accepted_by_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    assert load_settings(embedding_model_en="minilm-int8").embedding_model_en == "minilm-int8"
    monkeypatch.setenv("HUISCLOS_EMBEDDING_MODEL_EN", "minilm-onnx")
    assert load_settings().embedding_model_en == "minilm-onnx"


def test_a_pooling_other_than_mean_is_refused(tmp_path: Path) -> None:
    (tmp_path / "1_Pooling").mkdir()
    (tmp_path / "modules.json").write_text(
        json.dumps(
            [
                {"path": "", "type": "sentence_transformers.models.Transformer"},
                {"path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
            ]
        )
    )
    (tmp_path / "sentence_bert_config.json").write_text('{"max_seq_length": 128}')
    pooling = {"word_embedding_dimension": 8, "pooling_mode_cls_token": True}
    (tmp_path / "1_Pooling" / "config.json").write_text(json.dumps(pooling))
    with pytest.raises(EmbeddingError, match="only mean pooling"):
        read_model_config(tmp_path)
    pooling = {"word_embedding_dimension": 8, "pooling_mode_mean_tokens": True}
    (tmp_path / "1_Pooling" / "config.json").write_text(json.dumps(pooling))
    assert read_model_config(tmp_path) == (8, 128)


# --- the packaged model ------------------------------------------------------------------


def test_the_packaged_config_is_read_as_sentence_transformers_does() -> None:
    torch = load_model("minilm", 2)
    assert read_model_config(_minilm_dir()) == (torch.dim, torch.max_tokens)


@pytest.mark.integration
def test_vectors_match_torch(cache: Path) -> None:
    texts = SENTENCES + _scifact(6)
    reference = load_model("minilm", 2).embed(texts)
    fp32 = _model(cache, int8=False).embed(texts)
    int8 = _model(cache, int8=True).embed(texts)
    assert fp32.shape == int8.shape == (len(texts), 384)
    assert np.allclose(np.linalg.norm(int8, axis=1), 1.0, atol=1e-5)
    assert np.min(np.sum(fp32 * reference, axis=1)) > 0.9999
    assert np.min(np.sum(int8 * reference, axis=1)) > 0.99
    # batched by length: the order of the texts does not matter
    assert np.allclose(_model(cache, int8=True).embed(texts[::-1])[::-1], int8, atol=1e-6)
    assert _model(cache, int8=True).embed([]).shape == (0, 384)


@pytest.mark.integration
def test_count_tokens_equals_torch_tokenizer(cache: Path) -> None:
    texts = [*SENTENCES, "Café crème, naïve — ½ € 🙂", "", " ".join(_scifact(3))]
    expected = load_model("minilm", 2).count_tokens(texts)
    assert expected[-1] > 256  # counts are not cut at the window
    assert _model(cache, int8=True).count_tokens(texts) == expected


@pytest.mark.integration
def test_the_cache_is_reused(cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    first = onnx_file(_minilm_dir(), int8=True, cache_dir=cache)
    stamp = first.stat().st_mtime_ns
    monkeypatch.setattr(onnx_backend, "_export", lambda *a: pytest.fail("exported again"))
    model = _model(cache, int8=True)
    assert model.embed(SENTENCES).shape == (4, 384)
    assert first.stat().st_mtime_ns == stamp
    assert sorted(p.suffix for p in first.parent.glob(f"{first.stem}.*")) == [
        ".json",
        ".lock",
        ".onnx",
    ]


@pytest.mark.integration
@pytest.mark.parametrize("damage", ["truncated", "no sidecar", "other recipe"])
def test_a_partial_or_corrupt_cache_file_is_rebuilt(
    tmp_path: Path, damage: str, caplog: pytest.LogCaptureFixture
) -> None:
    path = onnx_file(_minilm_dir(), int8=False, cache_dir=tmp_path)
    reference = _model(tmp_path, int8=False).embed(SENTENCES)
    sidecar = path.with_suffix(".json")
    if damage == "truncated":
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    elif damage == "no sidecar":
        sidecar.unlink()  # a crash between the two renames
    else:
        sidecar.write_text(sidecar.read_text().replace('"recipe": 1', '"recipe": 0'))
    with caplog.at_level(logging.WARNING, logger="huisclos.pipeline.models.onnx_bert"):
        rebuilt = _model(tmp_path, int8=False)
    assert "rebuilding it" in caplog.text
    assert np.allclose(rebuilt.embed(SENTENCES), reference, atol=1e-6)
    assert not list(tmp_path.glob("onnx/.build-*"))  # no scratch left behind


_RACE = """
import logging, sys
from pathlib import Path
import huisclos.config
logging.basicConfig(level=logging.INFO, format="%(message)s")
from huisclos.pipeline.models.embedding import _minilm_dir
from huisclos.pipeline.models.onnx_bert import OnnxEmbeddingModel
model = OnnxEmbeddingModel(_minilm_dir(), 1, int8=True, cache_dir=Path(sys.argv[1]))
print(model.embed(["race"]).shape)
"""


@pytest.mark.integration
def test_two_processes_racing_on_an_empty_cache_export_once(tmp_path: Path) -> None:
    runs = [
        subprocess.Popen(
            [sys.executable, "-c", _RACE, str(tmp_path)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    outputs = [run.communicate(timeout=300) for run in runs]
    assert [run.returncode for run in runs] == [0, 0], outputs
    assert all("(1, 384)" in out for out, _ in outputs)
    assert sum(err.count("exported minilm-") for _, err in outputs) == 1


@pytest.mark.integration
def test_the_int8_spec_runs_behind_the_embedder_component() -> None:
    embedder = DocumentEmbedder(model="minilm-int8", threads=2)
    embedder.warm_up()
    assert embedder.embedding_model.name == "minilm-int8"
    assert embedder.embedding_model.max_tokens == 256
    assert DocumentEmbedder.from_dict(embedder.to_dict()).model == "minilm-int8"


@pytest.mark.integration
def test_switching_the_english_model_re_embeds_english_chunks(tmp_path: Path) -> None:
    root = tmp_path / "Clients"
    for name, text in {
        "Acme Ltd/engagement-letter.txt": SENTENCES[2] + " Invoices are settled by transfer.",
        "Acme Ltd/minutes.txt": "The board approved the annual accounts and the dividend.",
        "Dupont SARL/bail.txt": "Le bail peut être dénoncé avec un préavis de six mois.",
    }.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text, encoding="utf-8")
    common = {"key_source": "file", "convert_workers": 0}
    with Huisclos(load_settings(embedding_model_en="minilm", **common)) as hc:
        hc.index(root)
        english = hc.vault.store.count(ENGLISH)
    assert english >= 2
    with Huisclos(load_settings(embedding_model_en="minilm-int8", **common)) as hc:
        assert hc.vault.store.count(ENGLISH) == 0  # another model's vectors: not used
        hc.index(root)
        store = hc.vault.store
        assert store.count(ENGLISH) == english  # all re-embedded by the new model
        hits = hc.search("When was the dividend approved by the board?", top_k=1)
        assert hits and hits[0].path == "Acme Ltd/minutes.txt"
        # the stored English vector is the new model's embedding of the chunk
        stored = store._collections[ENGLISH].get(ids=[hits[0].chunk_id], include=["embeddings"])
        model = load_model("minilm-int8", hc.settings.threads)
        expected = model.embed([hits[0].text])[0]
        assert float(np.asarray(stored["embeddings"][0]) @ expected) > 0.9999
