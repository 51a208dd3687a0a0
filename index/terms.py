"""Text analysis for the keyword (sparse) index: words to stemmed terms.

French and English, from one function:

- Unicode NFKC, lower case, typographic apostrophes made plain;
- words are runs of letters and digits; apostrophes and hyphens split them,
  so elided articles (``l'``, ``d'``, ``qu'``, ``jusqu'``...) become tokens of
  their own, which are stop words;
- stop words of both languages are dropped (on the accented and the
  accent-free form, so "déjà" and "deja" both go);
  :mod:`huisclos.index.language` holds them, and the language detector;
- each remaining word is folded to its accent-free form (people type
  "resiliation" as often as "résiliation"), then stemmed by the Snowball
  stemmer of the text's language (French or English, told by
  :func:`~huisclos.index.language.detect_language`'s rule): "résiliation",
  "Résiliations" and "resiliation" are one term;
  numbers and identifiers ("2024", "117", "fr76") are kept as they are.

A query does not always say its language, and a French question may target
an English document: :func:`query_terms` gives the stems of both languages.

Example::

    >>> document_terms("Les résiliations du contrat d'assurance")
    Counter({'resili': 1, 'contrat': 1, 'assur': 1})
"""

from __future__ import annotations

import functools
import threading
from collections import Counter

from huisclos.index.language import Language, fold, is_stop_word, text_language, words

__all__ = ["analyse", "document_terms", "query_terms"]


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
    kept = [_folded(token) for token in tokens if not is_stop_word(token)]
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
