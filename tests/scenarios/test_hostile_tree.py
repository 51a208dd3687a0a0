"""A client tree with hostile names and special files: indexed, searchable, nothing followed.

Names with newlines, tabs, emoji, right-to-left scripts, decomposed accents,
names that are not valid UTF-8 (a share written by an old Windows or Mac
client), 255-byte names; symbolic links to files and folders outside the root
(not followed); a named pipe (never opened: reading it would block).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import unicodedata
from pathlib import Path

import pytest

from huisclos.config import Settings
from huisclos.pipeline import Huisclos

pytestmark = pytest.mark.integration

CLIENT = "Dupont SARL"
FILES: dict[str, str] = {
    "facture\nmars.txt": "Facture de mars pour la maintenance du serveur : 310 euros.",
    "tab\tulé.txt": "Attestation de vigilance URSSAF pour le second trimestre.",
    "relevé 😀 ✓.txt": "Relevé bancaire du compte courant professionnel.",
    unicodedata.normalize("NFD", "kinésithérapie séances.txt"): (
        "Ordonnance pour dix séances de kinésithérapie du genou."
    ),
    "עברית مرحبا.txt": "Contrat de traduction vers l'hébreu et l'arabe.",
    " espaces  autour .txt": "Procès-verbal de l'assemblée générale ordinaire.",
    "anti\\slash.txt": "Bulletin de salaire du mois de février.",
    "n" * 251 + ".txt": "Déclaration de TVA déposée en retard avec majoration.",
}
LATIN1_NAME = b"devis-\xe9t\xe9.txt"  # not UTF-8: Python gives it surrogate escapes
LATIN1_TEXT = "Devis pour la rénovation de la toiture du garage."
OUTSIDE_TEXT = "Données confidentielles hors du dossier surveillé."


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    root = tmp_path / "Clients"
    client = root / CLIENT
    client.mkdir(parents=True)
    for name, text in FILES.items():
        (client / name).write_text(text + "\n", encoding="utf-8")
    with open(os.path.join(os.fsencode(client), LATIN1_NAME), "w", encoding="utf-8") as handle:
        handle.write(LATIN1_TEXT + "\n")
    outside = tmp_path / "ailleurs"
    outside.mkdir()
    (outside / "secret.txt").write_text(OUTSIDE_TEXT + "\n")
    (client / "lien-fichier.txt").symlink_to(outside / "secret.txt")
    (client / "lien-dossier").symlink_to(outside, target_is_directory=True)
    os.mkfifo(client / "tube.txt")
    return root


def test_hostile_names_are_indexed_and_found_by_their_exact_path(
    tree: Path, settings: Settings
) -> None:
    with Huisclos(settings) as hc:
        report = hc.index(tree)
        assert report.failed == 0
        files = {f["path"]: f for f in hc.files()}
        expected = {f"{CLIENT}/{name}" for name in FILES} | {f"{CLIENT}/{os.fsdecode(LATIN1_NAME)}"}
        assert set(files) == expected  # links and the pipe are not files of the client
        assert all(f["state"] == "indexed" for f in files.values())
        for name, text in [*FILES.items(), (os.fsdecode(LATIN1_NAME), LATIN1_TEXT)]:
            hits = hc.search(text, client=CLIENT, top_k=1)
            assert hits and hits[0].path == f"{CLIENT}/{name}", name
            assert hits[0].text == text
        assert not [h for h in hc.search(OUTSIDE_TEXT, top_k=5) if "Données" in h.text]
        again = hc.index(tree)  # a second run finds nothing new
        assert (again.added, again.updated, again.chunks_written) == (0, 0, 0)


def test_the_cli_prints_hostile_names_without_breaking(tree: Path, settings: Settings) -> None:
    env = {**os.environ, "HUISCLOS_HOME": str(settings.home), "HUISCLOS_KEY_SOURCE": "file"}
    command = [sys.executable, "-m", "huisclos.pipeline.cli"]
    done = subprocess.run(
        [*command, "index", str(tree)], env=env, capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr
    found = subprocess.run(
        [*command, "search", LATIN1_TEXT, "--json"],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert found.returncode == 0, found.stderr
    hits = json.loads(found.stdout)["hits"]
    assert hits[0]["text"] == LATIN1_TEXT
    assert hits[0]["path"].startswith(f"{CLIENT}/devis-")
    plain = subprocess.run(
        [*command, "search", FILES["facture\nmars.txt"]],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert plain.returncode == 0, plain.stderr


def test_the_http_api_shows_a_name_that_is_not_utf8(tree: Path, settings: Settings) -> None:
    import httpx

    from tests.pipeline.server.test_server import _served

    with Huisclos(settings) as hc:
        hc.index(tree)
        with _served(hc) as base, httpx.Client(base_url=base, timeout=120) as http:
            found = http.post(
                "/api/search",
                json={"query": LATIN1_TEXT, "top_k": 1},
                headers={"X-Huisclos": "1"},
            )
            assert found.status_code == 200, found.text
            hit = found.json()["hits"][0]
            assert hit["path"] == f"{CLIENT}/devis-\\xe9t\\xe9.txt"  # the odd bytes, shown
            assert hit["text"] == LATIN1_TEXT
            assert http.get("/api/status").status_code == 200
