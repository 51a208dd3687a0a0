"""What the package imports is what it declares, and the lock pins what it declares.

``pyproject.toml`` lists the distributions huisclos needs; ``requirements.lock`` pins
them and everything they need (``make lock`` makes it from ``pyproject.toml``), and
``make install`` installs the lock without resolving anything. An import of a
distribution that is installed here only because something else happens to need it
works today and breaks the day that something drops it, so every third-party module
imported by the package (top level, inside functions, under ``TYPE_CHECKING``) must
come from a distribution declared in ``[project] dependencies``. The distribution of a
module is found in the installed metadata, not in a list kept by hand.
"""

from __future__ import annotations

import functools
import importlib.metadata
import re
import sys
import tomllib

from tests.conftest import REPO
from tests.test_architecture import imports, modules

PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"]
LOCK = (REPO / "requirements.lock").read_text(encoding="utf-8")
LEFT_OUT_HEADING = "# The following packages are considered to be unsafe in a requirements file:"


def canonical(name: str) -> str:
    """A distribution name as the registry compares them (PEP 503)."""
    return re.sub(r"[-_.]+", "-", name).lower()


def requirement_name(requirement: str) -> str:
    match = re.match(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)", requirement)
    assert match, f"cannot read a distribution name in {requirement!r}"
    return canonical(match.group(1))


def declared(*, extras: bool) -> set[str]:
    requirements = list(PYPROJECT["dependencies"])
    if extras:
        for group in PYPROJECT.get("optional-dependencies", {}).values():
            requirements += group
    return {requirement_name(requirement) for requirement in requirements}


def pinned() -> dict[str, str]:
    """Each distribution the lock pins, with its version."""
    pins = {}
    for line in LOCK.splitlines():
        name, sep, version = line.partition("==")
        if sep and not line.startswith((" ", "#")):
            pins[canonical(name)] = version.strip()
    return pins


def left_out() -> set[str]:
    """What the lock names without pinning: installed by the Makefile on its own."""
    _, _, tail = LOCK.partition(LEFT_OUT_HEADING)
    return {canonical(line.lstrip("# ").strip()) for line in tail.splitlines() if line.strip()}


@functools.cache
def providers() -> dict[str, list[str]]:
    return importlib.metadata.packages_distributions()


@functools.cache
def files_of(distribution: str) -> tuple[str, ...]:
    return tuple(str(path) for path in importlib.metadata.distribution(distribution).files or ())


def distributions_of(module: str) -> set[str]:
    """The installed distributions that provide ``module`` (empty if none does).

    A namespace package (``haystack_integrations``) is shared by several
    distributions: the one whose files hold the deepest part of the dotted name wins.
    """
    parts = module.split(".")
    candidates = providers().get(parts[0], [])
    if len(candidates) > 1:
        for depth in range(len(parts), 1, -1):
            prefix = "/".join(parts[:depth])
            owners = [
                name
                for name in candidates
                if any(f == prefix + ".py" or f.startswith(prefix + "/") for f in files_of(name))
            ]
            if owners:
                candidates = owners
                break
    return {canonical(name) for name in candidates}


def third_party_imports() -> list[tuple[str, int, str]]:
    """(file, line, imported name) of every import that is neither stdlib nor huisclos."""
    found = []
    for module, path in modules():
        for line, name in imports(module, path):
            top = name.partition(".")[0]
            if top != "huisclos" and top not in sys.stdlib_module_names:
                found.append((str(path.relative_to(REPO)), line, name))
    return found


def test_the_scan_sees_the_package_third_party_imports() -> None:
    # guards the test below against passing on nothing: these are imported for sure
    names = {name.partition(".")[0] for _, _, name in third_party_imports()}
    assert {"haystack", "chromadb", "pydantic"} <= names


def test_every_distribution_the_package_imports_is_declared() -> None:
    runtime = declared(extras=False)
    wrong = []
    for where, line, name in third_party_imports():
        owners = distributions_of(name)
        if not owners:
            wrong.append(f"{where}:{line} imports {name}, which no installed distribution provides")
        elif not owners & runtime:
            wrong.append(
                f"{where}:{line} imports {name} from {' or '.join(sorted(owners))}, "
                "missing from [project] dependencies in pyproject.toml"
            )
    assert wrong == [], "\n".join(wrong)


def test_the_lock_pins_every_declared_distribution() -> None:
    assert "make lock" in LOCK.partition("\n\n")[0], "the lock's header names the command"
    missing = declared(extras=True) - pinned().keys() - left_out()
    assert missing == set(), "run `make lock`: pyproject.toml declares what the lock lacks"


def test_the_lock_brings_no_cuda_build() -> None:
    # torch (CPU build) is installed first by `make install`; torch or torchvision from
    # the registry, or anything NVIDIA, in the lock would bring CUDA builds instead
    cuda = {
        n for n in pinned() if n in {"torch", "torchvision", "triton"} or n.startswith("nvidia")
    }
    assert cuda == set()
    assert "torch" in left_out()
