"""Text analysis for the keyword index: French and English, accents, elision, stop words."""

from __future__ import annotations

import pytest

from huisclos.index.language import fold, text_language, words
from huisclos.index.terms import analyse, document_terms, query_terms


def test_accents_case_and_plural_are_one_term() -> None:
    variants = ["résiliation", "Résiliations", "resiliation", "RÉSILIATION"]
    terms = {tuple(document_terms(v, "fr")) for v in variants}
    assert len(terms) == 1


def test_elided_articles_are_split_off_and_dropped() -> None:
    assert set(document_terms("l'assurance d'habitation qu'il jusqu'à", "fr")) == {
        "assur",
        "habit",
    }
    # a typographic apostrophe is the same as a plain one
    assert document_terms("l’échéance", "fr") == document_terms("l'échéance", "fr")


def test_stop_words_of_both_languages_are_dropped() -> None:
    assert document_terms("le la les des du et ou the and of to", "fr") == {}
    assert document_terms("déjà", "fr") == document_terms("deja", "fr")


def test_numbers_and_identifiers_are_kept_as_they_are() -> None:
    terms = document_terms("Facture 2024-117, SIRET 732 829 320 00074, IBAN FR76", "fr")
    assert {"2024", "117", "732", "829", "320", "00074", "fr76"} <= set(terms)


def test_counts_are_term_frequencies() -> None:
    assert document_terms("contrat, contrats et contrat", "fr")["contrat"] == 3


@pytest.mark.parametrize(
    ("text", "language"),
    [
        ("Le contrat est résilié par lettre recommandée avec accusé de réception.", "fr"),
        ("The patients were treated with aspirin for two weeks.", "en"),
        ("", "fr"),
    ],
)
def test_the_language_of_a_passage_is_told(text: str, language: str) -> None:
    assert text_language(words(text)) == language
    assert analyse(text)[0] == language


def test_english_passages_get_english_stems() -> None:
    _, terms = analyse("The treatments reduced the mortality of treated patients.")
    assert {"treatment", "reduc", "mortal", "treat", "patient"} <= set(terms)


def test_a_query_matches_passages_in_either_language() -> None:
    terms = set(query_terms("treated patients"))
    assert set(analyse("The patients were treated.")[1]) <= terms
    french = set(query_terms("résiliations des contrats"))
    assert set(document_terms("résiliation du contrat", "fr")) <= french


def test_overlong_runs_are_not_words() -> None:
    assert words("a" * 41 + " ok") == ["ok"]


def test_fold_removes_accents_only() -> None:
    assert fold("Élève à Noël, œuvre") == "Eleve a Noel, œuvre"
