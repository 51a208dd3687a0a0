"""Plain text and markup: .txt, .html/.htm, .md, .rtf, .csv, and e-mail bodies.

unstructured's local partitioners read these directly; no OCR, no language model
(``languages=[""]`` skips language detection).
"""

from __future__ import annotations

from pathlib import Path

from huisclos.config.errors import ParseError
from huisclos.connectors.elements import TextElement, ensure_unstructured, from_unstructured
from huisclos.connectors.reasons import UNSUPPORTED

__all__ = ["body_elements", "convert_text"]


def convert_text(
    path: Path, kind: str, languages: list[str], max_bytes: int | None, depth: int
) -> list[TextElement]:
    """Convert a .txt, .html/.htm, .md, .rtf or .csv file."""
    ensure_unstructured()
    if kind == "txt":
        from unstructured.partition.text import partition_text

        elements = partition_text(filename=str(path), languages=[""])
    elif kind in {"html", "htm"}:
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
    else:  # pragma: no cover - dispatch table guarantees the kind
        raise ParseError(UNSUPPORTED)
    return from_unstructured(elements)


def body_elements(plain: str | None, html: str | None) -> list[TextElement]:
    """The text of an e-mail body: the plain-text version if it has text, else the HTML one."""
    ensure_unstructured()
    if plain and plain.strip():
        from unstructured.partition.text import partition_text

        return from_unstructured(partition_text(text=plain, languages=[""]))
    if html and html.strip():
        from unstructured.partition.html import partition_html

        return from_unstructured(partition_html(text=html, languages=[""]))
    return []
