"""Office documents: .docx, .pptx, .xlsx, .xls, .odt, and legacy .doc/.ppt via LibreOffice.

Encrypted files are recognised before any parser runs (OOXML encryption is an
OLE container; ODF lists it in its manifest). Legacy .doc/.ppt are converted to
.docx/.pptx by a headless LibreOffice, in a throwaway profile per thread, in
its own process group so a hung conversion can be killed whole.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import shutil
import signal
import subprocess
import tempfile
import threading
import zipfile
from pathlib import Path
from typing import Any

from huisclos.config.errors import ParseError
from huisclos.connectors.elements import (
    TextElement,
    ensure_unstructured,
    from_unstructured,
    page_number,
)
from huisclos.connectors.kinds import OLE_MAGIC, ZIP_MAGIC, head
from huisclos.connectors.reasons import (
    CONVERTER_MISSING,
    CORRUPT,
    PASSWORD_PROTECTED,
    TIMED_OUT,
)

__all__ = [
    "LIBREOFFICE_TARGETS",
    "SOFFICE_TIMEOUT_S",
    "convert_docx",
    "convert_legacy",
    "convert_odt",
    "convert_pptx",
    "convert_xls",
    "convert_xlsx",
]

SOFFICE_TIMEOUT_S = 180.0
"""Wall-clock limit for one LibreOffice conversion (.doc/.ppt)."""


# -- encryption ---------------------------------------------------------------


def _reject_encrypted_office(path: Path, kind: str) -> None:
    """Raise for encrypted Office files (OOXML encryption is an OLE container)."""
    first = head(path)
    if first != OLE_MAGIC:
        if kind in {"docx", "xlsx", "pptx"} and first[:4] != ZIP_MAGIC:
            raise ParseError(CORRUPT)
        return
    import msoffcrypto
    import msoffcrypto.exceptions

    try:
        with path.open("rb") as fh:
            encrypted = msoffcrypto.OfficeFile(fh).is_encrypted()
    except (
        msoffcrypto.exceptions.FileFormatError,
        OSError,
        ValueError,
        KeyError,
        IndexError,
    ) as exc:
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


# -- OOXML and ODF ------------------------------------------------------------


def convert_docx(
    path: Path, kind: str, languages: list[str], max_bytes: int | None, depth: int
) -> list[TextElement]:
    """Convert a .docx file."""
    _reject_encrypted_office(path, kind)
    ensure_unstructured()
    return _docx_elements(path)


def _docx_elements(path: Path) -> list[TextElement]:
    from unstructured.partition.docx import partition_docx

    elements = from_unstructured(
        partition_docx(filename=str(path), languages=[""], infer_table_structure=False)
    )
    if elements:
        return elements
    # python-docx (hence unstructured) skips runs inside tracked insertions (<w:ins>); a document
    # made only of unaccepted insertions would come out empty. Fall back to the raw paragraphs.
    return _docx_raw_paragraphs(path)


def _docx_raw_paragraphs(path: Path) -> list[TextElement]:
    from lxml import etree

    w = "{http://schemas.openxmlformats.org/wordprocessingml/2006/main}"
    with zipfile.ZipFile(path) as zf:
        root = etree.fromstring(
            zf.read("word/document.xml"),
            parser=etree.XMLParser(resolve_entities=False, huge_tree=False),
        )
    out: list[TextElement] = []
    for paragraph in root.iter(f"{w}p"):
        text = "".join(node.text or "" for node in paragraph.iter(f"{w}t")).strip()
        if text:
            out.append(TextElement(text=text))
    return out


def convert_pptx(
    path: Path, kind: str, languages: list[str], max_bytes: int | None, depth: int
) -> list[TextElement]:
    """Convert a .pptx file: one page per slide, the slide title as section."""
    _reject_encrypted_office(path, kind)
    ensure_unstructured()
    return _pptx_slides(path)


def _pptx_slides(path: Path) -> list[TextElement]:
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
        number = page_number(element)
        text = (getattr(element, "text", None) or "").strip()
        if (
            number is not None
            and number not in titles
            and text
            and getattr(element, "category", "") == "Title"
        ):
            titles[number] = text

    def slide_title(element: Any) -> str | None:
        number = page_number(element)
        return None if number is None else titles.get(number)

    return from_unstructured(elements, page=page_number, section=slide_title)


def convert_xlsx(
    path: Path, kind: str, languages: list[str], max_bytes: int | None, depth: int
) -> list[TextElement]:
    """Convert a .xlsx (or .xls) file: one page per sheet, the sheet name as section."""
    _reject_encrypted_office(path, kind)
    ensure_unstructured()
    from unstructured.partition.xlsx import partition_xlsx

    elements = partition_xlsx(
        filename=str(path),
        languages=[""],
        infer_table_structure=False,
        find_subtable=False,
        include_header=False,
    )
    return from_unstructured(elements, page=page_number, section=_sheet_name)


def _sheet_name(element: Any) -> str | None:
    return getattr(element.metadata, "page_name", None)


def convert_xls(
    path: Path, kind: str, languages: list[str], max_bytes: int | None, depth: int
) -> list[TextElement]:
    """Convert a legacy .xls file."""
    # unstructured reads .xls directly with xlrd (no LibreOffice needed)
    return convert_xlsx(path, kind, languages, max_bytes, depth)


def convert_odt(
    path: Path, kind: str, languages: list[str], max_bytes: int | None, depth: int
) -> list[TextElement]:
    """Convert an .odt file."""
    _reject_encrypted_odf(path)
    ensure_unstructured()
    from unstructured.partition.odt import partition_odt

    return from_unstructured(
        partition_odt(filename=str(path), languages=[""], infer_table_structure=False)
    )


# -- LibreOffice (legacy .doc / .ppt) ----------------------------------------


def convert_legacy(
    path: Path, kind: str, languages: list[str], max_bytes: int | None, depth: int
) -> list[TextElement]:
    """Convert through LibreOffice: legacy .doc/.ppt, macro-enabled and binary OOXML
    (.docm/.pptm/.xlsm/.xlsb), OpenDocument spreadsheets and presentations (.ods/.odp)."""
    if kind in {"ods", "odp"}:
        _reject_encrypted_odf(path)
    else:
        _reject_encrypted_office(path, kind)
    target = LIBREOFFICE_TARGETS[kind]
    with tempfile.TemporaryDirectory(prefix="huisclos-lo-") as tmp:
        converted = _soffice_convert(path, kind, target, Path(tmp))
        ensure_unstructured()
        if target == "docx":
            return _docx_elements(converted)
        if target == "xlsx":
            return convert_xlsx(converted, target, languages, max_bytes, depth)
        return _pptx_slides(converted)


LIBREOFFICE_TARGETS = {
    "doc": "docx",
    "docm": "docx",
    "ppt": "pptx",
    "pptm": "pptx",
    "odp": "pptx",
    "xlsm": "xlsx",
    "xlsb": "xlsx",
    "ods": "xlsx",
}
"""Kinds converted by LibreOffice, and to what."""


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
    process = subprocess.Popen(
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
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait()
