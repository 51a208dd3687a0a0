"""Zip archives and mailboxes (.mbox): each member converted as its own source.

A member of a zip archive, or a message of a mailbox, is detached into a
temporary file and converted like an e-mail attachment
(:func:`~huisclos.connectors.formats_email.convert_attachment`); its elements
carry the member's path in the archive (or the message's number and subject)
as ``source``, so a citation names the file inside the archive. A member that
cannot be converted is skipped and logged by reason, never fatal.

Hostile archives:

- a member's name is never used as a file-system path (it is detached as
  ``attachment.<kind>`` in a private temporary directory), so a name such as
  ``../../etc/cron.d/x`` or ``/etc/passwd`` cannot write anywhere; as a source
  it is shown cleaned (no ``..``, no leading ``/``, no control characters);
- zip bombs: sizes are counted while decompressing, never taken from the
  headers. The archive is refused as :data:`~huisclos.connectors.reasons.TOO_LARGE`
  when its members, and those of the archives nested in it, expand beyond
  ``max_bytes`` in all (the per-file limit, ``max_file_mb``), when one member
  expands more than :data:`MAX_RATIO` times its compressed size (past
  :data:`RATIO_FLOOR`), or when it lists more than
  :data:`MAX_MEMBERS` members; archives in archives are followed
  :data:`~huisclos.connectors.formats_email.MAX_ATTACHMENT_DEPTH` deep;
- encrypted members are skipped; an archive whose every member is encrypted is
  :data:`~huisclos.connectors.reasons.PASSWORD_PROTECTED`.
"""

from __future__ import annotations

import email
import email.policy
import logging
import mailbox
import re
import zipfile
from contextvars import ContextVar
from pathlib import Path, PurePosixPath

from huisclos.config.errors import ParseError
from huisclos.connectors.elements import TextElement
from huisclos.connectors.formats_email import Converter, convert_attachment
from huisclos.connectors.kinds import attachment_kind
from huisclos.connectors.reasons import CORRUPT, EMPTY, PASSWORD_PROTECTED, TOO_LARGE

__all__ = [
    "DEFAULT_MAX_BYTES",
    "MAX_MEMBERS",
    "MAX_RATIO",
    "RATIO_FLOOR",
    "convert_mbox",
    "convert_zip",
    "member_name",
]

log = logging.getLogger(__name__)

MAX_MEMBERS = 10_000
"""An archive listing more members than this is refused."""
MAX_RATIO = 200
"""A member expanding more than this many times its compressed size is a bomb..."""
RATIO_FLOOR = 10 * 1024 * 1024
"""...once it has expanded past this many bytes (small, very repetitive files are fine)."""
DEFAULT_MAX_BYTES = 200 * 1024 * 1024
"""Expansion limit of an archive when the caller sets none."""
_ENCRYPTED = 0x1
"""Zip general-purpose flag bit: the member is encrypted."""
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_ROOM: ContextVar[list[int] | None] = ContextVar("huisclos_archive_room", default=None)
"""Bytes that the outermost archive being converted may still expand to, shared by the
archives nested in it (a bomb of nested archives cannot multiply the limit)."""


def member_name(raw: str) -> str:
    """A member's path as shown in citations: forward slashes, no ``..``, no root, no
    control characters."""
    parts = PurePosixPath(_CONTROL.sub(" ", raw.replace("\\", "/"))).parts
    kept = [part.strip() for part in parts if part not in {"/", ".", ".."} and part.strip()]
    return "/".join(kept)


def convert_zip(
    path: Path,
    kind: str,
    languages: list[str],
    max_bytes: int | None,
    depth: int,
    *,
    convert: Converter,
) -> list[TextElement]:
    """Convert each supported member of a zip archive (module docstring: limits)."""
    room = _ROOM.get()
    if room is not None:
        return _convert_zip(path, languages, max_bytes, depth, convert, room)
    token = _ROOM.set(room := [max_bytes if max_bytes is not None else DEFAULT_MAX_BYTES])
    try:
        return _convert_zip(path, languages, max_bytes, depth, convert, room)
    finally:
        _ROOM.reset(token)


def _convert_zip(
    path: Path,
    languages: list[str],
    max_bytes: int | None,
    depth: int,
    convert: Converter,
    room: list[int],
) -> list[TextElement]:
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, ValueError, EOFError) as exc:
        raise ParseError(CORRUPT) from exc
    with archive:
        members = [info for info in archive.infolist() if not info.is_dir()]
        if len(members) > MAX_MEMBERS:
            log.info("refusing a zip archive of %d members", len(members))
            raise ParseError(TOO_LARGE)
        wanted = [
            (info, name)
            for info in members
            if (name := member_name(info.filename)) and attachment_kind(name, None)
        ]
        readable = [(info, name) for info, name in wanted if not info.flag_bits & _ENCRYPTED]
        if wanted and not readable:
            raise ParseError(PASSWORD_PROTECTED)
        result: list[TextElement] = []
        for info, name in readable:
            data = _read_member(archive, info, room[0])
            room[0] -= len(data)
            result += convert_attachment(name, data, None, languages, max_bytes, depth, convert)
    return result


def _read_member(archive: zipfile.ZipFile, info: zipfile.ZipInfo, room: int) -> bytes:
    """A member's bytes, decompressed in blocks and counted: refused as a bomb past
    ``room`` bytes or past the ratio limit."""
    blocks: list[bytes] = []
    size = 0
    try:
        with archive.open(info) as member:
            while block := member.read(1 << 20):
                size += len(block)
                ratio_exceeded = size > RATIO_FLOOR and size > MAX_RATIO * max(
                    info.compress_size, 1
                )
                if size > room or ratio_exceeded:
                    log.info("refusing a zip archive that expands beyond its limits")
                    raise ParseError(TOO_LARGE)
                blocks.append(block)
    except (zipfile.BadZipFile, NotImplementedError, ValueError, EOFError, OSError) as exc:
        # a damaged member (CRC, truncated) or an unsupported compression: skip it
        log.info("skipping an unreadable zip member (%s)", type(exc).__name__)
        return b""
    return b"".join(blocks)


def convert_mbox(
    path: Path,
    kind: str,
    languages: list[str],
    max_bytes: int | None,
    depth: int,
    *,
    convert: Converter,
) -> list[TextElement]:
    """Convert each message of a mailbox (its attachments included) as its own source:
    "message N: subject"."""
    try:
        box = mailbox.mbox(path, create=False)
        keys = box.keys()
    except (OSError, mailbox.Error) as exc:
        raise ParseError(CORRUPT) from exc
    if not keys:
        raise ParseError(EMPTY)
    result: list[TextElement] = []
    try:
        for number, key in enumerate(keys, start=1):
            data = box.get_bytes(key)
            subject = email.message_from_bytes(data, policy=email.policy.default).get("Subject")
            name = f"message {number}" + (f": {_CONTROL.sub(' ', str(subject))}" if subject else "")
            result += convert_attachment(
                name[:160], data, None, languages, max_bytes, depth, convert, kind="eml"
            )
    finally:
        box.close()
    return result
