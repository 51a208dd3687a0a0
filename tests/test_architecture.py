"""The house's plan holds: imports flow one way, and every package is installed.

The rooms and their order are stated in ``pipeline/__init__.py``'s docstring;
this test reads every module's imports (top level, inside functions and under
``TYPE_CHECKING`` alike) and fails on any that goes up or sideways.
"""

from __future__ import annotations

import ast
import tomllib
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import REPO

FOLDERS = {"config": "config", "connectors": "connectors", "index": "index", "pipeline": "pipeline"}

# Rank of each room: a module may import its own room and rooms of a lower rank only.
# Rooms of equal rank are peers and never import each other.
RANKS = {
    "huisclos.config": 0,
    "huisclos.connectors": 1,
    "huisclos.index": 1,
    "huisclos.pipeline.models": 2,
    "huisclos.pipeline.indexing": 3,
    "huisclos.pipeline.answering": 3,
    "huisclos.pipeline.privacy": 4,
    "huisclos.pipeline.api": 5,
    "huisclos.pipeline.repair": 6,
    "huisclos.pipeline.evaluation": 6,
    "huisclos.pipeline.server": 6,
    "huisclos.pipeline.cli": 7,
    "huisclos.pipeline": 8,  # the package itself: the public facade re-exports them all
}


def modules() -> Iterator[tuple[str, Path]]:
    for folder in FOLDERS.values():
        for path in sorted((REPO / folder).rglob("*.py")):
            parts = list(path.relative_to(REPO).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            yield "huisclos." + ".".join(parts), path


def room(module: str) -> str:
    """The longest room name that ``module`` is, or lies in."""
    candidates = [name for name in RANKS if module == name or module.startswith(name + ".")]
    return max(candidates, key=len)


def imports(module: str, path: Path) -> Iterator[tuple[int, str]]:
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                name = f"{base}.{node.module}" if node.module else base
            else:
                name = node.module or ""
            # ``from huisclos.pipeline import cli`` imports the submodule ``cli``;
            # ``from huisclos.pipeline import Huisclos`` imports from the facade.
            for alias in node.names:
                yield node.lineno, f"{name}.{alias.name}"


def target_room(name: str) -> str | None:
    """The room an imported name lies in (a function or class: its module's room)."""
    return room(name) if name.startswith("huisclos.") else None


def test_imports_flow_one_way_between_rooms() -> None:
    wrong = []
    for module, path in modules():
        source = room(module)
        for line, name in imports(module, path):
            target = target_room(name)
            if target is None or target == source or source == "huisclos.pipeline":
                continue
            if RANKS[target] >= RANKS[source]:
                wrong.append(f"{path.relative_to(REPO)}:{line} ({source}) imports {name}")
    assert not wrong, "imports against the layers:\n" + "\n".join(wrong)


def test_the_layer_check_sees_an_import_that_goes_up(tmp_path: Path) -> None:
    module = tmp_path / "ingest.py"
    module.write_text(
        "def f():\n    from huisclos.pipeline.api import Huisclos\nfrom ..answering import search\n"
    )
    found = {
        (target_room(name), line)
        for line, name in imports("huisclos.pipeline.indexing.ingest", module)
    }
    assert ("huisclos.pipeline.api", 2) in found
    assert ("huisclos.pipeline.answering", 3) in found


@pytest.mark.parametrize("lower", ["huisclos.config", "huisclos.connectors", "huisclos.index"])
def test_lower_rooms_never_import_the_pipeline(lower: str) -> None:
    for module, path in modules():
        if room(module) == lower:
            for line, name in imports(module, path):
                assert not name.startswith("huisclos.pipeline"), f"{path}:{line} imports {name}"


def test_every_package_folder_is_installed_and_nothing_else() -> None:
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))
    declared = set(pyproject["tool"]["setuptools"]["packages"])
    on_disk = {
        module
        for module, path in modules()
        if path.name == "__init__.py" and path.parent.name != "__pycache__"
    }
    assert declared == on_disk
    package_dirs = pyproject["tool"]["setuptools"]["package-dir"]
    assert package_dirs == {f"huisclos.{name}": folder for name, folder in FOLDERS.items()}
