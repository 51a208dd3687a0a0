"""The answer judge used by the evaluation and the spf acceptance test."""

from __future__ import annotations

import pytest

from huisclos.pipeline.evaluation.answers import is_yes_no_question, score_answer


@pytest.mark.parametrize(
    "question",
    [
        "Peut-on changer le nom d'un enfant mineur ?",
        "Un intérimaire a-t-il droit au projet de transition professionnelle (PTP) ?",
        "Le RSA donne t-il droit à d'autres aides (complémentaire santé, transports...) ?",
        "Impôt sur le revenu : peut-on payer par prélèvements mensuels (mensualisation) ?",
        "Est-on couvert par l'assurance auto lors d'un voyage à l'étranger ?",
        "Est-ce que les couleurs ont été changées ?",
        "Un étranger qui s'installe en France doit-il y faire immatriculer son véhicule ?",
        "Can a client ask for their file to be erased?",
    ],
)
def test_closed_questions_are_recognised(question: str) -> None:
    assert is_yes_no_question(question)


@pytest.mark.parametrize(
    "question",
    [
        "Qu'est-ce que la médiation familiale ?",
        "Combien de trimestres faut-il avoir cotisé pour avoir sa retraite à taux plein ?",
        "Dans quels cas peut-on demander le déblocage anticipé de l'épargne salariale ?",
        "Avec qui Louis XI entre-t-il en conflit ?",
        "Auprès de qui Gesualdo cherche-t-il une épouse pour son fils ?",
        "Au sein de quel club Albert Provost exerçait-t-il la fonction de président ?",
        "Quel est le montant de la dernière facture de Dupont SARL ?",
        "What are the quarterly fees?",
    ],
)
def test_open_questions_are_not_yes_no(question: str) -> None:
    assert not is_yes_no_question(question)


def test_the_expected_span_inside_the_answer_is_correct() -> None:
    correct, f1 = score_answer("Le montant est de 4 860,00 € [1].", ["4 860,00 €"])
    assert correct and 0 < f1 < 1


def test_half_the_content_words_of_a_long_span_is_correct() -> None:
    expected = ["vous pouvez choisir de conserver le véhicule ou de le rendre à son propriétaire"]
    assert score_answer("Vous pouvez conserver le véhicule ou le rendre. [1]", expected)[0]
    assert not score_answer("Le contrat de crédit-bail se termine. [2]", expected)[0]


def test_a_yes_matching_a_positive_span_on_its_subject_is_correct() -> None:
    question = "Un intérimaire a-t-il droit au projet de transition professionnelle (PTP) ?"
    expected = ["peut bénéficier, sous conditions, d'un congé pour transition professionnelle"]
    assert score_answer("Oui, il a droit à la transition professionnelle. [2]", expected, question)[
        0
    ]
    assert not score_answer("Non, il n'y a pas droit. [2]", expected, question)[0]
    # without the question, a bare yes proves nothing
    assert not score_answer("Oui, il a droit à la transition professionnelle. [2]", expected)[0]


def test_a_yes_to_a_span_that_says_no_is_wrong() -> None:
    question = "Impôt sur le revenu : peut-on payer par prélèvements mensuels (mensualisation) ?"
    expected = ["le paiement par prélèvement mensuel de l'impôt sur le revenu n'est plus possible."]
    assert not score_answer("Oui, par prélèvements mensuels. [1]", expected, question)[0]
    assert score_answer("Non, le prélèvement mensuel n'existe plus. [1]", expected, question)[0]


def test_a_yes_on_another_subject_or_to_it_depends_is_not_enough() -> None:
    question = "Pétunia parvient-elle a être acceptée à Poudlard ?"
    assert not score_answer("Oui, elle y parvient. [1]", ["en vain"], question)[0]
    question = "Peut-on forcer un propriétaire à faire insonoriser son logement ?"
    expected = ["Tout dépend de la nature du logement"]
    assert not score_answer("Oui, toujours. [1]", expected, question)[0]
    assert score_answer("Non. [1]", ["Non"], question)[0]
