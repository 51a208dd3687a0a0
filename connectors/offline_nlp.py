"""Keep unstructured's NLP helpers offline.

unstructured 0.27 classifies elements with spaCy. On first use
``unstructured.nlp.tokenize._get_nlp()`` calls ``_load_spacy_model()``, which
tries ``spacy.load("en_core_web_sm")`` and, when that model is missing,
downloads the wheel from GitHub and installs it into site-packages. Offline
that fails (txt, eml, md, html, docx, pptx, pdf "fast" all reach it).

:func:`install_offline_nlp` replaces ``unstructured.nlp.tokenize._get_nlp``
(an ``lru_cache``-wrapped loader, looked up as a module global by
``_run_pipeline``) with one returning a blank multilingual spaCy pipeline with
a rule-based sentencizer. It needs no model data. The blank pipeline has no
part-of-speech tagger, so unstructured's "narrative text" heuristic finds no
verbs and labels prose ``Title``/``Text`` instead of ``NarrativeText``; the
text itself is unchanged, and huisclos only keeps the text.

The downloader (``_install_spacy_model``) is also replaced by a function that
refuses, so no code path can reach the network.
"""

from __future__ import annotations

import functools
import threading

import huisclos.config  # noqa: F401  (privacy switches before unstructured is imported)

__all__ = ["install_offline_nlp"]

_lock = threading.Lock()
_installed = False


def _refuse_download() -> None:
    raise RuntimeError("huisclos: unstructured tried to download a spaCy model; refused (offline)")


def install_offline_nlp() -> None:
    """Install the blank spaCy pipeline in unstructured (idempotent, thread-safe)."""
    global _installed
    if _installed:
        return
    with _lock:
        if _installed:
            return
        import spacy
        import unstructured.nlp.tokenize as tokenize

        nlp = spacy.blank("xx")  # multilingual tokenizer rules, no model data
        nlp.add_pipe("sentencizer")

        @functools.lru_cache(maxsize=1)
        def _get_nlp() -> spacy.language.Language:
            return nlp

        tokenize._get_nlp = _get_nlp
        tokenize._install_spacy_model = _refuse_download
        # Drop anything cached before the swap (nothing, unless a caller partitioned early).
        for name in ("_process_cached", "word_tokenize", "pos_tag", "_tokenize_for_cache"):
            cached = getattr(tokenize, name, None)
            if cached is not None and hasattr(cached, "cache_clear"):
                cached.cache_clear()
        _installed = True
