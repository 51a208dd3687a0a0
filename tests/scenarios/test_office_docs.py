"""All of ``../shared/data/office-docs`` (971 real files of ~40 types, many malformed) in one run.

``huisclos index`` runs once for the module, as a user runs it (a subprocess:
conversion workers with their time and memory limits, the network guard on).
Then: every file on disk has its row in the manifest, indexed or failed with a
reason from the fixed list; nothing crashed or timed out; the run ends within
:data:`TIME_BOUND`; the text of scans (OCR only) is found by search, in French
with its accents and in English. The per-type report in ``docs/robustness.md``
comes from ``bench/office_docs.py``, the same run outside the tests.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import pytest

from huisclos.config import load_settings
from huisclos.connectors.convert import REASONS, SUPPORTED_KINDS
from huisclos.connectors.scan import ignore_filter, scan_root
from huisclos.connectors.worker_pool import CRASHED, TIMED_OUT
from huisclos.pipeline import Huisclos
from tests.conftest import OFFICE

pytestmark = pytest.mark.integration

TIME_BOUND = 45 * 60.0
"""Seconds the whole run may take on 2 cores (measured: about 15 minutes with other jobs)."""


@pytest.fixture(scope="module")
def indexed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    home = tmp_path_factory.mktemp("office-docs") / "vault"
    env = {**os.environ, "HUISCLOS_HOME": str(home), "HUISCLOS_KEY_SOURCE": "file"}
    began = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "huisclos.pipeline.cli", "index", str(OFFICE)],
        env=env,
        capture_output=True,
        text=True,
        timeout=TIME_BOUND + 600,
        check=False,
    )
    seconds = time.monotonic() - began
    assert done.returncode == 0, done.stderr[-3000:]
    settings = load_settings(home=home, key_source="file")
    hc = Huisclos(settings)
    on_disk = {f.rel for f in scan_root(OFFICE, ignore_filter(settings.ignore_patterns))}
    outcome = {"seconds": seconds, "hc": hc, "files": hc.files(), "on_disk": on_disk}
    yield outcome
    hc.close()


def test_the_run_ends_within_the_time_bound(indexed: dict[str, Any]) -> None:
    assert indexed["seconds"] < TIME_BOUND


def test_every_file_on_disk_is_in_the_manifest(indexed: dict[str, Any]) -> None:
    known = {f["path"] for f in indexed["files"]}
    assert len(indexed["on_disk"]) > 950
    assert indexed["on_disk"] - known == set()
    assert known - indexed["on_disk"] == set()


def test_every_failure_has_a_reason_from_the_fixed_list(indexed: dict[str, Any]) -> None:
    failed = [f for f in indexed["files"] if f["state"] == "failed"]
    assert failed, "a corpus of malformed files with no failure: the outcomes are not recorded"
    assert {f["reason"] for f in failed} <= REASONS | {CRASHED, TIMED_OUT}
    hung = [f["path"] for f in failed if f["reason"] in {CRASHED, TIMED_OUT}]
    assert hung == []  # no parser crashed its worker or ran out of time


def test_unsupported_means_a_kind_that_is_not_read(indexed: dict[str, Any]) -> None:
    for f in indexed["files"]:
        unsupported = f["state"] == "failed" and f["reason"] == "unsupported type"
        assert unsupported == (f["kind"] not in SUPPORTED_KINDS), f["path"]


def test_most_files_are_indexed_and_known_broken_ones_fail_for_their_reason(
    indexed: dict[str, Any],
) -> None:
    by_path = {f["path"]: f for f in indexed["files"]}
    readable = [f for f in indexed["files"] if f["kind"] in SUPPORTED_KINDS]
    ok = [f for f in readable if f["state"] == "indexed"]
    assert len(ok) / len(readable) > 0.85
    assert all(f["chunks"] > 0 for f in ok)
    for path in (
        "tika-test-documents/microsoft/testWORD_protected_passtika.docx",
        "tika-test-documents/microsoft/testEXCEL_protected_passtika.xls",
        "tika-test-documents/miscoffice/testODTEncrypted.odt",
        "unstructured-example-docs/pdf/password.pdf",
    ):
        assert by_path[path]["reason"] == "password-protected", path
    assert by_path["tika-test-documents/microsoft/testWORD_truncated.docx"]["reason"] == (
        "corrupt or unreadable"
    )
    assert by_path["unstructured-example-docs/empty.txt"]["reason"] == "empty: no text found"
    for path in (  # kinds read through mailbox, LibreOffice and pandoc
        "tika-test-documents/mail/complex.mbox",
        "docling-tests/odf/sources/odf_presentation_01.odp",
        "tika-test-documents/microsoft/testWORD_macros.docm",
        "unstructured-example-docs/winter-sports.epub",
    ):
        assert by_path[path]["state"] == "indexed", path


def test_french_text_of_a_scan_is_found_with_its_accents(indexed: dict[str, Any]) -> None:
    hits = indexed["hc"].search("Portez ce vieux whisky au juge blond qui fume", top_k=5)
    scan = [h for h in hits if h.path == "scanned-ocrmypdf/francais.pdf"]
    assert scan, [h.path for h in hits]
    assert any(ch in scan[0].text for ch in "éèàçù")  # OCR in French, accents kept


def test_english_text_of_scans_is_found(indexed: dict[str, Any]) -> None:
    hits = indexed["hc"].search(
        "LinnSequencer composition and performance tool for the professional musician",
        client="scanned-ocrmypdf",
        top_k=10,
    )
    scans = {  # the same page, scanned: images and PDFs without a text layer
        f"scanned-ocrmypdf/{name}"
        for name in (
            "linn.png",
            "linn.pdf",
            "cardinal.pdf",
            "jbig2.pdf",
            "ccitt.pdf",
            "skew.pdf",
            "rotated_skew.pdf",
            "poster.pdf",
        )
    }
    assert len(scans & {h.path for h in hits}) >= 5
