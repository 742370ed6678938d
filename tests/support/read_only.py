"""A directory nobody can create files in, root included (as on a read-only root filesystem).

``chmod`` does not stop root, so as root the directory is a read-only bind mount; where
mounting is not permitted the test is skipped with the reason. Not root: mode 0555 does it.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest


@contextlib.contextmanager
def read_only_dir(path: Path, *, files: dict[str, bytes] | None = None) -> Iterator[Path]:
    """``path`` (created, holding ``files``) made unwritable for the duration."""
    path.mkdir(parents=True, exist_ok=True)
    for name, data in (files or {}).items():
        (path / name).write_bytes(data)
    if os.geteuid() != 0:
        path.chmod(0o555)
        try:
            yield path
        finally:
            path.chmod(0o755)
        return
    mounted = subprocess.run(
        ["mount", "--bind", "-o", "ro", str(path), str(path)], capture_output=True, text=True
    )
    if mounted.returncode != 0:
        pytest.skip(f"root without a read-only bind mount: {mounted.stderr.strip()}")
    try:
        yield path
    finally:
        subprocess.run(["umount", str(path)], check=True)


def assert_unwritable(path: Path) -> None:
    """The premise of the tests that use :func:`read_only_dir`."""
    with pytest.raises(OSError):
        (path / ".write-test").write_bytes(b"x")
