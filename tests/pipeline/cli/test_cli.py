import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from huisclos.pipeline.cli import main


def test_status_of_a_new_vault(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["status", "--json"]) == 0
    status = json.loads(capsys.readouterr().out)
    assert (status["files"], status["chunks"], status["failed"]) == (0, 0, 0)
    assert status["clients"] == [] and status["failures"] == []


def test_wrong_key_exits_1_with_a_clear_message(
    vault_home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["status"]) == 0
    (vault_home / "master.key").write_text("QUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUE=\n")
    (vault_home / "master.key").chmod(0o600)
    assert main(["status"]) == 1
    assert "does not open the vault" in capsys.readouterr().err


def test_index_of_a_missing_folder_exits_1(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["index", str(tmp_path / "absent")]) == 1
    assert "not a directory" in capsys.readouterr().err


def test_usage_error_exits_2() -> None:
    with pytest.raises(SystemExit) as exc:
        main(["search"])
    assert exc.value.code == 2


def test_the_cli_turns_the_network_guard_on(vault_home: Path) -> None:
    script = (
        "import socket, sys\n"
        "from huisclos.config.privacy import guard_installed\n"
        "assert not guard_installed()\n"
        "from huisclos.pipeline.cli import main\n"
        "assert main(['status']) == 0\n"
        "s = socket.socket()\n"
        "try:\n"
        "    s.connect(('192.0.2.10', 443))\n"
        "except PermissionError as exc:\n"
        "    print('refused:', type(exc).__name__)\n"
    )
    env = {**os.environ, "HUISCLOS_HOME": str(vault_home)}
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         env=env, timeout=120, check=True)  # fmt: skip
    assert "refused: OfflineViolation" in out.stdout
