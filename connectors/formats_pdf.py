"""PDFs and scanned images: the text layer first, tesseract OCR where it is missing.

PDF text comes from pdfminer through unstructured (the ``fast`` strategy's
extraction). Pages without text but with a raster image, and pages whose fonts
have no Unicode map, are OCR'd one by one (``ocr_only``); never ``hi_res``, so
no layout model is needed. Images (.png, .jpg, multi-page .tif) are OCR'd.
"""

from __future__ import annotations

import logging
import re
import tempfile
from pathlib import Path
from typing import Any

from huisclos.config.errors import ParseError
from huisclos.connectors.elements import (
    TextElement,
    at_page,
    ensure_unstructured,
    from_unstructured,
    page_number,
)
from huisclos.connectors.reasons import CORRUPT, PASSWORD_PROTECTED

__all__ = ["convert_image", "convert_pdf"]

log = logging.getLogger(__name__)


def convert_pdf(
    path: Path, kind: str, languages: list[str], max_bytes: int | None, depth: int
) -> list[TextElement]:
    """Convert a PDF: its text layer, plus OCR (in ``languages``) of pages without one."""
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
    except (
        pypdf.errors.PyPdfError,
        ValueError,
        KeyError,
        IndexError,
        TypeError,
        AttributeError,
    ) as exc:
        raise ParseError(CORRUPT) from exc

    ensure_unstructured()
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
        ordered = sort_page_elements(
            sort_page_elements(page_elements, SORT_MODE_BASIC), SORT_MODE_XY_CUT
        )
        page_text = from_unstructured(ordered, page=at_page(number))
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
        if number in garbled
        or (number not in with_text and _page_has_image(reader.pages[number - 1]))
    ]
    if not to_ocr:
        return result
    if len(to_ocr) == page_count:
        ocr = partition_pdf(
            filename=str(path), strategy="ocr_only", languages=languages, include_page_breaks=False
        )
        return from_unstructured(ocr, page=page_number)
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
    return from_unstructured(elements, page=at_page(number))


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


def convert_image(
    path: Path, kind: str, languages: list[str], max_bytes: int | None, depth: int
) -> list[TextElement]:
    """OCR an image in ``languages``; each frame of a multi-page TIFF is a page."""
    ensure_unstructured()
    from PIL import Image
    from unstructured.partition.image import partition_image

    with Image.open(path) as image:
        frames = getattr(image, "n_frames", 1)
    if frames <= 1:
        elements = partition_image(filename=str(path), strategy="ocr_only", languages=languages)
        return from_unstructured(elements)
    # multi-page TIFF: unstructured only reads the first frame
    result: list[TextElement] = []
    with Image.open(path) as image, tempfile.TemporaryDirectory(prefix="huisclos-ocr-") as tmp:
        for index in range(frames):
            image.seek(index)
            frame_path = Path(tmp) / f"frame{index}.png"
            image.convert("RGB").save(frame_path)
            elements = partition_image(
                filename=str(frame_path), strategy="ocr_only", languages=languages
            )
            result.extend(from_unstructured(elements, page=at_page(index + 1)))
    return result
