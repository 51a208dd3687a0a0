"""Zip archives, mailboxes, pandoc formats and LibreOffice-converted kinds, on real files.

Hostile archives are built here (path traversal in member names, zip bombs by
ratio, by total size and nested, encrypted members); the rest are real files
from ``../shared/data/office-docs``.
"""

from __future__ import annotations

import io
import os
import zipfile
from pathlib import Path

import pytest

from huisclos.connectors import formats_archive
from huisclos.connectors.convert import TextElement, convert_file
from tests.connectors.test_convert import DATA, TIKA, UX, reason_of, text_of

FACTURE = "Facture 2024-017 : 1 250 euros pour la tenue de la comptabilité."
CONTRAT = "Le contrat de bail est résilié au 30 juin."


def _zip(path: Path, members: dict[str, bytes], *, level: int = zipfile.ZIP_DEFLATED) -> Path:
    with zipfile.ZipFile(path, "w", compression=level) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return path


@pytest.mark.filterwarnings("ignore:The file encoding was inferred")  # the Latin-1 member
def test_zip_members_are_converted_each_as_its_own_source(tmp_path: Path) -> None:
    docx = (UX / "fake.docx").read_bytes()
    archive = _zip(
        tmp_path / "dossier.zip",
        {
            "Dupont/facture.txt": FACTURE.encode(),
            "Dupont/contrats/bail.txt": CONTRAT.encode("latin-1"),
            "lettre.docx": docx,
            "programme.exe": b"MZ\x90\x00",  # unsupported: skipped
            "vide/": b"",
        },
    )
    elements = convert_file(archive, "zip")
    by_source: dict[str | None, str] = {}
    for element in elements:
        by_source[element.source] = by_source.get(element.source, "") + element.text
    assert by_source["Dupont/facture.txt"] == FACTURE
    assert by_source["Dupont/contrats/bail.txt"] == CONTRAT  # its own encoding detected
    assert "Lorem ipsum" in by_source["lettre.docx"]
    assert set(by_source) == {"Dupont/facture.txt", "Dupont/contrats/bail.txt", "lettre.docx"}


def test_member_names_cannot_escape_and_are_shown_clean(tmp_path: Path) -> None:
    outside = tmp_path / "evil.txt"
    archive = _zip(
        tmp_path / "piege.zip",
        {
            "../../../../" + str(outside).lstrip("/"): FACTURE.encode(),
            "/etc/cron.d/huisclos.txt": CONTRAT.encode(),
            "a/./b/../c\nd.txt": b"Une ligne de texte ordinaire.",
        },
    )
    before = sorted(p for p in tmp_path.rglob("*"))
    elements = convert_file(archive, "zip")
    assert sorted(p for p in tmp_path.rglob("*")) == before  # nothing written beside it
    assert not outside.exists() and not Path("/etc/cron.d/huisclos.txt").exists()
    sources = {e.source for e in elements}
    assert sources == {str(outside).lstrip("/"), "etc/cron.d/huisclos.txt", "a/b/c d.txt"}
    assert FACTURE in text_of(elements) and CONTRAT in text_of(elements)


def test_a_zip_bomb_by_ratio_is_refused_as_too_large(tmp_path: Path) -> None:
    # 64 MB of zeros compress to about 64 kB: a ratio of 1000 past the 10 MB floor
    bomb = _zip(tmp_path / "bomb.zip", {"zeros.txt": b"0" * (64 << 20)})
    assert bomb.stat().st_size < 1 << 20
    assert reason_of(bomb, "zip") == "too large"


def test_a_zip_expanding_past_the_file_limit_is_refused(tmp_path: Path) -> None:
    members = {f"part{n}.txt": os.urandom(300_000).hex().encode() for n in range(4)}  # 2.4 MB
    archive = _zip(tmp_path / "gros.zip", members)
    assert reason_of(archive, "zip", max_bytes=2_000_000) == "too large"
    assert convert_file(archive, "zip", max_bytes=3_000_000)  # within the limit: converted


def test_nested_archives_share_one_expansion_limit(tmp_path: Path) -> None:
    """Ten inner archives of 1 MB each, under a 4 MB limit: not 10 MB converted."""
    inner = io.BytesIO()
    with zipfile.ZipFile(inner, "w", zipfile.ZIP_STORED) as archive:
        archive.writestr("texte.txt", ("mot " * 250_000).encode())
    outer = _zip(
        tmp_path / "gigogne.zip",
        {f"inner{n}.zip": inner.getvalue() for n in range(10)},
        level=zipfile.ZIP_STORED,
    )
    assert reason_of(outer, "zip", max_bytes=4_000_000) == "too large"


def test_archives_nested_too_deep_are_not_followed(tmp_path: Path) -> None:
    data = FACTURE.encode()
    name = "facture.txt"
    for depth in range(5):
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w") as archive:
            archive.writestr(name, data)
        data, name = buffer.getvalue(), f"niveau{depth}.zip"
    archive_path = tmp_path / "profond.zip"
    archive_path.write_bytes(data)
    assert reason_of(archive_path, "zip") == "empty: no text found"
    inner = _zip(tmp_path / "a.zip", {"facture.txt": FACTURE.encode()}).read_bytes()
    shallow = _zip(tmp_path / "plat.zip", {"a.zip": inner})
    assert FACTURE in text_of(convert_file(shallow, "zip"))
    assert {e.source for e in convert_file(shallow, "zip")} == {"a.zip/facture.txt"}


def test_an_archive_of_encrypted_members_is_password_protected(tmp_path: Path) -> None:
    archive = _zip(tmp_path / "secret.zip", {"facture.txt": FACTURE.encode()})
    raw = bytearray(archive.read_bytes())
    # set the "encrypted" flag bit in the local and central headers, as an encrypting tool does
    for signature, offset in ((b"PK\x03\x04", 6), (b"PK\x01\x02", 8)):
        at = raw.find(signature)
        raw[at + offset] |= 0x1
    archive.write_bytes(bytes(raw))
    assert reason_of(archive, "zip") == "password-protected"


def test_a_damaged_zip_is_corrupt(tmp_path: Path) -> None:
    archive = _zip(tmp_path / "abime.zip", {"facture.txt": FACTURE.encode() * 100})
    damaged = tmp_path / "tronque.zip"
    damaged.write_bytes(archive.read_bytes()[:60])
    assert reason_of(damaged, "zip") == "corrupt or unreadable"


def test_a_zip_listing_too_many_members_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(formats_archive, "MAX_MEMBERS", 50)
    archive = _zip(tmp_path / "liste.zip", {f"f{n}.txt": b"x" for n in range(51)})
    assert reason_of(archive, "zip") == "too large"


def test_an_mbox_gives_one_source_per_message_with_attachments() -> None:
    elements = convert_file(TIKA / "mail" / "complex.mbox", "mbox")
    sources = {e.source for e in elements if e.source}
    assert all(e.source for e in elements)
    assert {s.split(":", 1)[0] for s in sources} == {"message 1", "message 2", "message 3"}
    assert any("shuffle/sort" in s for s in sources)  # the subject names the source
    simple = convert_file(TIKA / "mail" / "simple.mbox", "mbox")
    assert [e.source for e in simple] == ["message 1", "message 2"]
    assert "Test content 1" in text_of(simple)


def test_an_empty_or_foreign_mbox_is_empty(tmp_path: Path) -> None:
    foreign = tmp_path / "pas-une-boite.mbox"
    foreign.write_text("Ceci n'est pas une boîte aux lettres.\n")
    assert reason_of(foreign, "mbox") in {"empty: no text found"}


def test_pandoc_formats_are_sandboxed_against_include_directives(tmp_path: Path) -> None:
    secret = tmp_path / "autre-client.txt"
    secret.write_text("Mot de passe du coffre : 7781-ALPHA\n")
    org = tmp_path / "note.org"
    org.write_text(f'#+TITLE: Note\n#+INCLUDE: "{secret}"\n\nCompte rendu de la réunion.\n')
    rst = tmp_path / "note.rst"
    rst.write_text(f"Note\n====\n\n.. include:: {secret}\n\nCompte rendu de la réunion.\n")
    for path, kind in ((org, "org"), (rst, "rst")):
        text = text_of(convert_file(path, kind))
        assert "Compte rendu de la réunion." in text
        assert "7781-ALPHA" not in text


CASES = [
    (UX / "stanley-cups.tsv", "tsv", "Maple Leafs"),
    (UX / "README.rst", "rst", "Example Docs"),
    (UX / "winter-sports.epub", "epub", "Winter Sports"),
    (TIKA / "microsoft" / "testWORD_macros.docm", "docm", "The quick brown fox"),
    (TIKA / "microsoft" / "testEXCEL_macro.xlsm", "xlsm", "a macro is about to be"),
    (TIKA / "microsoft" / "testPPT_macros.pptm", "pptm", "The quick"),
    (DATA / "docling-tests/odf/sources/odf_table_with_title_01.ods", "ods", "freshwater ducks"),
    (DATA / "docling-tests/odf/sources/odf_presentation_01.odp", "odp", "Test Table Slide"),
    (DATA / "docling-tests/webp/sources/webp-test.webp", "webp", "Docling"),
]


@pytest.mark.integration
@pytest.mark.parametrize(("path", "kind", "phrase"), CASES, ids=[k for _, k, _ in CASES])
def test_more_kinds_yield_their_text(path: Path, kind: str, phrase: str) -> None:
    elements = convert_file(path, kind)
    assert all(isinstance(e, TextElement) and e.text for e in elements)
    assert phrase in text_of(elements)
