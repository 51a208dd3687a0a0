import os
from pathlib import Path

from huisclos.connectors.scan import SHARED_CLIENT, client_of, ignore_filter, scan_root

DEFAULT = ("~$*", ".~lock.*", "*.tmp", "*.temp", "*.swp", "*~", ".*")


def test_clients_are_first_level_folders() -> None:
    assert client_of("Dupont SARL/factures/f.pdf") == "Dupont SARL"
    assert client_of("procedures.md") == SHARED_CLIENT


def test_scan_skips_noise_and_symlinks(tmp_path: Path) -> None:
    (tmp_path / "Dupont" / "sub").mkdir(parents=True)
    (tmp_path / "Dupont" / "sub" / "facture.pdf").write_bytes(b"%PDF")
    (tmp_path / "Dupont" / "~$facture.docx").write_bytes(b"lock")
    (tmp_path / "Dupont" / ".hidden").write_text("x")
    (tmp_path / ".git").mkdir()
    (tmp_path / ".git" / "config").write_text("x")
    (tmp_path / "Dupont" / "draft.tmp").write_text("x")
    (tmp_path / "racine.txt").write_text("x")
    outside = tmp_path.parent / "outside.txt"
    outside.write_text("secret")
    os.symlink(outside, tmp_path / "Dupont" / "lien.txt")
    found = {f.rel: f for f in scan_root(tmp_path, ignore_filter(DEFAULT))}
    assert set(found) == {"Dupont/sub/facture.pdf", "racine.txt"}
    assert found["Dupont/sub/facture.pdf"].client == "Dupont"
    assert found["Dupont/sub/facture.pdf"].kind == "pdf"
    assert found["racine.txt"].client == SHARED_CLIENT
