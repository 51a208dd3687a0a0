"""convert_file on real documents from ../shared/data/office-docs (read in place).

Tests marked ``integration`` need LibreOffice (soffice), tesseract (fra+eng)
or pandoc. Every test runs with outbound sockets refused, which proves that
no model is downloaded (unstructured's spaCy loader in particular).
"""

from __future__ import annotations

import shutil
import socket
from pathlib import Path

import pytest

from huisclos.config.errors import ParseError
from huisclos.connectors.convert import REASONS, SUPPORTED_KINDS, TextElement, convert_file

DATA = Path(__file__).resolve().parents[3] / "shared" / "data" / "office-docs"
UX = DATA / "unstructured-example-docs"
TIKA = DATA / "tika-test-documents"


_TOOLS = {"soffice": "libreoffice-writer-nogui", "tesseract": "tesseract-ocr", "pandoc": "pandoc"}


# tests that run a system tool are integration tests; `make install` brings the tools
needs_soffice = needs_tesseract = needs_pandoc = pytest.mark.integration


@pytest.fixture(autouse=True)
def corpus_and_tools() -> None:
    """Fail, never skip, when the corpus or a converter is missing."""
    assert DATA.is_dir(), f"the test corpus is read in place from {DATA}; it is missing"
    for tool, package in _TOOLS.items():
        assert shutil.which(tool), f"{tool} is missing: `make install` installs {package}"


@pytest.fixture(autouse=True)
def no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    """Refuse every outbound INET connection during the test."""

    real_connect = socket.socket.connect

    def guarded(self: socket.socket, address: object) -> None:
        if self.family in (socket.AF_INET, socket.AF_INET6):
            raise OSError(f"network disabled in tests (tried {address!r})")
        real_connect(self, address)

    monkeypatch.setattr(socket.socket, "connect", guarded)
    monkeypatch.setattr(
        socket, "create_connection", lambda *a, **k: (_ for _ in ()).throw(OSError("no network"))
    )


def text_of(elements: list[TextElement]) -> str:
    return "\n".join(e.text for e in elements)


def reason_of(path: Path, kind: str, **kwargs: object) -> str:
    with pytest.raises(ParseError) as info:
        convert_file(path, kind, **kwargs)  # type: ignore[arg-type]
    assert info.value.reason in REASONS
    return info.value.reason


# -- one file of each kind ---------------------------------------------------

PLAIN_CASES = [
    # (path, kind, phrase verified to be in the file)
    (DATA / "invoices/factur-x-FNFE-fr/valid/Facture_DOM_MINIMUM.pdf", "pdf", "84340 Malaucène"),
    (
        DATA / "french/cdtn-modeles-courriers/docx/rupture_periode_d-essai_employeur.docx",
        "docx",
        "Rupture de la période d’essai",
    ),
    (UX / "2023-half-year-analyses-by-segment.xlsx", "xlsx", "Analyses by segment"),
    (
        DATA / "docling-tests/xls/sources/legacy_sample.xls",
        "xls",
        "Number of freshwater ducks per year",
    ),
    (UX / "stanley-cups.csv", "csv", "Maple Leafs TOR 13"),
    (UX / "fake-power-point.pptx", "pptx", "Here is a lot of text!"),
    (UX / "fake-html.html", "html", "My first paragraph."),
    (UX / "fake-html.html", "htm", "My Second Heading"),
    (
        DATA / "french/cdtn-fiches-covid/services-de-sante.md",
        "md",
        "Intervention des services de santé au travail",
    ),
    (
        DATA
        / "french/convention-collective-edition-idcc2121/2121"
        / "lettre_d'adhésion_de_la_fédération_nationale_samup_(fns)_à_la_convention_"
        "collective_nationale_de_l'édition_et_à_ses_avenants.txt",
        "txt",
        "La fédération nationale SAMUP",
    ),
    (DATA / "docling-tests/email/sources/eml_simple.eml", "eml", "This is a simple email body."),
    (UX / "fake-email.msg", "msg", "This is a test email to use for unit tests."),
]


@pytest.mark.parametrize(
    ("path", "kind", "phrase"), PLAIN_CASES, ids=[f"{k}:{p.name}" for p, k, _ in PLAIN_CASES]
)
def test_each_kind_yields_expected_text(path: Path, kind: str, phrase: str) -> None:
    elements = convert_file(path, kind)
    assert elements, "no elements"
    assert all(isinstance(e, TextElement) and e.text.strip() == e.text and e.text for e in elements)
    assert all(e.source is None for e in elements)
    assert phrase in text_of(elements)


INTEGRATION_CASES = [
    pytest.param(
        UX / "fake.doc", "doc", "Lorem ipsum dolor sit amet.", marks=needs_soffice, id="doc"
    ),
    pytest.param(
        UX / "fake-power-point.ppt", "ppt", "Here is a lot of text!", marks=needs_soffice, id="ppt"
    ),
    pytest.param(
        UX / "simple.odt", "odt", "This is my first thought.", marks=needs_pandoc, id="odt"
    ),
    pytest.param(UX / "fake-doc.rtf", "rtf", "My first paragraph.", marks=needs_pandoc, id="rtf"),
    pytest.param(
        DATA / "scanned-ocrmypdf/typewriter.png",
        "png",
        "Linzensoep",
        marks=needs_tesseract,
        id="png",
    ),
]


@pytest.mark.integration
@pytest.mark.parametrize(("path", "kind", "phrase"), INTEGRATION_CASES)
def test_each_external_tool_kind_yields_expected_text(path: Path, kind: str, phrase: str) -> None:
    elements = convert_file(path, kind)
    assert phrase in text_of(elements)


def test_supported_kinds_cover_the_contract() -> None:
    expected = {
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
    }
    assert expected <= SUPPORTED_KINDS
    assert {
        "password-protected",
        "corrupt or unreadable",
        "unsupported type",
        "empty: no text found",
        "too large",
        "timed out",
        "vanished or changed during read",
    } <= REASONS


# -- positions: pages, sheets, slides ----------------------------------------


def test_pdf_page_numbers_and_blank_pages_skipped() -> None:
    # page 1: title page; pages 2-3 blank (page 3 only has an annotation); page 4: "Z. Shen et al."
    elements = convert_file(UX / "pdf/layout-parser-paper-with-empty-pages.pdf", "pdf")
    pages = {e.page for e in elements}
    assert pages == {1, 4}
    title = [e for e in elements if e.text.startswith("LayoutParser: A Uniﬁed Toolkit")]
    assert [e.page for e in title] == [1]
    assert any("Shen et al." in e.text for e in elements if e.page == 4)


def test_pdf_readable_despite_owner_password_and_one_complex_page() -> None:
    # RC4-encrypted with an empty user password; page 39 is a vector chart that makes
    # unstructured's partition_pdf skip the whole text layer. We must still read it.
    elements = convert_file(TIKA / "pdf/testPDF_protected.pdf", "pdf")
    assert "RETHINKING THE FINANCIAL NETWORK" in text_of([e for e in elements if e.page == 1])
    assert max(e.page or 0 for e in elements) == 41


def test_xlsx_sheet_index_and_names() -> None:
    elements = convert_file(UX / "2023-half-year-analyses-by-segment.xlsx", "xlsx")
    sections = {e.page: e.section for e in elements}
    assert sections == {  # workbook order, 1-based
        1: "OS-Rev.and results 30 06 2023",
        2: "OS-Other information 30 06 2023",
        3: "Prod.Rev.and results 30 06 2023",
        4: "Prod.-Other inform. 30 06 23",
        5: "Reconciliation 30 06 2023",
    }


def test_xls_sheet_name() -> None:
    elements = convert_file(TIKA / "microsoft/testEXCEL.xls", "xls")
    assert [(e.page, e.section) for e in elements] == [(1, "Feuil1")]
    assert "Numbers and their Squares" in elements[0].text


def test_pptx_slide_number_and_title() -> None:
    elements = convert_file(UX / "fake-power-point.pptx", "pptx")
    assert {e.page for e in elements} == {1}
    assert {e.section for e in elements} == {"Adding a Bullet Slide"}


# -- OCR ---------------------------------------------------------------------


@pytest.mark.integration
@needs_tesseract
def test_scanned_french_pdf_is_ocred_with_accents() -> None:
    elements = convert_file(DATA / "scanned-ocrmypdf/francais.pdf", "pdf", ocr_languages="fra+eng")
    text = text_of(elements)
    assert "juge blond qui fume sur son île intérieure" in text
    assert "où les bûches se consument dans l'âtre" in text
    assert {e.page for e in elements} == {1}


# -- e-mail ------------------------------------------------------------------


def test_eml_body_and_attachment_source() -> None:
    elements = convert_file(UX / "eml/fake-email-attachment.eml", "eml")
    body = [e for e in elements if e.source is None]
    attached = [e for e in elements if e.source is not None]
    assert "Here's the attachments!" in text_of(body)
    assert "Subject: Fake email with attachment" in text_of(body)
    assert {e.source for e in attached} == {"fake-attachment.txt"}
    assert "Hey this is a fake attachment!" in text_of(attached)


def test_msg_body_and_attachment_source() -> None:
    elements = convert_file(UX / "fake-email-attachment.msg", "msg")
    assert "Here's the attachments!" in text_of([e for e in elements if e.source is None])
    attached = [e for e in elements if e.source is not None]
    assert {e.source for e in attached} == {"fake-attachment.txt"}
    assert "Hey this is a fake attachment!" in text_of(attached)


@pytest.mark.integration
@needs_soffice
def test_msg_with_french_legacy_doc_attachment() -> None:
    # test-unicode.doc holds its text in tracked insertions (python-docx alone finds nothing)
    elements = convert_file(TIKA / "microsoft/testMSG_att_doc.msg", "msg")
    assert "Subject: test pièce jointe 1" in text_of([e for e in elements if e.source is None])
    assert "école (00E9)" in text_of([e for e in elements if e.source == "test-unicode.doc"])
    assert "euro : € (20AC)" in text_of([e for e in elements if e.source == "pj1.txt"])


def test_eml_digest_attached_messages_become_sources() -> None:
    elements = convert_file(UX / "eml/mime-multipart-digest.eml", "eml")
    sources = {e.source for e in elements if e.source}
    assert len(sources) == 3 and all(s.endswith(".eml") for s in sources)


def test_encrypted_email_is_password_protected() -> None:
    assert reason_of(UX / "eml/fake-encrypted.eml", "eml") == "password-protected"
    assert reason_of(UX / "fake-encrypted.msg", "msg") == "password-protected"


# -- failures ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "kind"),
    [
        (TIKA / "microsoft/testWORD_protected_passtika.docx", "docx"),
        (TIKA / "microsoft/testEXCEL_protected_passtika_2.xlsx", "xlsx"),
        (TIKA / "microsoft/testPPT_protected_passtika.pptx", "pptx"),
        (TIKA / "microsoft/testWORD_protected_passtika.doc", "doc"),
        (TIKA / "microsoft/testEXCEL_protected_passtika.xls", "xls"),
        (TIKA / "microsoft/testPPT_protected_passtika.ppt", "ppt"),
        (TIKA / "miscoffice/testODTEncrypted.odt", "odt"),
        (UX / "pdf/password.pdf", "pdf"),
        (UX / "password_protected.xlsx", "xlsx"),
    ],
    ids=lambda v: v.name if isinstance(v, Path) else v,
)
def test_password_protected(path: Path, kind: str) -> None:
    assert reason_of(path, kind) == "password-protected"


@pytest.mark.parametrize(
    ("path", "kind"),
    [
        (TIKA / "microsoft/testWORD_truncated.docx", "docx"),
        (TIKA / "pdf/testPDF_malformedXFA.pdf", "pdf"),
    ],
    ids=["truncated-docx", "malformed-pdf"],
)
def test_corrupt_files_from_corpus(path: Path, kind: str) -> None:
    assert reason_of(path, kind) == "corrupt or unreadable"


@pytest.mark.parametrize(
    ("source", "kind"),
    [
        (UX / "fake.docx", "docx"),
        (DATA / "invoices/factur-x-FNFE-fr/valid/Facture_DOM_MINIMUM.pdf", "pdf"),
        (UX / "2023-half-year-analyses-by-segment.xlsx", "xlsx"),
        (UX / "fake-power-point.pptx", "pptx"),
        (UX / "fake-email.msg", "msg"),
    ],
    ids=["docx", "pdf", "xlsx", "pptx", "msg"],
)
def test_truncated_copy_is_corrupt(tmp_path: Path, source: Path, kind: str) -> None:
    broken = tmp_path / f"broken.{kind}"
    broken.write_bytes(source.read_bytes()[:700])
    assert reason_of(broken, kind) == "corrupt or unreadable"


def test_unsupported_extension() -> None:
    assert reason_of(UX / "factbook.xml", "xml") == "unsupported type"
    assert reason_of(UX / "fake.docx", "exe") == "unsupported type"


def test_too_large_is_checked_before_parsing(tmp_path: Path) -> None:
    path = UX / "fake.docx"
    size = path.stat().st_size
    assert reason_of(path, "docx", max_bytes=size - 1) == "too large"
    assert convert_file(path, "docx", max_bytes=size)


def test_empty_files() -> None:
    assert reason_of(UX / "empty.txt", "txt") == "empty: no text found"
    assert reason_of(UX / "fake-text-all-whitespace.txt", "txt") == "empty: no text found"
    assert reason_of(UX / "eml/empty.eml", "eml") == "empty: no text found"


def test_missing_file_is_vanished(tmp_path: Path) -> None:
    assert reason_of(tmp_path / "gone.docx", "docx") == "vanished or changed during read"


def test_kind_is_case_insensitive() -> None:
    assert "Lorem ipsum dolor sit amet." in text_of(convert_file(UX / "fake.docx", "DOCX"))


def test_unstructured_uses_the_blank_offline_spacy_pipeline() -> None:
    convert_file(UX / "fake-text.txt", "txt")
    import unstructured.nlp.tokenize as tokenize

    nlp = tokenize._get_nlp()
    assert nlp.lang == "xx"
    assert "sentencizer" in nlp.pipe_names
    with pytest.raises(RuntimeError):
        tokenize._install_spacy_model()
