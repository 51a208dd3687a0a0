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
"""

from __future__ import annotations

import atexit
import codecs
import email
import email.policy
import logging
import mimetypes
import os
import re
import shutil
import signal
import stat
import subprocess
import tempfile
import threading
import zipfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import huisclos.config  # noqa: F401  (privacy switches before unstructured is imported)
from huisclos.config.errors import ParseError

__all__ = [
    "REASONS",
    "SUPPORTED_KINDS",
    "TextElement",
    "convert_file",
]

log = logging.getLogger(__name__)

# -- failure reasons ---------------------------------------------------------

PASSWORD_PROTECTED = "password-protected"
CORRUPT = "corrupt or unreadable"
UNSUPPORTED = "unsupported type"
EMPTY = "empty: no text found"
TOO_LARGE = "too large"
TIMED_OUT = "timed out"
VANISHED = "vanished or changed during read"
CONVERTER_MISSING = "converter unavailable"  # LibreOffice / tesseract / pandoc not installed

REASONS: frozenset[str] = frozenset(
    {PASSWORD_PROTECTED, CORRUPT, UNSUPPORTED, EMPTY, TOO_LARGE, TIMED_OUT, VANISHED, CONVERTER_MISSING}
)

_IMAGE_KINDS = frozenset({"png", "jpg", "jpeg", "tif", "tiff"})
SUPPORTED_KINDS: frozenset[str] = frozenset(
    {"pdf", "docx", "doc", "xlsx", "xls", "csv", "pptx", "ppt", "odt", "rtf", "html", "htm", "md", "txt", "eml", "msg"}
    | _IMAGE_KINDS
)

SOFFICE_TIMEOUT_S = 180.0
"""Wall-clock limit for one LibreOffice conversion (.doc/.ppt)."""

MAX_ATTACHMENT_DEPTH = 3
"""E-mails attached to e-mails are followed this deep."""

_OLE_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
_ZIP_MAGIC = b"PK\x03\x04"


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


# -- public entry point ------------------------------------------------------


def convert_file(
    path: Path,
    kind: str,
    *,
    ocr_languages: str = "fra+eng",
    max_bytes: int | None = None,
) -> list[TextElement]:
    """Convert ``path`` (of type ``kind``, an extension without dot) into text elements.

    Raises :class:`ParseError` with ``reason`` in :data:`REASONS`.
    """
    return _convert(Path(path), kind, ocr_languages=ocr_languages, max_bytes=max_bytes, depth=0)


def _convert(path: Path, kind: str, *, ocr_languages: str, max_bytes: int | None, depth: int) -> list[TextElement]:
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
    except Exception as exc:  # noqa: BLE001 - translated to a reason and re-raised, never swallowed
        reason = _reason_for(exc, path)
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


# -- exception translation ---------------------------------------------------


def _reason_for(exc: BaseException, path: Path) -> str:
    """Map a library exception to one of REASONS."""
    if isinstance(exc, MemoryError):
        return TOO_LARGE
    if isinstance(exc, subprocess.TimeoutExpired | TimeoutError):
        return TIMED_OUT
    if isinstance(exc, FileNotFoundError):
        # the document itself, or one of our temp files / a binary that is missing
        if not path.exists():
            return VANISHED
        if exc.filename and Path(str(exc.filename)).name in {"soffice", "tesseract", "pandoc", "pdftoppm", "pdfinfo"}:
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
    if name in {"TesseractNotFoundError", "PDFInfoNotInstalledError"} or "no pandoc was found" in message:
        return CONVERTER_MISSING
    if name in {"FileNotDecryptedError", "PDFPasswordIncorrect", "PDFEncryptionError", "InvalidKeyError", "DecryptionError"}:
        return PASSWORD_PROTECTED
    if name in {"PageCountExceededError", "DecompressedSizeExceededError", "DecompressionBombError"}:
        return TOO_LARGE
    if name == "TesseractError" and "timeout" in message:
        return TIMED_OUT
    # Everything else is a parser failing on malformed input: truncated zips (BadZipFile), bad
    # XML (lxml), broken OLE streams (olefile), pdfminer/pypdf syntax errors, xlrd/openpyxl
    # errors, or ValueError/KeyError/IndexError/AttributeError raised deep inside a parser.
    return CORRUPT


# -- helpers -----------------------------------------------------------------


def _tesseract_languages(ocr_languages: str) -> list[str]:
    langs = [part.strip() for part in re.split(r"[+,\s]+", ocr_languages or "") if part.strip()]
    return langs or ["eng"]


_setup_lock = threading.Lock()
_setup_done = False


def _ensure_unstructured() -> None:
    """Once per process: offline spaCy for unstructured, quiet parsers, codec aliases."""
    global _setup_done
    if _setup_done:
        return
    with _setup_lock:
        if _setup_done:
            return
        from huisclos.connectors.offline_nlp import install_offline_nlp

        install_offline_nlp()
        # pdfminer's warnings quote page content ("Cannot render horizontal string because
        # /b'...'"), and unstructured logs element text at DEBUG: keep document text out of logs.
        logging.getLogger("pdfminer").setLevel(logging.ERROR)
        unstructured_log = logging.getLogger("unstructured")
        if unstructured_log.getEffectiveLevel() < logging.INFO:
            unstructured_log.setLevel(logging.INFO)
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


def _head(path: Path, size: int = 8) -> bytes:
    with path.open("rb") as fh:
        return fh.read(size)


def _reject_encrypted_office(path: Path, kind: str) -> None:
    """Raise for encrypted Office files (OOXML encryption is an OLE container)."""
    head = _head(path)
    if head != _OLE_MAGIC:
        if kind in {"docx", "xlsx", "pptx"} and head[:4] != _ZIP_MAGIC:
            raise ParseError(CORRUPT)
        return
    import msoffcrypto
    import msoffcrypto.exceptions

    try:
        with path.open("rb") as fh:
            encrypted = msoffcrypto.OfficeFile(fh).is_encrypted()
    except (msoffcrypto.exceptions.FileFormatError, OSError, ValueError, KeyError, IndexError) as exc:
        if kind in {"docx", "xlsx", "pptx"}:
            raise ParseError(CORRUPT) from exc  # an OLE file that is not an encrypted OOXML package
        return  # let the legacy parser decide
    if encrypted:
        raise ParseError(PASSWORD_PROTECTED)


def _reject_encrypted_odf(path: Path) -> None:
    try:
        with zipfile.ZipFile(path) as zf:
            manifest = zf.read("META-INF/manifest.xml")
    except (zipfile.BadZipFile, KeyError) as exc:
        raise ParseError(CORRUPT) from exc
    if b"encryption-data" in manifest:
        raise ParseError(PASSWORD_PROTECTED)


def _from_unstructured(
    elements: Iterable[Any],
    *,
    page: Callable[[Any], int | None] = lambda e: None,
    section: Callable[[Any], str | None] = lambda e: None,
) -> list[TextElement]:
    out: list[TextElement] = []
    for element in elements:
        text = (getattr(element, "text", None) or "").strip()
        if not text:
            continue
        out.append(TextElement(text=text, page=page(element), section=section(element)))
    return out


def _page_number(element: Any) -> int | None:
    return getattr(element.metadata, "page_number", None)


# -- plain partitioners ------------------------------------------------------


def _convert_text(path: Path, kind: str, languages: list[str], max_bytes: int | None, depth: int) -> list[TextElement]:
    _ensure_unstructured()
    if kind == "txt":
        from unstructured.partition.text import partition_text

        elements = partition_text(filename=str(path), languages=[""])
    elif kind in {"html", "htm"}:
        from unstructured.partition.html import partition_html

        elements = partition_html(filename=str(path), languages=[""], skip_headers_and_footers=False)
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
    return _from_unstructured(elements)


def _convert_docx(path: Path, kind: str, languages: list[str], max_bytes: int | None, depth: int) -> list[TextElement]:
    _reject_encrypted_office(path, kind)
    _ensure_unstructured()
    return _docx_elements(path)


def _docx_elements(path: Path) -> list[TextElement]:
    from unstructured.partition.docx import partition_docx

    elements = _from_unstructured(partition_docx(filename=str(path), languages=[""], infer_table_structure=False))
    if elements:
        return elements
    # python-docx (hence unstructured) skips runs inside tracked insertions (<w:ins>); a document
    # made only of unaccepted insertions would come out empty. Fall back to the raw paragraphs.
    return _docx_raw_paragraphs(path)


def _docx_raw_paragraphs(path: Path) -> list[TextElement]:
    from lxml import etree

    w = "{http://schemas.openxmlformats.org/wordprocessingml/2006/main}"
    with zipfile.ZipFile(path) as zf:
        root = etree.fromstring(zf.read("word/document.xml"), parser=etree.XMLParser(resolve_entities=False, huge_tree=False))
    out: list[TextElement] = []
    for paragraph in root.iter(f"{w}p"):
        text = "".join(node.text or "" for node in paragraph.iter(f"{w}t")).strip()
        if text:
            out.append(TextElement(text=text))
    return out


def _convert_pptx(path: Path, kind: str, languages: list[str], max_bytes: int | None, depth: int) -> list[TextElement]:
    _reject_encrypted_office(path, kind)
    _ensure_unstructured()
    from unstructured.partition.pptx import partition_pptx

    elements = partition_pptx(
        filename=str(path),
        languages=[""],
        infer_table_structure=False,
        include_page_breaks=False,
        include_slide_notes=True,
    )
    return _slides(elements)


def _slides(elements: list[Any]) -> list[TextElement]:
    titles: dict[int, str] = {}
    for element in elements:
        number = _page_number(element)
        text = (getattr(element, "text", None) or "").strip()
        if number is not None and number not in titles and text and getattr(element, "category", "") == "Title":
            titles[number] = text
    return _from_unstructured(elements, page=_page_number, section=lambda e: titles.get(_page_number(e)))


def _convert_xlsx(path: Path, kind: str, languages: list[str], max_bytes: int | None, depth: int) -> list[TextElement]:
    _reject_encrypted_office(path, kind)
    _ensure_unstructured()
    from unstructured.partition.xlsx import partition_xlsx

    elements = partition_xlsx(
        filename=str(path),
        languages=[""],
        infer_table_structure=False,
        find_subtable=False,
        include_header=False,
    )
    return _from_unstructured(
        elements, page=_page_number, section=lambda e: getattr(e.metadata, "page_name", None)
    )


def _convert_odt(path: Path, kind: str, languages: list[str], max_bytes: int | None, depth: int) -> list[TextElement]:
    _reject_encrypted_odf(path)
    _ensure_unstructured()
    from unstructured.partition.odt import partition_odt

    return _from_unstructured(partition_odt(filename=str(path), languages=[""], infer_table_structure=False))


# -- LibreOffice (legacy .doc / .ppt) ----------------------------------------

_profiles = threading.local()
_profile_dirs: list[str] = []
_profile_lock = threading.Lock()


def _soffice_profile() -> Path:
    """A throwaway LibreOffice profile, one per thread, so parallel conversions never share one."""
    directory = getattr(_profiles, "path", None)
    if directory is None or not os.path.isdir(directory):
        directory = tempfile.mkdtemp(prefix="huisclos-lo-profile-")
        _profiles.path = directory
        with _profile_lock:
            _profile_dirs.append(directory)
    return Path(directory)


@atexit.register
def _remove_profiles() -> None:
    with _profile_lock:
        for directory in _profile_dirs:
            shutil.rmtree(directory, ignore_errors=True)
        _profile_dirs.clear()


def _soffice_convert(path: Path, kind: str, target: str, workdir: Path) -> Path:
    """Convert ``path`` with LibreOffice headless into ``workdir``; return the output file."""
    soffice = shutil.which("soffice") or shutil.which("libreoffice")
    if soffice is None:
        raise ParseError(CONVERTER_MISSING)
    source = workdir / f"input.{kind}"
    os.symlink(path.resolve(), source)
    out_dir = workdir / "out"
    out_dir.mkdir()
    command = [
        soffice,
        f"-env:UserInstallation={_soffice_profile().as_uri()}",
        "--headless",
        "--invisible",
        "--norestore",
        "--nolockcheck",
        "--nodefault",
        "--nologo",
        "--convert-to",
        target,
        "--outdir",
        str(out_dir),
        str(source),
    ]
    process = subprocess.Popen(  # noqa: S603 - fixed argv, no shell
        command,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        process.wait(timeout=SOFFICE_TIMEOUT_S)
    except subprocess.TimeoutExpired as exc:
        _kill_group(process)
        raise ParseError(TIMED_OUT) from exc
    except BaseException:
        _kill_group(process)
        raise
    produced = out_dir / f"input.{target.split(':', 1)[0]}"
    if not produced.is_file() or produced.stat().st_size == 0:
        raise ParseError(CORRUPT)
    return produced


def _kill_group(process: subprocess.Popen[bytes]) -> None:
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    process.wait()


def _convert_legacy(path: Path, kind: str, languages: list[str], max_bytes: int | None, depth: int) -> list[TextElement]:
    _reject_encrypted_office(path, kind)
    target = {"doc": "docx", "ppt": "pptx"}[kind]
    with tempfile.TemporaryDirectory(prefix="huisclos-lo-") as tmp:
        converted = _soffice_convert(path, kind, target, Path(tmp))
        _ensure_unstructured()
        if target == "docx":
            return _docx_elements(converted)
        from unstructured.partition.pptx import partition_pptx

        return _slides(
            partition_pptx(
                filename=str(converted),
                languages=[""],
                infer_table_structure=False,
                include_page_breaks=False,
                include_slide_notes=True,
            )
        )


def _convert_xls(path: Path, kind: str, languages: list[str], max_bytes: int | None, depth: int) -> list[TextElement]:
    # unstructured reads .xls directly with xlrd (no LibreOffice needed)
    return _convert_xlsx(path, kind, languages, max_bytes, depth)


# -- PDF and images ----------------------------------------------------------


def _convert_pdf(path: Path, kind: str, languages: list[str], max_bytes: int | None, depth: int) -> list[TextElement]:
    import pypdf
    import pypdf.errors

    try:
        reader = pypdf.PdfReader(str(path), strict=False)
        if reader.is_encrypted and not reader.decrypt(""):
            raise ParseError(PASSWORD_PROTECTED)
        page_count = len(reader.pages)
    except pypdf.errors.FileNotDecryptedError as exc:
        raise ParseError(PASSWORD_PROTECTED) from exc
    except pypdf.errors.DependencyError as exc:
        # AES without the crypto backend: pdfminer may still read it
        log.debug("pypdf cannot decrypt (%s); leaving it to pdfminer", type(exc).__name__)
        reader, page_count = None, 0
    except (pypdf.errors.PyPdfError, ValueError, KeyError, IndexError, TypeError, AttributeError) as exc:
        raise ParseError(CORRUPT) from exc

    _ensure_unstructured()
    from unstructured.partition.pdf import extractable_elements, partition_pdf
    from unstructured.partition.utils.constants import SORT_MODE_BASIC, SORT_MODE_XY_CUT
    from unstructured.partition.utils.sorting import sort_page_elements

    # The text layer, as partition_pdf(strategy="fast") reads it, called directly because
    # partition_pdf (a) silently returns nothing when pdfminer raises (a corrupt file would
    # look "empty") and (b) skips the whole text layer when one page is a complex vector
    # drawing (is_pdf_too_complex), losing the text of every other page.
    pages = extractable_elements(filename=str(path), languages=[""])
    result: list[TextElement] = []
    garbled: set[int] = set()
    for number, page_elements in enumerate(pages, start=1):
        ordered = sort_page_elements(sort_page_elements(page_elements, SORT_MODE_BASIC), SORT_MODE_XY_CUT)
        page_text = _from_unstructured(ordered, page=lambda e, n=number: n)
        # Fonts without a Unicode map come out as "(cid:68)(cid:114)...": drop such elements,
        # and OCR the page when they are most of it.
        readable = [e for e in page_text if _cid_share(e.text) < 0.5]
        if sum(len(e.text) for e in readable) < 0.5 * sum(len(e.text) for e in page_text):
            garbled.add(number)
            continue
        result.extend(readable)
    with_text = {e.page for e in result}
    if reader is None:
        return result
    to_ocr = [
        number
        for number in range(1, page_count + 1)
        if number in garbled or (number not in with_text and _page_has_image(reader.pages[number - 1]))
    ]
    if not to_ocr:
        return result
    if len(to_ocr) == page_count:
        ocr = partition_pdf(filename=str(path), strategy="ocr_only", languages=languages, include_page_breaks=False)
        return _from_unstructured(ocr, page=_page_number)
    for number in to_ocr:
        result.extend(_ocr_pdf_page(reader, number, languages))
    result.sort(key=lambda e: e.page or 0)  # stable: keeps reading order within a page
    return result


_CID = re.compile(r"\(cid:\d+\)")


def _cid_share(text: str) -> float:
    if "(cid:" not in text:
        return 0.0
    return sum(len(m) for m in _CID.findall(text)) / len(text)


def _ocr_pdf_page(reader: Any, number: int, languages: list[str]) -> list[TextElement]:
    import pypdf
    from unstructured.partition.pdf import partition_pdf

    writer = pypdf.PdfWriter()
    writer.add_page(reader.pages[number - 1])
    with tempfile.TemporaryDirectory(prefix="huisclos-ocr-") as tmp:
        single = Path(tmp) / "page.pdf"
        with single.open("wb") as fh:
            writer.write(fh)
        elements = partition_pdf(
            filename=str(single),
            strategy="ocr_only",
            languages=languages,
            include_page_breaks=False,
            starting_page_number=number,
        )
    return _from_unstructured(elements, page=lambda e: number)


def _page_has_image(page: Any, _depth: int = 0) -> bool:
    """True when a PDF page draws a raster image (so OCR could find text on it)."""
    try:
        resources = page.get("/Resources") if _depth == 0 else page
        resources = resources.get_object() if resources is not None else None
        if not resources:
            return _depth == 0 and _has_inline_image(page)
        xobjects = resources.get("/XObject")
        xobjects = xobjects.get_object() if xobjects is not None else {}
        for ref in xobjects.values():
            xobject = ref.get_object()
            subtype = xobject.get("/Subtype")
            if subtype == "/Image":
                return True
            if subtype == "/Form" and _depth < 3:
                inner = xobject.get("/Resources")
                if inner is not None and _page_has_image(inner.get_object(), _depth + 1):
                    return True
        return _depth == 0 and _has_inline_image(page)
    except Exception:  # noqa: BLE001 - unsure: OCR the page rather than miss text
        return True


def _has_inline_image(page: Any) -> bool:
    contents = page.get_contents()
    if contents is None:
        return False
    data = contents.get_data()
    return b"BI" in data and b"ID" in data


def _convert_image(path: Path, kind: str, languages: list[str], max_bytes: int | None, depth: int) -> list[TextElement]:
    _ensure_unstructured()
    from PIL import Image
    from unstructured.partition.image import partition_image

    with Image.open(path) as image:
        frames = getattr(image, "n_frames", 1)
    if frames <= 1:
        elements = partition_image(filename=str(path), strategy="ocr_only", languages=languages)
        return _from_unstructured(elements, page=lambda e: None)
    # multi-page TIFF: unstructured only reads the first frame
    result: list[TextElement] = []
    with Image.open(path) as image, tempfile.TemporaryDirectory(prefix="huisclos-ocr-") as tmp:
        for index in range(frames):
            image.seek(index)
            frame_path = Path(tmp) / f"frame{index}.png"
            image.convert("RGB").save(frame_path)
            elements = partition_image(filename=str(frame_path), strategy="ocr_only", languages=languages)
            result.extend(_from_unstructured(elements, page=lambda e, n=index + 1: n))
    return result


# -- e-mail ------------------------------------------------------------------

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
    "image/png": "png",
    "image/jpeg": "jpg",
    "image/tiff": "tiff",
}


def _safe_name(raw: str | None, fallback: str) -> str:
    name = os.path.basename((raw or "").replace("\\", "/")).replace("\0", "").strip()
    return name if name and name not in {".", ".."} else fallback


def _attachment_kind(name: str, mime: str | None) -> str | None:
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


def _convert_attachment(
    name: str,
    data: bytes,
    mime: str | None,
    languages: list[str],
    max_bytes: int | None,
    depth: int,
) -> list[TextElement]:
    """Convert one attachment; failures are skipped (logged by reason), never fatal."""
    kind = _attachment_kind(name, mime)
    if kind is None or not data:
        log.debug("skipping an e-mail attachment: %s", UNSUPPORTED if kind is None else EMPTY)
        return []
    if kind in {"eml", "msg"} and depth >= MAX_ATTACHMENT_DEPTH:
        return []
    if max_bytes is not None and len(data) > max_bytes:
        log.debug("skipping an e-mail attachment: %s", TOO_LARGE)
        return []
    with tempfile.TemporaryDirectory(prefix="huisclos-att-") as tmp:
        detached = Path(tmp) / f"attachment.{kind}"
        detached.write_bytes(data)
        try:
            elements = _convert(
                detached, kind, ocr_languages="+".join(languages), max_bytes=max_bytes, depth=depth + 1
            )
        except ParseError as exc:
            log.info("skipping a .%s e-mail attachment: %s", kind, exc.reason)
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


def _header_element(fields: Iterable[tuple[str, str | None]]) -> list[TextElement]:
    lines = [f"{label}: {value.strip()}" for label, value in fields if value and value.strip()]
    return [TextElement(text="\n".join(lines))] if lines else []


def _body_elements(plain: str | None, html: str | None) -> list[TextElement]:
    _ensure_unstructured()
    if plain and plain.strip():
        from unstructured.partition.text import partition_text

        return _from_unstructured(partition_text(text=plain, languages=[""]))
    if html and html.strip():
        from unstructured.partition.html import partition_html

        return _from_unstructured(partition_html(text=html, languages=[""]))
    return []


def _is_encrypted_mime(content_type: str) -> bool:
    content_type = content_type.lower()
    return "multipart/encrypted" in content_type or (
        "pkcs7-mime" in content_type and "signed-data" not in content_type
    )


def _leaf_parts(part: EmailMessage) -> Iterable[EmailMessage]:
    if part.get_content_maintype() == "multipart":
        for sub in part.iter_parts():
            yield from _leaf_parts(sub)  # type: ignore[arg-type]
    else:
        yield part


def _convert_eml(path: Path, kind: str, languages: list[str], max_bytes: int | None, depth: int) -> list[TextElement]:
    raw = path.read_bytes()
    if raw.startswith((b"\xff\xfe", b"\xfe\xff")):  # a message saved as UTF-16 (or -32) text
        raw = raw.decode("utf-32" if raw.startswith((b"\xff\xfe\x00\x00", b"\x00\x00\xfe\xff")) else "utf-16").encode()
    message: EmailMessage = email.message_from_bytes(raw, policy=email.policy.default)  # type: ignore[assignment]
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
    result = header + _body_elements(plain, html)

    body_parts = {id(p) for p in (plain_part, html_part) if p is not None}
    for index, part in enumerate(_leaf_parts(message)):
        if id(part) in body_parts:
            continue
        content_type = part.get_content_type()
        disposition = (part.get_content_disposition() or "").lower()
        filename = part.get_filename()
        if content_type == "message/rfc822":
            inner = part.get_payload(0) if isinstance(part.get_payload(), list) else None
            if inner is None:
                continue
            data = inner.as_bytes(policy=email.policy.default)  # type: ignore[union-attr]
            name = _safe_name(filename, f"message-{index}.eml")
            result += _convert_attachment(name, data, "message/rfc822", languages, max_bytes, depth)
            continue
        if not filename and disposition != "attachment":
            continue  # alternative bodies, inline fragments
        if content_type.startswith("image/") and disposition != "attachment":
            continue  # inline pictures (logos, signatures): not worth OCR
        try:
            data = part.get_payload(decode=True) or b""
        except (ValueError, TypeError, AssertionError) as exc:
            log.info("skipping an undecodable e-mail attachment (%s)", type(exc).__name__)
            continue
        name = _safe_name(filename, f"attachment-{index}")
        result += _convert_attachment(name, data, content_type, languages, max_bytes, depth)
    return result


def _part_text(part: EmailMessage | None) -> str | None:
    if part is None:
        return None
    try:
        return part.get_content()
    except (LookupError, UnicodeError, ValueError, AssertionError):
        payload = part.get_payload(decode=True) or b""
        return payload.decode("utf-8", errors="replace") if isinstance(payload, bytes) else str(payload)


def _convert_msg(path: Path, kind: str, languages: list[str], max_bytes: int | None, depth: int) -> list[TextElement]:
    if _head(path) != _OLE_MAGIC:
        raise ParseError(CORRUPT)
    _ensure_unstructured()
    from oxmsg import Message

    message = Message.load(str(path))
    headers = message.message_headers
    content_type = headers.get("Content-Type", "") or ""
    message_class = (getattr(message, "message_class", "") or "").lower()
    if _is_encrypted_mime(content_type) or message_class.startswith("ipm.note.smime") and "multipartsigned" not in message_class:
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
    result = header + _body_elements(plain, html)

    for index, attachment in enumerate(message.attachments):
        name = _safe_name(attachment.file_name, f"attachment-{index}")
        data = attachment.file_bytes or b""
        mime = getattr(attachment, "mime_type", None)
        if mime and mime.startswith("image/") and getattr(attachment, "content_id", None):
            continue  # inline pictures referenced by the HTML body
        result += _convert_attachment(name, data, mime, languages, max_bytes, depth)
    return result


# -- dispatch ----------------------------------------------------------------

_Handler = Callable[[Path, str, list[str], "int | None", int], list[TextElement]]


_HANDLERS: dict[str, _Handler] = {
    "pdf": _convert_pdf,
    "docx": _convert_docx,
    "doc": _convert_legacy,
    "ppt": _convert_legacy,
    "pptx": _convert_pptx,
    "xlsx": _convert_xlsx,
    "xls": _convert_xls,
    "odt": _convert_odt,
    "txt": _convert_text,
    "html": _convert_text,
    "htm": _convert_text,
    "md": _convert_text,
    "rtf": _convert_text,
    "csv": _convert_text,
    "eml": _convert_eml,
    "msg": _convert_msg,
    **{kind: _convert_image for kind in _IMAGE_KINDS},
}
assert set(_HANDLERS) == SUPPORTED_KINDS
