"""The file kinds huisclos converts, and how a file's kind is recognised.

A kind is a lower-case extension without the dot (``"pdf"``, ``"docx"``).
E-mail attachments are recognised by name, else by MIME type; Office and
Outlook files by their first bytes.
"""

from __future__ import annotations

import mimetypes
from pathlib import Path

__all__ = [
    "IMAGE_KINDS",
    "OLE_MAGIC",
    "SUPPORTED_KINDS",
    "ZIP_MAGIC",
    "attachment_kind",
    "head",
]

IMAGE_KINDS: frozenset[str] = frozenset({"png", "jpg", "jpeg", "tif", "tiff", "bmp", "webp"})
SUPPORTED_KINDS: frozenset[str] = frozenset(
    {
        "pdf",
        "docx",
        "doc",
        "xlsx",
        "xls",
        "csv",
        "pptx",
        "ppt",
        "odt",
        "rtf",
        "html",
        "htm",
        "md",
        "txt",
        "eml",
        "msg",
        "mbox",
        "zip",
        "tsv",
        "rst",
        "org",
        "epub",
        "docm",
        "pptm",
        "xlsm",
        "xlsb",
        "ods",
        "odp",
    }
    | IMAGE_KINDS
)

OLE_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
"""First bytes of an OLE compound file (.doc/.xls/.ppt/.msg, encrypted OOXML)."""
ZIP_MAGIC = b"PK\x03\x04"
"""First bytes of a zip archive (.docx/.xlsx/.pptx/.odt)."""

_MIME_KINDS = {
    "application/pdf": "pdf",
    "application/msword": "doc",
    "application/vnd.openxmlformats-officedocument.wordprocessingml.document": "docx",
    "application/vnd.ms-excel": "xls",
    "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet": "xlsx",
    "application/vnd.ms-powerpoint": "ppt",
    "application/vnd.openxmlformats-officedocument.presentationml.presentation": "pptx",
    "application/vnd.oasis.opendocument.text": "odt",
    "application/rtf": "rtf",
    "text/rtf": "rtf",
    "text/csv": "csv",
    "text/html": "html",
    "text/markdown": "md",
    "text/plain": "txt",
    "message/rfc822": "eml",
    "application/vnd.ms-outlook": "msg",
    "application/mbox": "mbox",
    "application/zip": "zip",
    "application/x-zip-compressed": "zip",
    "application/epub+zip": "epub",
    "text/tab-separated-values": "tsv",
    "application/vnd.oasis.opendocument.spreadsheet": "ods",
    "application/vnd.oasis.opendocument.presentation": "odp",
    "image/png": "png",
    "image/jpeg": "jpg",
    "image/tiff": "tiff",
}


def head(path: Path, size: int = 8) -> bytes:
    """The first ``size`` bytes of ``path``."""
    with path.open("rb") as fh:
        return fh.read(size)


def attachment_kind(name: str, mime: str | None) -> str | None:
    """The kind of an attachment called ``name`` with MIME type ``mime``; None if unsupported.

    The extension wins; the MIME type is used only when the name has none.
    """
    suffix = Path(name).suffix.lower().lstrip(".")
    if suffix in SUPPORTED_KINDS:
        return suffix
    if mime:
        kind = _MIME_KINDS.get(mime.lower().split(";", 1)[0].strip())
        if kind is None:
            guessed = mimetypes.guess_extension(mime.split(";", 1)[0].strip()) or ""
            kind = guessed.lstrip(".") or None
        if kind in SUPPORTED_KINDS and not suffix:
            return kind
    return None
