"""Every runtime import is declared in pyproject's main dependencies, and each image's list
(``[tool.crbroker.image-dependencies]``) covers the packages that image copies in.

The imports are read from the source (AST, ``if TYPE_CHECKING:`` blocks left out) and mapped
to distributions through this environment's installed metadata, so an import that only works
because a dev extra or another package brought its distribution along is caught here rather
than by a crash in a fresh install or an image.
"""

from __future__ import annotations

import ast
import importlib.metadata
import sys
import tomllib
from collections.abc import Iterator
from pathlib import Path

import pytest

from deploy.image_requirements import canonical, image_requirements, requirement_name
from tests.e2e.test_dockerfiles import REPO, parse, values

PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())
PROJECT = canonical(PYPROJECT["project"]["name"])


def runtime_packages() -> list[str]:
    """Top-level packages the wheel ships (setuptools' ``packages.find`` include patterns)."""
    patterns = PYPROJECT["tool"]["setuptools"]["packages"]["find"]["include"]
    found = {p.rstrip("*").rstrip(".") for p in patterns}
    return sorted(name for name in found if (REPO / name / "__init__.py").exists())


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imports(node: ast.AST) -> Iterator[str]:
    for child in ast.iter_child_nodes(node):
        if isinstance(child, ast.If) and _is_type_checking(child):
            for stmt in child.orelse:
                yield from _imports(stmt)
            continue
        if isinstance(child, ast.Import):
            yield from (alias.name.split(".")[0] for alias in child.names)
        elif isinstance(child, ast.ImportFrom) and child.level == 0 and child.module:
            yield child.module.split(".")[0]
        yield from _imports(child)


def third_party_imports(package: str) -> dict[str, str]:
    """Top-level module -> the first file importing it, for modules outside the stdlib."""
    found: dict[str, str] = {}
    for path in sorted((REPO / package).rglob("*.py")):
        for module in _imports(ast.parse(path.read_text(), str(path))):
            if module not in sys.stdlib_module_names and module != "__future__":
                found.setdefault(module, str(path.relative_to(REPO)))
    return found


def distributions_of(module: str) -> set[str]:
    return {canonical(d) for d in importlib.metadata.packages_distributions().get(module, [])}


def declared() -> set[str]:
    return {requirement_name(r) for r in PYPROJECT["project"]["dependencies"]}


@pytest.mark.parametrize("package", runtime_packages())
def test_every_runtime_import_is_a_main_dependency(package: str) -> None:
    own = set(runtime_packages())
    missing = []
    for module, where in third_party_imports(package).items():
        if module in own:
            continue
        dists = distributions_of(module)
        if not dists:
            missing.append(f"{where} imports {module}, which no installed distribution provides")
        elif not dists & declared():
            missing.append(f"{where} imports {module} ({', '.join(sorted(dists))}): not declared")
    assert not missing, "pyproject [project] dependencies lacks:\n" + "\n".join(missing)


def test_runtime_packages_are_the_ones_shipped() -> None:
    assert {"shared", "broker_client", "broker_server", "cr_agent"} <= set(runtime_packages())
    # the test-only helpers are not part of what is installed
    assert not {"deploy", "tests", "bench"} & set(runtime_packages())


def image_selections() -> dict[str, list[str]]:
    selections: dict[str, list[str]] = PYPROJECT["tool"]["crbroker"]["image-dependencies"]
    return selections


#: project packages an image leaves out although its code imports them, and why: the feature
#: needing them is not that image's job, and says so when asked for
LEFT_OUT = {
    "agent": {
        "control_plane": "cr-agent scan --advisories: a usage error in the image (cr_agent.cli)",
    },
}


def copied_packages(dockerfile: Path) -> set[str]:
    sources = {s for args in values(parse(dockerfile), "COPY") for s in args.split()[:-1]}
    return sources & set(runtime_packages())


@pytest.mark.parametrize("image", sorted(image_selections()))
def test_image_dependency_list_covers_what_the_image_copies(image: str) -> None:
    dockerfile = REPO / f"Dockerfile.{image}"
    assert dockerfile.exists(), f"[tool.crbroker.image-dependencies] names {image}: no {dockerfile}"
    packages = copied_packages(dockerfile)
    assert "shared" in packages
    wanted = {canonical(n) for n in image_selections()[image]}
    missing = []
    for package in sorted(packages):
        for module, where in third_party_imports(package).items():
            if module in packages:
                continue
            if module in LEFT_OUT.get(image, {}):
                continue
            assert module not in runtime_packages(), f"{where} needs {module}, not copied in"
            if not distributions_of(module) & wanted:
                missing.append(f"{where} imports {module}")
    assert not missing, f"Dockerfile.{image} would not install:\n" + "\n".join(missing)
    # what the list leaves out really stays out
    lines = image_requirements(PYPROJECT, image)
    assert {requirement_name(line) for line in lines} == wanted
    assert set(lines) <= set(PYPROJECT["project"]["dependencies"])


def test_an_image_without_a_list_installs_every_dependency() -> None:
    assert image_requirements(PYPROJECT, "server") == PYPROJECT["project"]["dependencies"]


def test_an_image_list_naming_an_undeclared_distribution_is_refused() -> None:
    pyproject = {
        "project": {"dependencies": ["aiohttp>=3.9", "PyYAML>=6"]},
        "tool": {"crbroker": {"image-dependencies": {"x": ["pyyaml", "requests"]}}},
    }
    with pytest.raises(ValueError, match="names requests, which"):
        image_requirements(pyproject, "x")
    pyproject["tool"]["crbroker"]["image-dependencies"]["x"] = ["pyyaml"]  # type: ignore[index]
    assert image_requirements(pyproject, "x") == ["PyYAML>=6"]
