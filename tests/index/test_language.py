"""The one language detector and the stop words: real questions, short ones, names."""

from __future__ import annotations

import pytest

from huisclos.index.language import (
    ENGLISH_STOP_WORDS,
    FRENCH_STOP_WORDS,
    detect_language,
    is_stop_word,
)


@pytest.mark.parametrize(
    "question",
    [
        "Quel est le montant de la dernière facture de Dupont SARL ?",
        "Qui a signé le bail commercial de la SCI Les Tilleuls ?",
        "Combien d'employeurs",
        "Où travaille Gilbert Dupont?",
        "Quand Oséo a fusionné ?",
        "Quelle rumeur se propage ?",
        "comment nomme t'on cet environnement",
        "Pourquoi Martin conteste-t-il la facture 2024-117 ?",
        "Peut-on résilier le contrat d'assurance ?",
        "Résiliation bail Martin",  # no function word: its accents say French
    ],
)
def test_french_questions_are_french_whatever_the_default(question: str) -> None:
    assert detect_language(question, "en") == "fr"
    assert detect_language(question, None) == "fr"


@pytest.mark.parametrize(
    "question",
    [
        "How much does Acme owe us?",
        "When was the contract signed?",
        "Who approved the dividend?",
        "What is the hourly rate in the engagement letter?",
        "What did Jean-Pierre Lefèvre sign?",
        "Is the NDA with Société Générale still valid?",  # French names, English question
        "Which invoices are overdue?",
        "Activation of PPM1D enhances p53 function.",
    ],
)
def test_english_questions_are_english_whatever_the_default(question: str) -> None:
    assert detect_language(question, "fr") == "en"
    assert detect_language(question, None) == "en"


@pytest.mark.parametrize(
    "question", ["SIRET 123 456 789", "Dupont invoice 2024-117", "aspirin heart attack risk", ""]
)
def test_a_question_that_says_nothing_takes_the_default(question: str) -> None:
    assert detect_language(question, None) is None
    assert detect_language(question, "en") == "en"
    assert detect_language(question) == "fr"  # the firms are French


def test_a_typographic_apostrophe_is_a_plain_one() -> None:
    assert detect_language("Qu’en dit l’avenant ?", None) == "fr"


def test_a_passage_is_told_by_its_function_words_not_its_names() -> None:
    english = (
        "The agreement between Société Générale and Dupont SARL was signed in Paris on "
        "3 March; it is governed by French law."
    )
    french = "Le contrat conclu avec Acme Ltd est résilié par lettre recommandée."
    assert detect_language(english) == "en"
    assert detect_language(french) == "fr"


def test_stop_words_of_both_languages_accented_or_not() -> None:
    assert all(is_stop_word(word) for word in ("le", "où", "qu", "the", "which"))
    assert not any(is_stop_word(word) for word in ("contrat", "bail", "invoice", "2024"))
    assert {"a", "on"} <= FRENCH_STOP_WORDS & ENGLISH_STOP_WORDS
