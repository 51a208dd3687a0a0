"""Every ``huisclos`` subcommand is reachable from ``build_parser()``, has a handler and help.

The list of subcommands is walked from the parser itself, so a subcommand added
without a handler or a help text fails here, and the generated CLI reference
(built from the same parser) cannot miss one.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from huisclos.pipeline.cli import build_parser, main


def subparsers(parser: argparse.ArgumentParser) -> Iterator[argparse._SubParsersAction[Any]]:
    return (a for a in parser._actions if isinstance(a, argparse._SubParsersAction))


def commands(
    parser: argparse.ArgumentParser, path: tuple[str, ...] = ()
) -> Iterator[tuple[tuple[str, ...], argparse.ArgumentParser]]:
    """Every subcommand path under ``parser`` (``("keys", "rotate")``...) with its parser."""
    for action in subparsers(parser):
        for name, child in action.choices.items():
            yield (*path, name), child
            yield from commands(child, (*path, name))


COMMANDS = dict(commands(build_parser()))
LEAVES = [path for path, parser in COMMANDS.items() if not any(subparsers(parser))]


def test_the_walk_reaches_the_commands_of_every_area() -> None:
    found = {" ".join(path) for path in LEAVES}
    expected = {"index", "watch", "status", "repair", "search", "ask", "serve", "models list",
                "models fetch", "forget", "include", "audit show", "audit verify", "register",
                "retention apply", "keys rotate", "eval retrieval", "eval answers"}  # fmt: skip
    assert expected <= found
    assert "models" not in found and "eval" not in found  # they only group subcommands


@pytest.mark.parametrize("path", LEAVES, ids=" ".join)
def test_every_subcommand_has_a_handler(path: tuple[str, ...]) -> None:
    assert callable(COMMANDS[path].get_default("handler"))


def test_every_subcommand_has_a_help_text() -> None:
    missing = []
    for parser in (build_parser(), *COMMANDS.values()):
        for action in subparsers(parser):
            helped = {choice.dest for choice in action._choices_actions if choice.help}
            missing += [f"{parser.prog} {name}" for name in action.choices if name not in helped]
    assert not missing


@pytest.mark.parametrize("path", [(), *COMMANDS], ids=lambda path: " ".join(path) or "huisclos")
def test_help_exits_0(path: tuple[str, ...], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main([*path, "--help"])
    assert exc.value.code == 0
    assert capsys.readouterr().out.startswith(" ".join(("usage: huisclos", *path)))


@pytest.mark.parametrize(
    "argv",
    [
        [],
        ["bogus"],
        ["search"],
        ["search", "bail", "--top-k", "many"],
        ["models"],
        ["eval", "retrieval"],
        ["forget", "--client", "A", "--path", "B"],
        ["keys", "turn"],
    ],
    ids=" ".join,
)
def test_a_usage_error_exits_2_and_leaves_the_vault_alone(
    argv: list[str], vault_home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("usage: huisclos") and "error:" in err
    assert not vault_home.exists()


def test_the_module_entry_point_answers_help() -> None:
    out = subprocess.run([sys.executable, "-m", "huisclos.pipeline.cli", "--help"],
                         capture_output=True, text=True, timeout=120, check=False)  # fmt: skip
    assert out.returncode == 0
    assert "keys" in out.stdout and "eval" in out.stdout
