"""Print the requirements one image installs: ``python image_requirements.py broker``.

Dockerfile.<name> runs this (standard library only) on the copied pyproject.toml and feeds the
output to ``pip install -r``, then installs the package itself with ``--no-deps``. The lines are
``[project] dependencies`` verbatim (versions and markers included), restricted to the
distributions ``[tool.crbroker.image-dependencies] <name>`` lists; a name not listed there
gets every dependency, so ``pip install .`` and such an image hold the same set.
"""

from __future__ import annotations

import re
import sys
import tomllib
from pathlib import Path

_NAME = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)")


def canonical(name: str) -> str:
    """PEP 503 normal form: ``PyYAML`` and ``pyyaml``, ``a_b`` and ``a-b`` are one name."""
    return re.sub(r"[-_.]+", "-", name).lower()


def requirement_name(requirement: str) -> str:
    match = _NAME.match(requirement)
    if match is None:
        raise ValueError(f"not a requirement: {requirement!r}")
    return canonical(match.group(1))


def image_requirements(pyproject: dict[str, object], image: str) -> list[str]:
    project = pyproject["project"]
    assert isinstance(project, dict)
    dependencies: list[str] = list(project["dependencies"])
    tool = pyproject.get("tool", {})
    assert isinstance(tool, dict)
    selections = tool.get("crbroker", {}).get("image-dependencies", {})
    if image not in selections:
        return dependencies
    wanted = {canonical(n) for n in selections[image]}
    declared = {requirement_name(r) for r in dependencies}
    unknown = sorted(wanted - declared)
    if unknown:
        raise ValueError(
            f"[tool.crbroker.image-dependencies] {image} names {', '.join(unknown)}, "
            "which [project] dependencies does not declare"
        )
    return [r for r in dependencies if requirement_name(r) in wanted]


def main(argv: list[str]) -> int:
    if len(argv) not in (1, 2):
        print("usage: image_requirements.py IMAGE [PYPROJECT]", file=sys.stderr)
        return 2
    path = Path(argv[1] if len(argv) == 2 else "pyproject.toml")
    try:
        lines = image_requirements(tomllib.loads(path.read_text()), argv[0])
    except ValueError as exc:
        print(f"image_requirements.py: {exc}", file=sys.stderr)
        return 1
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
