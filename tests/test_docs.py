"""The documentation holds: generated pages match the code, links resolve, the README is short.

``docs/generate.py`` is loaded from its path (``docs/`` is not a package). The
link check reads every relative Markdown link ``[text](target)`` outside code
blocks in ``README.md`` and ``docs/*.md``: the target file must exist and, for
a Markdown target, its ``#anchor`` must be one of its headings.
"""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path
from types import ModuleType

import pytest

from huisclos.config import Settings
from tests.conftest import REPO

README_MAX_LINES = 150
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
FENCE = re.compile(r"^\s*```")


def load_generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location("docs_generate", REPO / "docs" / "generate.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def pages() -> list[Path]:
    return [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]


def prose(text: str) -> list[str]:
    """The lines of a Markdown page outside fenced code blocks."""
    lines, fenced = [], False
    for line in text.splitlines():
        if FENCE.match(line):
            fenced = not fenced
        elif not fenced:
            lines.append(line)
    return lines


def anchors(path: Path) -> set[str]:
    """GitHub's anchors for the headings of a page."""
    found = set()
    for line in prose(path.read_text(encoding="utf-8")):
        if line.startswith("#"):
            heading = line.lstrip("#").strip().lower()
            found.add("".join(c for c in heading if c.isalnum() or c in " -_").replace(" ", "-"))
    return found


def broken_links(page: Path) -> list[str]:
    broken = []
    for line in prose(page.read_text(encoding="utf-8")):
        for target in LINK.findall(line):
            if re.match(r"[a-z]+:", target):  # https:, mailto:
                continue
            file_part, _, anchor = target.partition("#")
            path = (page.parent / file_part).resolve() if file_part else page
            if not path.exists():
                broken.append(f"{page.name}: {target} (no such file)")
            elif anchor and path.suffix == ".md" and anchor not in anchors(path):
                broken.append(f"{page.name}: {target} (no such heading)")
    return broken


def test_generated_pages_are_up_to_date() -> None:
    stale = load_generator().stale_pages()
    assert not stale, f"stale: {[p.name for p in stale]}; run python docs/generate.py"


def test_a_stale_page_is_reported(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    generate = load_generator()
    for path, text in generate.pages().items():  # as they should be
        (tmp_path / path.name).write_text(text, encoding="utf-8")
    (tmp_path / "openapi.json").write_text((REPO / "docs" / "openapi.json").read_text())
    configuration = tmp_path / "configuration.md"
    configuration.write_text(configuration.read_text().replace("HUISCLOS_CHUNK_TOKENS", "X"))
    monkeypatch.setattr(generate, "DOCS", tmp_path)
    assert generate.stale_pages() == [configuration]
    assert generate.main([]) == 0
    assert "HUISCLOS_CHUNK_TOKENS" in configuration.read_text()
    assert generate.main(["--check"]) == 0


def test_every_subcommand_and_setting_is_documented() -> None:
    cli = (REPO / "docs" / "cli.md").read_text(encoding="utf-8")
    for command in ("huisclos index", "huisclos audit verify", "huisclos eval answers"):
        assert f"### {command}\n" in cli
    configuration = (REPO / "docs" / "configuration.md").read_text(encoding="utf-8")
    for name in Settings.model_fields:
        assert f"| `{name}` | `HUISCLOS_{name.upper()}` |" in configuration


def test_every_setting_has_a_description() -> None:
    assert [name for name, field in Settings.model_fields.items() if not field.description] == []


def test_the_readme_is_a_front_door() -> None:
    lines = (REPO / "README.md").read_text(encoding="utf-8").splitlines()
    assert len(lines) <= README_MAX_LINES
    first_screen = "\n".join(lines[:25])
    assert "make run" in first_screen and "make test" in first_screen


@pytest.mark.parametrize("page", pages(), ids=lambda p: p.name)
def test_relative_links_resolve(page: Path) -> None:
    assert broken_links(page) == []


def test_the_link_check_sees_a_broken_link(tmp_path: Path) -> None:
    (tmp_path / "other.md").write_text("# A heading\n")
    page = tmp_path / "page.md"
    page.write_text(
        "[ok](other.md#a-heading) [gone](missing.md) [bad](other.md#nope)\n"
        "```\n[in code](ignored.md)\n```\n[web](https://example.org)\n"
    )
    assert broken_links(page) == [
        "page.md: missing.md (no such file)",
        "page.md: other.md#nope (no such heading)",
    ]
