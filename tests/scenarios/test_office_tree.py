"""A client tree built from real office documents of every supported type.

Indexed once per module through the CLI (conversion in a worker process, the
network guard on), then checked: states, search in French, the JSON shapes,
and that nothing readable is left in the vault's bytes.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from huisclos.connectors.convert import REASONS
from huisclos.connectors.worker_pool import CRASHED, TIMED_OUT
from huisclos.pipeline.indexing.ingest import EMPTY
from tests.conftest import OFFICE

pytestmark = pytest.mark.integration

# client -> files (relative to office-docs); every listed type appears at least once
TREE: dict[str, list[str]] = {
    "Dupont SARL": [
        "french/cdtn-modeles-courriers/docx/demande_paiement_salaire.docx",
        "scanned-ocrmypdf/francais.pdf",
        "invoices/invoice2data/free_fiber.pdf",
        "french/cdtn-fiches-covid/conges-payes.md",
    ],
    "Martin": [
        "tika-test-documents/microsoft/test.doc",
        "tika-test-documents/microsoft/testEXCEL.xls",
        "tika-test-documents/microsoft/testPPT.ppt",
        "unstructured-example-docs/simple.odt",
        "tika-test-documents/microsoft/testRTFUmlautSpaces.rtf",
    ],
    "Acme": [
        "unstructured-example-docs/language-docs/eng_spa.xlsx",
        "tika-test-documents/microsoft/testPPT_comment.pptx",
        "unstructured-example-docs/csv-with-escaped-commas.csv",
        "unstructured-example-docs/fake-html-with-footer-and-header.html",
        "unstructured-example-docs/README.md",
        "docling-tests/email/sources/msg_with_attachment.msg",
        "unstructured-example-docs/eml/fake-email-attachment.eml",
    ],
    "Broken": [
        "tika-test-documents/miscoffice/testODTnotaZipFile.odt",
        "unstructured-example-docs/empty.txt",
    ],
}
SHARED = ["unstructured-example-docs/fake-text.txt"]
SECRETS = [
    "Demande de paiement de salaire",
    "Portez ce vieux whisky",
    "demande_paiement_salaire",
    "francais.pdf",
    "free_fiber",
    "Dupont SARL",
]


def _cli(*args: str, home: Path) -> dict:  # type: ignore[type-arg]
    env = {**os.environ, "HUISCLOS_HOME": str(home), "HUISCLOS_KEY_SOURCE": "file"}
    out = subprocess.run(
        [sys.executable, "-m", "huisclos.pipeline.cli", *args, "--json"],
        capture_output=True, text=True, env=env, timeout=900, check=False,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr[-2000:]
    return json.loads(out.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


@pytest.fixture(scope="module")
def indexed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, dict]:  # type: ignore[type-arg]
    base = tmp_path_factory.mktemp("office")
    root, home = base / "Clients", base / "vault"
    for client, files in TREE.items():
        for name in files:
            target = root / client / Path(name).name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(OFFICE / name, target)
    for name in SHARED:
        shutil.copy2(OFFICE / name, root / Path(name).name)
    report = _cli("index", str(root), home=home)
    return root, home, report


def test_every_file_is_indexed_or_failed_with_a_reason(indexed: tuple) -> None:  # type: ignore[type-arg]
    _, home, report = indexed
    total = sum(len(files) for files in TREE.values()) + len(SHARED)
    assert set(report) >= {"added", "updated", "moved", "removed", "unchanged", "failed",
                           "chunks_written", "seconds"}  # fmt: skip
    assert report["added"] + report["failed"] == total
    status = _cli("status", home=home)
    assert status["files"] == total
    allowed = REASONS | {EMPTY, CRASHED, TIMED_OUT}
    failed = {f["path"]: f["reason"] for f in status["failures"]}
    assert all(reason in allowed for reason in failed.values()), failed
    assert set(failed) == {"Broken/testODTnotaZipFile.odt", "Broken/empty.txt"}, failed
    clients = {c["name"]: c for c in status["clients"]}
    assert clients["Dupont SARL"]["files"] == 4 and clients["Dupont SARL"]["chunks"] > 0
    assert status["chunks"] == report["chunks_written"]


def test_french_docx_and_scanned_pdf_are_found_by_french_phrases(indexed: tuple) -> None:  # type: ignore[type-arg]
    _, home, _ = indexed
    hits = _cli("search", "demande de paiement du salaire", "--client", "Dupont SARL",
                home=home)["hits"]  # fmt: skip
    assert hits[0]["path"] == "Dupont SARL/demande_paiement_salaire.docx"
    hits = _cli("search", "le juge blond qui fume sur son île", home=home)["hits"]
    assert hits[0]["path"] == "Dupont SARL/francais.pdf"
    assert hits[0]["page"] == 1 and "whisky" in hits[0]["text"]
    assert set(hits[0]) >= {"path", "client", "page", "score", "text"}


def test_attachments_are_their_own_sources(indexed: tuple) -> None:  # type: ignore[type-arg]
    _, home, _ = indexed
    hits = _cli("search", "attachment", "--client", "Acme", "--top-k", "20", home=home)["hits"]
    assert any(h["source"] for h in hits if h["path"].endswith((".msg", ".eml")))


def test_no_plaintext_sentence_or_file_name_in_the_vault(indexed: tuple) -> None:  # type: ignore[type-arg]
    _, home, _ = indexed
    needles = [s.encode() for s in SECRETS] + [s.encode("utf-16-le") for s in SECRETS]
    files = [p for p in home.rglob("*") if p.is_file()]
    assert len(files) >= 4
    for path in files:
        data = path.read_bytes()
        for needle in needles:
            assert needle not in data, f"{needle!r} readable in {path.relative_to(home)}"
    assert (home.stat().st_mode & 0o077) == 0


def test_rerun_over_the_tree_changes_nothing(indexed: tuple) -> None:  # type: ignore[type-arg]
    root, home, report = indexed
    again = _cli("index", str(root), home=home)
    total = report["added"] + report["failed"]
    assert (again["unchanged"], again["chunks_written"], again["added"]) == (total, 0, 0)


def test_temporary_files_stay_in_the_vault_and_are_removed(indexed: tuple) -> None:  # type: ignore[type-arg]
    _, home, _ = indexed
    scratch = home / "tmp"
    # the .msg/.eml attachments and legacy files went through the scratch directory
    assert scratch.is_dir() and (scratch.stat().st_mode & 0o077) == 0
    # converted copies are deleted; only a tiny session-id file of a parser library may remain
    left = [p for p in scratch.rglob("*") if p.is_file()]
    assert all(p.stat().st_size < 128 for p in left), left
