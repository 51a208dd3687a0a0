"""French or English: the one language detector, and the stop words of each language.

Three facts live here and nowhere else, so that search, the keyword index,
the answer's prompt and the evaluation never disagree on them:

- :data:`Language`, the languages huisclos speaks;
- :func:`detect_language`, what language a question or a passage is in. It
  counts *marker* words, short function words frequent in one language and
  (almost) absent from the other: "le", "est", "quel", "combien"... against
  "the", "is", "what", "how"... The one with more wins. On a tie (no marker,
  or as many of each) an accented letter (é, è, à, ç...) says French;
  otherwise the caller's ``default`` holds. A word of both languages ("a",
  "plus", "son") is no marker of either;
- :data:`FRENCH_STOP_WORDS`, :data:`ENGLISH_STOP_WORDS` and
  :func:`is_stop_word`: words that carry no meaning of their own, dropped from
  the keyword index's terms and from the evaluation's content words.

Two lists per language, each with one job: the markers tell the language,
the stop words are dropped from terms. They overlap but are not the same
(a stop word of both languages, such as "a", marks neither).

Invariants. The stop words decide which term ids the keyword index stores:
changing them changes what indexing writes for the same text, so it must go
with a new ``ANALYSIS`` version in :mod:`huisclos.index.keywords` (which
rebuilds every vault's keyword index). They are the keyword index's lists,
unchanged. The detector tells each passage's language when it is indexed
(its stemmer, whether it gets an English embedding) and each question's
(search, the prompt, the answer): one function, so a question is never French
for one and English for the other. A passage keeps the language it was told
when indexed; a query is stemmed in both languages, so a passage the detector
would now tell otherwise is still found. On a passage a tie is French (the
firms are); an accent says so too, so the accent rule changes nothing there.

Example::

    >>> detect_language("How much does Acme owe us?")
    'en'
    >>> detect_language("Combien d'employeurs ?", "en")
    'fr'
"""

from __future__ import annotations

import functools
import re
import unicodedata
from collections.abc import Iterable
from typing import Literal, overload

__all__ = [
    "ENGLISH_STOP_WORDS",
    "FRENCH_STOP_WORDS",
    "Language",
    "detect_language",
    "fold",
    "is_stop_word",
    "text_language",
    "words",
]

Language = Literal["fr", "en"]
"""The languages huisclos speaks (answers, prompts, stemmers, the register)."""


def _word_set(text: str) -> frozenset[str]:
    return frozenset(text.split())


FRENCH_STOP_WORDS = _word_set(
    """
    a à afin ai aie aient aies ait alors as au aucun aucune auquel aura aurai auraient aurais
    aurait auras aurez auriez aurions aurons auront aussi autre autres aux auxquelles auxquels
    avaient avais avait avant avec avez aviez avions avoir avons ayant ayez ayons bon c ça car ce
    ceci cela celle celles celui cependant certain certaine certaines certains ces cet cette ceux
    chaque chez ci comme comment d dans de des donc dont du elle elles en encore entre es est et
    étaient étais était étant été êtes étiez étions être eu eue eues eûmes eurent eus eusse
    eussent eusses eussiez eussions eut eût eûtes eux fait fais faisait faut fûmes furent fus
    fusse fussent fusses fussiez fussions fut fût fûtes hui ici il ils j je jusqu l la là laquelle
    le lequel les lesquelles lesquels leur leurs lors lorsqu lorsque lui m ma mais me même mêmes
    mes moi mon n ne ni nos notre nous on ont ou où par parce pas peu peut plus pour pourquoi
    puis puisqu puisque qu quand que quel quelle quelles quels qui quoi s sa sans se sera serai
    seraient serais serait seras serez seriez serions serons seront ses si sien sienne soi soient
    sois soit sommes son sont sous soyez soyons suis sur t ta te tes toi ton tous tout toute
    toutes très tu un une unes uns vers via vos votre vous y
    """
)
"""French words dropped from index terms (elided forms "l", "d", "qu"... included)."""

ENGLISH_STOP_WORDS = _word_set(
    """
    a about above after again against all am an and any are as at be because been before being
    below between both but by can could did do does doing down during each few for from further
    had has have having he her here hers herself him himself his how i if in into is it its
    itself just me more most my myself no nor not now of off on once only or other our ours
    ourselves out over own same she should so some such than that the their theirs them
    themselves then there these they this those through to too under until up very was we were
    what when where which while who whom why will with would you your yours yourself yourselves
    """
)
"""English words dropped from index terms."""

_FRENCH_MARKERS = _word_set(
    """
    le la les un une des du de d l qu est sont ont et ou ne pas par pour dans sur avec sans au
    aux en ce ces cet cette il elle ils elles nous vous se sa mes notre votre vos leur leurs que
    qui quoi quel quelle quels quelles où comment pourquoi combien quand peut faut doit
    """
)
"""Words that say French. Not "a" (il a, a letter), "on", "plus", "son", "nos", "mon", "ma":
English words too ("on" says English)."""

_ENGLISH_MARKERS = _word_set(
    """
    the an and or of to in on at for with without by from as is are was were be been has have
    does do did can could should would it its his her my our your their this that these those
    which what who whom whose where when why how much many any not no
    """
)
"""Words that say English. Not "a" (a French verb too)."""

_FRENCH_LETTERS = frozenset("éèêàùçôîûœ")
"""Letters of French words, not of English ones: a tie-breaker (names aside)."""

_WORD = re.compile(r"[^\W_]+", re.UNICODE)
_MAX_WORD = 40
"""Longer runs (base64, hashes) are not words anyone searches for."""


def fold(word: str) -> str:
    """The accent-free form of a word ("Élision" → "elision")."""
    decomposed = unicodedata.normalize("NFKD", word)
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch))


def words(text: str) -> list[str]:
    """Lower-case words of ``text``, apostrophes and hyphens splitting them."""
    text = unicodedata.normalize("NFKC", text).lower().replace("’", "'")
    return [w for w in _WORD.findall(text) if len(w) <= _MAX_WORD]


@functools.lru_cache(maxsize=200_000)
def is_stop_word(word: str) -> bool:
    """Whether a lower-case word is a stop word of either language, accented or not."""
    if word in FRENCH_STOP_WORDS or word in ENGLISH_STOP_WORDS:
        return True
    folded = fold(word)
    return folded != word and (folded in FRENCH_STOP_WORDS or folded in ENGLISH_STOP_WORDS)


@overload
def text_language(tokens: Iterable[str], default: Language = "fr") -> Language: ...


@overload
def text_language(tokens: Iterable[str], default: None) -> Language | None: ...


def text_language(tokens: Iterable[str], default: Language | None = "fr") -> Language | None:
    """The language of already split :func:`words` (see the module docstring for the rule).

    Returns:
        "fr" or "en"; ``default`` when nothing tells them apart (``None`` to know that).
    """
    french = english = 0
    accented = False
    for token in tokens:
        french += token in _FRENCH_MARKERS
        english += token in _ENGLISH_MARKERS
        accented = accented or not _FRENCH_LETTERS.isdisjoint(token)
    if english != french:
        return "en" if english > french else "fr"
    return "fr" if accented else default


@overload
def detect_language(text: str, default: Language = "fr") -> Language: ...


@overload
def detect_language(text: str, default: None) -> Language | None: ...


def detect_language(text: str, default: Language | None = "fr") -> Language | None:
    """French or English: the language of a question or a passage.

    Args:
        text: any text; only its words count.
        default: the answer when nothing tells the languages apart (``None`` to know that).

    Returns:
        "fr" or "en", or ``default``.
    """
    return text_language(words(text), default)
