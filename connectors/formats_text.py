"""Plain text and markup: .txt, .html/.htm, .md, .rtf, .csv, and e-mail bodies.

unstructured's local partitioners read these directly; no OCR, no language model
(``languages=[""]`` skips language detection). Plain text takes a shorter road
through unstructured's own pieces (encoding detection, paragraph grouping and
splitting, bullet cleaning) without ``partition_text``'s per-paragraph element
classification, which huisclos does not use and which cost about 90 % of the
time (spaCy tokenization of every paragraph).
"""

from __future__ import annotations

import re
from pathlib import Path

from huisclos.config.errors import ParseError
from huisclos.connectors.elements import TextElement, ensure_unstructured, from_unstructured
from huisclos.connectors.reasons import UNSUPPORTED

__all__ = ["body_elements", "convert_text", "plain_text_elements"]


def plain_text_elements(text: str) -> list[TextElement]:
    """The paragraphs of plain text, as ``partition_text`` cuts and cleans them."""
    ensure_unstructured()
    from unstructured.cleaners.core import auto_paragraph_grouper, clean_bullets
    from unstructured.nlp.patterns import PARAGRAPH_PATTERN
    from unstructured.partition.text import _is_empty_bullet
    from unstructured.partition.text_type import is_bulleted_text

    out = []
    for paragraph in re.split(PARAGRAPH_PATTERN, auto_paragraph_grouper(text).strip()):
        paragraph = paragraph.strip()
        if not paragraph or _is_empty_bullet(paragraph):
            continue
        if is_bulleted_text(paragraph):
            paragraph = clean_bullets(paragraph).strip()
        if paragraph:
            out.append(TextElement(text=paragraph))
    return out


def convert_text(
    path: Path, kind: str, languages: list[str], max_bytes: int | None, depth: int
) -> list[TextElement]:
    """Convert a .txt, .html/.htm, .md, .rtf, .csv/.tsv file, or through pandoc an .rst,
    .org or .epub file."""
    ensure_unstructured()
    if kind == "txt":
        from unstructured.file_utils.encoding import read_txt_file

        return plain_text_elements(read_txt_file(filename=str(path))[1])
    if kind in {"html", "htm"}:
        from unstructured.partition.html import partition_html

        elements = partition_html(
            filename=str(path), languages=[""], skip_headers_and_footers=False
        )
    elif kind == "md":
        from unstructured.partition.md import partition_md

        elements = partition_md(filename=str(path), languages=[""])
    elif kind == "rtf":
        from unstructured.partition.rtf import partition_rtf

        elements = partition_rtf(filename=str(path), languages=[""])
    elif kind == "csv":
        from unstructured.partition.csv import partition_csv

        elements = partition_csv(filename=str(path), languages=[""], infer_table_structure=False)
    elif kind == "tsv":
        from unstructured.partition.tsv import partition_tsv

        elements = partition_tsv(filename=str(path), languages=[""], infer_table_structure=False)
    elif kind in {"rst", "org", "epub"}:
        from unstructured.partition.html import partition_html

        elements = partition_html(text=_pandoc_html(path, kind), languages=[""])
    else:  # pragma: no cover - dispatch table guarantees the kind
        raise ParseError(UNSUPPORTED)
    return from_unstructured(elements)


def body_elements(plain: str | None, html: str | None) -> list[TextElement]:
    """The text of an e-mail body: the plain-text version if it has text, else the HTML one."""
    ensure_unstructured()
    if plain and plain.strip():
        return plain_text_elements(plain)
    if html and html.strip():
        from unstructured.partition.html import partition_html

        return from_unstructured(partition_html(text=html, languages=[""]))
    return []


def _pandoc_html(path: Path, kind: str) -> str:
    """A document converted to HTML by pandoc, sandboxed: a hostile file's include
    directives (``#+INCLUDE: "/etc/passwd"``, ``.. include::``) read nothing."""
    import pypandoc

    return str(
        pypandoc.convert_file(str(path), "html", format=kind, extra_args=["--quiet"], sandbox=True)
    )
