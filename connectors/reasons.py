"""Why a file could not be converted, and how library errors map to a reason.

Every conversion failure is a :class:`~huisclos.config.errors.ParseError`
whose ``reason`` is one of :data:`REASONS`. Third-party exceptions (pypdf,
pdfminer, unstructured, olefile, tesseract, LibreOffice…) are translated by
:func:`reason_for`.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

__all__ = [
    "CONVERTER_MISSING",
    "CORRUPT",
    "EMPTY",
    "PASSWORD_PROTECTED",
    "REASONS",
    "TIMED_OUT",
    "TOO_LARGE",
    "UNSUPPORTED",
    "VANISHED",
    "reason_for",
]

PASSWORD_PROTECTED = "password-protected"
CORRUPT = "corrupt or unreadable"
UNSUPPORTED = "unsupported type"
EMPTY = "empty: no text found"
TOO_LARGE = "too large"
TIMED_OUT = "timed out"
VANISHED = "vanished or changed during read"
CONVERTER_MISSING = "converter unavailable"  # LibreOffice / tesseract / pandoc not installed

REASONS: frozenset[str] = frozenset(
    {
        PASSWORD_PROTECTED,
        CORRUPT,
        UNSUPPORTED,
        EMPTY,
        TOO_LARGE,
        TIMED_OUT,
        VANISHED,
        CONVERTER_MISSING,
    }
)

_CONVERTER_BINARIES = frozenset({"soffice", "tesseract", "pandoc", "pdftoppm", "pdfinfo"})


def reason_for(exc: BaseException, path: Path) -> str:
    """Map a library exception raised while converting ``path`` to one of :data:`REASONS`."""
    if isinstance(exc, MemoryError):
        return TOO_LARGE
    if isinstance(exc, subprocess.TimeoutExpired | TimeoutError):
        return TIMED_OUT
    if isinstance(exc, FileNotFoundError):
        # the document itself, or one of our temp files / a binary that is missing
        if not path.exists():
            return VANISHED
        if exc.filename and Path(str(exc.filename)).name in _CONVERTER_BINARIES:
            return CONVERTER_MISSING
        return CORRUPT
    name = type(exc).__name__
    message = str(exc).lower()
    if name == "UnprocessableEntityError":
        if "password" in message or "encrypt" in message:
            return PASSWORD_PROTECTED
        if "maximum" in message and "cells" in message:
            return TOO_LARGE
        return CORRUPT
    if (
        name in {"TesseractNotFoundError", "PDFInfoNotInstalledError"}
        or "no pandoc was found" in message
    ):
        return CONVERTER_MISSING
    if name in {
        "FileNotDecryptedError",
        "PDFPasswordIncorrect",
        "PDFEncryptionError",
        "InvalidKeyError",
        "DecryptionError",
    }:
        return PASSWORD_PROTECTED
    if name in {
        "PageCountExceededError",
        "DecompressedSizeExceededError",
        "DecompressionBombError",
    }:
        return TOO_LARGE
    if name == "TesseractError" and "timeout" in message:
        return TIMED_OUT
    # Everything else is a parser failing on malformed input: truncated zips (BadZipFile), bad
    # XML (lxml), broken OLE streams (olefile), pdfminer/pypdf syntax errors, xlrd/openpyxl
    # errors, or ValueError/KeyError/IndexError/AttributeError raised deep inside a parser.
    return CORRUPT
