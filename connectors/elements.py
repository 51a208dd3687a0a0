"""Text elements, and how they are built from unstructured's elements.

:class:`TextElement` is what every format handler returns. unstructured is set
up once per process (:func:`ensure_unstructured`) before any of its
partitioners is imported: offline spaCy, parser loggers that cannot leak
document text, and code-page aliases for Outlook.
"""

from __future__ import annotations

import codecs
import re
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import huisclos.config  # noqa: F401  (privacy switches before unstructured is imported)

__all__ = ["TextElement", "at_page", "ensure_unstructured", "from_unstructured", "page_number"]


@dataclass(frozen=True, slots=True)
class TextElement:
    """One piece of text from a document.

    ``page`` is 1-based: the PDF page, the slide (pptx/ppt), or the sheet index
    (xlsx/xls); None for other kinds. ``section`` is the sheet name (xlsx/xls)
    or the slide title when known. ``source`` is the attachment's file name
    for text that comes from an e-mail attachment, None for the file itself.
    """

    text: str
    page: int | None = None
    section: str | None = None
    source: str | None = None


_setup_lock = threading.Lock()
_setup_done = False


def ensure_unstructured() -> None:
    """Once per process: offline spaCy for unstructured, quiet parsers, codec aliases."""
    global _setup_done
    if _setup_done:
        return
    with _setup_lock:
        if _setup_done:
            return
        from huisclos.connectors.offline_nlp import install_offline_nlp

        install_offline_nlp()
        codecs.register(_windows_codepage_alias)
        _setup_done = True


def _windows_codepage_alias(name: str) -> codecs.CodecInfo | None:
    """Outlook names code pages "windows-950" etc.; Python knows some only as "cp950"."""
    match = re.fullmatch(r"windows[-_]?(\d{3,5})", name.strip().lower())
    if match is None:
        return None
    try:
        return codecs.lookup(f"cp{match.group(1)}")
    except LookupError:
        return None


def _no_value(element: Any) -> None:
    return None


def from_unstructured(
    elements: Iterable[Any],
    *,
    page: Callable[[Any], int | None] = _no_value,
    section: Callable[[Any], str | None] = _no_value,
) -> list[TextElement]:
    """Keep the non-blank text of unstructured ``elements``, stripped, in order.

    ``page`` and ``section`` compute each element's page number and section name.
    """
    out: list[TextElement] = []
    for element in elements:
        text = (getattr(element, "text", None) or "").strip()
        if not text:
            continue
        out.append(TextElement(text=text, page=page(element), section=section(element)))
    return out


def page_number(element: Any) -> int | None:
    """The page number unstructured recorded in an element's metadata, if any."""
    return getattr(element.metadata, "page_number", None)


def at_page(number: int) -> Callable[[Any], int | None]:
    """A ``page`` function for :func:`from_unstructured` that always answers ``number``."""

    def page(element: Any) -> int | None:
        return number

    return page
