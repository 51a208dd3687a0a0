"""Turn one file into text elements, locally.

Everything runs on this machine: unstructured's local partitioners (never the
hosted API), LibreOffice for legacy Office files, tesseract for scans. No
model is downloaded: unstructured's spaCy loader is replaced by a blank
pipeline (:mod:`huisclos.connectors.offline_nlp`), PDFs use the ``fast``
strategy (text layer) and ``ocr_only`` for pages without text, never
``hi_res``.

Failures raise :class:`~huisclos.config.errors.ParseError` whose ``reason`` is
one of :data:`REASONS`. Nothing here logs document text: only file kinds,
reasons and exception type names.

This module checks the file and dispatches on its kind; the formats live in
``formats_text`` (plain text, markup), ``formats_office`` (Word, Excel,
PowerPoint, ODF, LibreOffice for legacy files), ``formats_pdf`` (PDF, images,
OCR), ``formats_email`` (.eml, .msg, attachments) and ``formats_archive``
(.zip, .mbox: each member its own source, zip-bomb limits). Example::

    from huisclos.connectors.convert import convert_file

    for element in convert_file(Path("facture.pdf"), "pdf", ocr_languages="fra+eng"):
        print(element.page, element.text)
"""

from __future__ import annotations

import functools
import logging
import re
import stat
from collections.abc import Callable
from pathlib import Path

import huisclos.config  # noqa: F401  (privacy switches before unstructured is imported)
from huisclos.config.errors import ParseError
from huisclos.connectors.elements import TextElement, ensure_unstructured
from huisclos.connectors.formats_archive import convert_mbox, convert_zip
from huisclos.connectors.formats_email import convert_eml, convert_msg
from huisclos.connectors.formats_office import (
    LIBREOFFICE_TARGETS,
    convert_docx,
    convert_legacy,
    convert_odt,
    convert_pptx,
    convert_xls,
    convert_xlsx,
)
from huisclos.connectors.formats_pdf import convert_image, convert_pdf
from huisclos.connectors.formats_text import convert_text
from huisclos.connectors.kinds import IMAGE_KINDS, SUPPORTED_KINDS
from huisclos.connectors.reasons import (
    CONVERTER_MISSING,
    CORRUPT,
    EMPTY,
    PASSWORD_PROTECTED,
    REASONS,
    TIMED_OUT,
    TOO_LARGE,
    UNSUPPORTED,
    VANISHED,
    reason_for,
)

__all__ = [
    "CONVERTER_MISSING",
    "CORRUPT",
    "EMPTY",
    "PASSWORD_PROTECTED",
    "REASONS",
    "SUPPORTED_KINDS",
    "TIMED_OUT",
    "TOO_LARGE",
    "UNSUPPORTED",
    "VANISHED",
    "TextElement",
    "convert_file",
    "prepare",
]

log = logging.getLogger(__name__)


_PARSER_MODULES = (
    "unstructured.partition.text",
    "unstructured.partition.html",
    "unstructured.partition.md",
    "unstructured.partition.csv",
    "unstructured.partition.docx",
    "unstructured.partition.pptx",
    "unstructured.partition.xlsx",
    "unstructured.partition.pdf",
)


def prepare() -> None:
    """Load the parsers now (several seconds, once per process).

    Without it the first file of each kind pays the import cost, and could be
    failed as timed out for it.
    """
    import importlib
    import warnings

    # unstructured warns on every guessed text encoding: noise for the user, and the
    # reason of a real failure is recorded per file anyway
    warnings.filterwarnings("ignore", message="The file encoding was inferred")
    ensure_unstructured()
    for name in _PARSER_MODULES:
        importlib.import_module(name)


def convert_file(
    path: Path,
    kind: str,
    *,
    ocr_languages: str = "fra+eng",
    max_bytes: int | None = None,
) -> list[TextElement]:
    """Convert ``path`` (of type ``kind``, an extension without dot) into text elements.

    Args:
        path: the file to read.
        kind: its type, an extension in :data:`SUPPORTED_KINDS` (case and a leading dot ignored).
        ocr_languages: tesseract languages for scans, e.g. ``"fra+eng"``.
        max_bytes: refuse files (and skip attachments) larger than this.

    Returns:
        The non-empty text elements, in reading order.

    Raises:
        ParseError: with ``reason`` in :data:`REASONS`.
    """
    return _convert(Path(path), kind, ocr_languages=ocr_languages, max_bytes=max_bytes, depth=0)


def _convert(
    path: Path, kind: str, *, ocr_languages: str, max_bytes: int | None, depth: int
) -> list[TextElement]:
    kind = kind.lower().lstrip(".")
    if kind not in SUPPORTED_KINDS:
        raise ParseError(UNSUPPORTED)
    languages = _tesseract_languages(ocr_languages)
    try:
        before = path.stat()
    except FileNotFoundError as exc:
        raise ParseError(VANISHED) from exc
    except OSError as exc:
        raise ParseError(CORRUPT) from exc
    if not stat.S_ISREG(before.st_mode):
        raise ParseError(UNSUPPORTED)
    if max_bytes is not None and before.st_size > max_bytes:
        raise ParseError(TOO_LARGE)
    if before.st_size == 0:
        raise ParseError(EMPTY)

    try:
        elements = _HANDLERS[kind](path, kind, languages, max_bytes, depth)
    except ParseError:
        raise
    except Exception as exc:
        reason = reason_for(exc, path)
        log.info("cannot convert a .%s file: %s (%s)", kind, reason, type(exc).__name__)
        raise ParseError(reason) from exc

    try:
        after = path.stat()
    except FileNotFoundError as exc:
        raise ParseError(VANISHED) from exc
    if (after.st_size, after.st_mtime_ns) != (before.st_size, before.st_mtime_ns):
        raise ParseError(VANISHED)

    elements = [e for e in elements if e.text]
    if not elements:
        raise ParseError(EMPTY)
    return elements


def _tesseract_languages(ocr_languages: str) -> list[str]:
    langs = [part.strip() for part in re.split(r"[+,\s]+", ocr_languages or "") if part.strip()]
    return langs or ["eng"]


_Handler = Callable[[Path, str, list[str], int | None, int], list[TextElement]]
"""A format handler: (path, kind, tesseract languages, max_bytes, attachment depth)."""

_HANDLERS: dict[str, _Handler] = {
    "pdf": convert_pdf,
    "docx": convert_docx,
    "doc": convert_legacy,
    "ppt": convert_legacy,
    "pptx": convert_pptx,
    "xlsx": convert_xlsx,
    "xls": convert_xls,
    "odt": convert_odt,
    "txt": convert_text,
    "html": convert_text,
    "htm": convert_text,
    "md": convert_text,
    "rtf": convert_text,
    "csv": convert_text,
    "tsv": convert_text,
    "rst": convert_text,
    "org": convert_text,
    "epub": convert_text,
    **{kind: convert_legacy for kind in LIBREOFFICE_TARGETS},
    # attachments, members and messages are converted by this same dispatcher, one level deeper
    "eml": functools.partial(convert_eml, convert=_convert),
    "msg": functools.partial(convert_msg, convert=_convert),
    "mbox": functools.partial(convert_mbox, convert=_convert),
    "zip": functools.partial(convert_zip, convert=_convert),
    **{kind: convert_image for kind in IMAGE_KINDS},
}
assert set(_HANDLERS) == SUPPORTED_KINDS
