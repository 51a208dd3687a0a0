"""Text analysis for the keyword (sparse) index: words to stemmed terms.

French and English, from one function:

- Unicode NFKC, lower case, typographic apostrophes made plain;
- words are runs of letters and digits; apostrophes and hyphens split them,
  so elided articles (``l'``, ``d'``, ``qu'``, ``jusqu'``...) become tokens of
  their own, which are stop words;
- stop words of both languages are dropped (on the accented and the
  accent-free form, so "déjà" and "deja" both go);
- each remaining word is folded to its accent-free form (people type
  "resiliation" as often as "résiliation"), then stemmed by the Snowball
  stemmer of the text's language (French or English, told from its function
  words): "résiliation", "Résiliations" and "resiliation" are one term;
  numbers and identifiers ("2024", "117", "fr76") are kept as they are.

A query does not always say its language, and a French question may target
an English document: :func:`query_terms` gives the stems of both languages.

Example::

    >>> document_terms("Les résiliations du contrat d'assurance")
    Counter({'resili': 1, 'contrat': 1, 'assur': 1})
"""

from __future__ import annotations

import functools
import re
import threading
import unicodedata
from collections import Counter
from collections.abc import Iterable
from typing import Literal, overload

__all__ = ["Language", "analyse", "document_terms", "fold", "query_terms", "text_language", "words"]

Language = Literal["fr", "en"]


def _word_set(text: str) -> frozenset[str]:
    return frozenset(text.split())


_FRENCH_STOP = _word_set(
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
_ENGLISH_STOP = _word_set(
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
_FRENCH_MARKERS = _word_set(
    "le la les des du de est et un une dans pour que qui pas sur au aux avec sont ce cette il "
    "elle ne par ou en d l qu"
)
_ENGLISH_MARKERS = _word_set(
    "the and of to is in that for with are was on by this be it as from or an which were has "
    "have not"
)
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


@overload
def text_language(tokens: Iterable[str]) -> Language: ...


@overload
def text_language(tokens: Iterable[str], default: None) -> Language | None: ...


def text_language(tokens: Iterable[str], default: Language | None = "fr") -> Language | None:
    """French or English, by function words; ``default`` on a tie (French: the firms are)."""
    french = english = 0
    for token in tokens:
        french += token in _FRENCH_MARKERS
        english += token in _ENGLISH_MARKERS
    if english == french:
        return default
    return "en" if english > french else "fr"


@functools.lru_cache(maxsize=200_000)
def _is_stop(word: str) -> bool:
    if word in _FRENCH_STOP or word in _ENGLISH_STOP:
        return True
    folded = fold(word)
    return folded != word and (folded in _FRENCH_STOP or folded in _ENGLISH_STOP)


_local = threading.local()


def _stemmer(language: Language) -> object:
    stemmers: dict[str, object] | None = getattr(_local, "stemmers", None)
    if stemmers is None:
        import Stemmer  # PyStemmer: C Snowball stemmers; one instance per thread

        stemmers = {
            "fr": Stemmer.Stemmer("french", 20_000),
            "en": Stemmer.Stemmer("english", 20_000),
        }
        _local.stemmers = stemmers
    return stemmers[language]


def _stems(tokens: list[str], language: Language) -> list[str]:
    kept = [_folded(token) for token in tokens if not _is_stop(token)]
    stemmed: list[str] = _stemmer(language).stemWords(kept)  # type: ignore[attr-defined]
    return stemmed


@functools.lru_cache(maxsize=200_000)
def _folded(word: str) -> str:
    return word if word.isascii() else fold(word)


def analyse(text: str) -> tuple[Language, Counter[str]]:
    """The language of a passage, and its terms with their counts."""
    tokens = words(text)
    language = text_language(tokens)
    return language, Counter(_stems(tokens, language))


def document_terms(text: str, language: Language | None = None) -> Counter[str]:
    """Terms of a passage with their counts, stemmed in its language (told if not given)."""
    tokens = words(text)
    return Counter(_stems(tokens, language or text_language(tokens)))


def query_terms(text: str) -> list[str]:
    """Distinct terms of a query: its words stemmed as French and as English."""
    tokens = words(text)
    return list(dict.fromkeys(_stems(tokens, "fr") + _stems(tokens, "en")))
