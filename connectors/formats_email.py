"""E-mails (.eml, Outlook .msg) and their attachments.

The headers (subject, sender, recipients, date) become one element, then the
body (plain text, else HTML). Each attachment is detached into a temporary
file and converted like any other file, through the converter the caller
passes in (so this module does not depend on the dispatch in
:mod:`huisclos.connectors.convert`); its elements carry its name as
``source``. An attachment that cannot be converted is skipped and logged by
reason, never fatal. E-mails attached to e-mails are followed
:data:`MAX_ATTACHMENT_DEPTH` deep.
"""

from __future__ import annotations

import email
import email.policy
import logging
import os
import tempfile
from collections.abc import Iterable, Iterator
from email.message import Message, MIMEPart
from pathlib import Path
from typing import Protocol

from huisclos.config.errors import ParseError
from huisclos.connectors.elements import TextElement, ensure_unstructured
from huisclos.connectors.formats_text import body_elements
from huisclos.connectors.kinds import OLE_MAGIC, attachment_kind, head
from huisclos.connectors.reasons import (
    CORRUPT,
    EMPTY,
    PASSWORD_PROTECTED,
    TOO_LARGE,
    UNSUPPORTED,
)

__all__ = [
    "CONTAINER_KINDS",
    "MAX_ATTACHMENT_DEPTH",
    "Converter",
    "convert_attachment",
    "convert_eml",
    "convert_msg",
]

log = logging.getLogger(__name__)

MAX_ATTACHMENT_DEPTH = 3
"""E-mails attached to e-mails (and archives in archives) are followed this deep."""
CONTAINER_KINDS = frozenset({"eml", "msg", "mbox", "zip"})
"""Kinds that hold other files."""


class Converter(Protocol):
    """Converts one detached attachment file (the signature of the dispatcher)."""

    def __call__(
        self, path: Path, kind: str, *, ocr_languages: str, max_bytes: int | None, depth: int
    ) -> list[TextElement]: ...


# -- attachments --------------------------------------------------------------


def _safe_name(raw: str | None, fallback: str) -> str:
    name = os.path.basename((raw or "").replace("\\", "/")).replace("\0", "").strip()
    return name if name and name not in {".", ".."} else fallback


def convert_attachment(
    name: str,
    data: bytes,
    mime: str | None,
    languages: list[str],
    max_bytes: int | None,
    depth: int,
    convert: Converter,
    kind: str | None = None,
) -> list[TextElement]:
    """Convert one attachment (or archive member, or mailbox message); failures are
    skipped (logged by reason), never fatal. ``kind``: its type, if not told by
    ``name`` or ``mime``."""
    kind = kind or attachment_kind(name, mime)
    if kind is None or not data:
        log.debug("skipping an attachment: %s", UNSUPPORTED if kind is None else EMPTY)
        return []
    if kind in CONTAINER_KINDS and depth >= MAX_ATTACHMENT_DEPTH:
        return []
    if max_bytes is not None and len(data) > max_bytes:
        log.debug("skipping an attachment: %s", TOO_LARGE)
        return []
    with tempfile.TemporaryDirectory(prefix="huisclos-att-") as tmp:
        detached = Path(tmp) / f"attachment.{kind}"
        detached.write_bytes(data)
        try:
            elements = convert(
                detached,
                kind,
                ocr_languages="+".join(languages),
                max_bytes=max_bytes,
                depth=depth + 1,
            )
        except ParseError as exc:
            log.info("skipping a .%s attachment: %s", kind, exc.reason)
            return []
    return [
        TextElement(
            text=e.text,
            page=e.page,
            section=e.section,
            source=name if e.source is None else f"{name}/{e.source}",
        )
        for e in elements
    ]


# -- shared ---------------------------------------------------------------------


def _header_element(fields: Iterable[tuple[str, str | None]]) -> list[TextElement]:
    lines = [f"{label}: {value.strip()}" for label, value in fields if value and value.strip()]
    return [TextElement(text="\n".join(lines))] if lines else []


def _is_encrypted_mime(content_type: str) -> bool:
    content_type = content_type.lower()
    return "multipart/encrypted" in content_type or (
        "pkcs7-mime" in content_type and "signed-data" not in content_type
    )


# -- .eml -----------------------------------------------------------------------


def convert_eml(
    path: Path,
    kind: str,
    languages: list[str],
    max_bytes: int | None,
    depth: int,
    *,
    convert: Converter,
) -> list[TextElement]:
    """Convert a MIME message: headers, body, and attachments (through ``convert``)."""
    raw = path.read_bytes()
    if raw.startswith((b"\xff\xfe", b"\xfe\xff")):  # a message saved as UTF-16 (or -32) text
        raw = raw.decode(
            "utf-32" if raw.startswith((b"\xff\xfe\x00\x00", b"\x00\x00\xfe\xff")) else "utf-16"
        ).encode()
    message = email.message_from_bytes(raw, policy=email.policy.default)
    if not message.keys() and not message.get_payload():
        raise ParseError(CORRUPT)
    if _is_encrypted_mime(message.get("Content-Type", "")):
        raise ParseError(PASSWORD_PROTECTED)

    header = _header_element(
        (label, str(message.get(label)) if message.get(label) is not None else None)
        for label in ("Subject", "From", "To", "Cc", "Date")
    )
    plain_part = message.get_body(preferencelist=("plain",))
    html_part = message.get_body(preferencelist=("html",)) if plain_part is None else None
    plain = _part_text(plain_part)
    html = _part_text(html_part)
    result = header + body_elements(plain, html)

    body_parts = {id(p) for p in (plain_part, html_part) if p is not None}
    for index, part in enumerate(_leaf_parts(message)):
        if id(part) in body_parts:
            continue
        content_type = part.get_content_type()
        disposition = (part.get_content_disposition() or "").lower()
        filename = part.get_filename()
        if content_type == "message/rfc822":
            payload = part.get_payload()
            inner = payload[0] if isinstance(payload, list) else None
            if not isinstance(inner, Message):
                continue
            data = inner.as_bytes(policy=email.policy.default)
            name = _safe_name(filename, f"message-{index}.eml")
            result += convert_attachment(
                name, data, "message/rfc822", languages, max_bytes, depth, convert
            )
            continue
        if not filename and disposition != "attachment":
            continue  # alternative bodies, inline fragments
        if content_type.startswith("image/") and disposition != "attachment":
            continue  # inline pictures (logos, signatures): not worth OCR
        try:
            decoded = part.get_payload(decode=True)
        except (ValueError, TypeError, AssertionError) as exc:
            log.info("skipping an undecodable e-mail attachment (%s)", type(exc).__name__)
            continue
        data = decoded if isinstance(decoded, bytes) else b""
        name = _safe_name(filename, f"attachment-{index}")
        result += convert_attachment(name, data, content_type, languages, max_bytes, depth, convert)
    return result


def _leaf_parts(part: MIMEPart) -> Iterator[MIMEPart]:
    if part.get_content_maintype() == "multipart":
        for sub in part.iter_parts():
            yield from _leaf_parts(sub)
    else:
        yield part


def _part_text(part: MIMEPart | None) -> str | None:
    if part is None:
        return None
    try:
        # the email package is untyped here; for the text/* parts get_body returns, it is a str
        content = part.get_content()
    except (LookupError, UnicodeError, ValueError, AssertionError):
        content = None
    if isinstance(content, str):
        return content
    payload = part.get_payload(decode=True) or b""
    return payload.decode("utf-8", errors="replace") if isinstance(payload, bytes) else str(payload)


# -- .msg -----------------------------------------------------------------------


def convert_msg(
    path: Path,
    kind: str,
    languages: list[str],
    max_bytes: int | None,
    depth: int,
    *,
    convert: Converter,
) -> list[TextElement]:
    """Convert an Outlook .msg: headers, body, and attachments (through ``convert``)."""
    if head(path) != OLE_MAGIC:
        raise ParseError(CORRUPT)
    ensure_unstructured()
    from oxmsg import Message as OutlookMessage

    message = OutlookMessage.load(str(path))
    headers = message.message_headers
    content_type = headers.get("Content-Type", "") or ""
    message_class = (getattr(message, "message_class", "") or "").lower()
    if _is_encrypted_mime(content_type) or (
        message_class.startswith("ipm.note.smime") and "multipartsigned" not in message_class
    ):
        raise ParseError(PASSWORD_PROTECTED)

    sent = message.sent_date
    sender = getattr(message, "sender", None) or headers.get("From")
    header = _header_element(
        [
            ("Subject", message.subject),
            ("From", sender),
            ("To", headers.get("To")),
            ("Cc", headers.get("Cc")),
            ("Date", sent.isoformat() if sent else headers.get("Date")),
        ]
    )
    plain = message.body
    html = message.html_body if not (plain and plain.strip()) else None
    result = header + body_elements(plain, html)

    for index, attachment in enumerate(message.attachments):
        name = _safe_name(attachment.file_name, f"attachment-{index}")
        data = attachment.file_bytes or b""
        mime = getattr(attachment, "mime_type", None)
        if mime and mime.startswith("image/") and getattr(attachment, "content_id", None):
            continue  # inline pictures referenced by the HTML body
        result += convert_attachment(name, data, mime, languages, max_bytes, depth, convert)
    return result
