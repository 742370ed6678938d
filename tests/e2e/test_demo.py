"""``python -m deploy.demo`` (what ``make demo`` runs after ``make deps``), as a subprocess."""

from __future__ import annotations

import glob
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from deploy.sample_images import sample_images
from tests.support.eventually import eventually
from tests.support.registry import require_registry

REPO = Path(__file__).resolve().parents[2]

pytestmark = [pytest.mark.registry, pytest.mark.timeout(120)]


def demo(tmp_path: Path, *args: str) -> subprocess.Popen[str]:
    """The demo with its work directory under ``tmp_path`` (so leftovers are ours alone)."""
    return subprocess.Popen(
        [sys.executable, "-m", "deploy.demo", *args],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO), "TMPDIR": str(tmp_path)},
    )


def leftovers(marker: str) -> list[str]:
    """Processes whose command line or working directory mentions ``marker``."""
    found = []
    for proc in glob.glob("/proc/[0-9]*"):
        try:
            cwd = os.readlink(f"{proc}/cwd")
            cmd = Path(f"{proc}/cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if marker in cwd or marker in cmd:
            found.append(f"{proc}: {cmd}")
    return found


def test_demo_scans_every_sample_image_and_writes_sboms(tmp_path: Path) -> None:
    require_registry()
    out = tmp_path / "sboms"
    proc = demo(tmp_path, "--output", str(out))
    stdout, _ = proc.communicate(timeout=90)
    assert proc.returncode == 0, stdout
    rows = {
        line.split()[0]: line.split() for line in stdout.splitlines() if line.startswith("demo/")
    }
    for sample in sample_images():
        assert sample.reference in rows, stdout
        _ref, distro, _version, packages, seconds = rows[sample.reference]
        assert distro == sample.distro_id, stdout
        assert int(packages) == len(sample.packages), stdout
        assert float(seconds) < 60, stdout
        name = sample.reference.replace("/", "_").replace(":", "_") + ".cdx.json"
        sbom = json.loads((out / name).read_text())
        assert {c["name"] for c in sbom["components"] if c.get("purl")} == set(sample.packages)
    assert str(out.resolve()) in stdout
    left = leftovers(str(tmp_path))
    assert not left, f"{left}\n{stdout}"


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_demo_stops_everything_when_interrupted(tmp_path: Path, sig: signal.Signals) -> None:
    require_registry()
    proc = demo(tmp_path, "--output", str(tmp_path / "sboms"))
    assert proc.stdout is not None
    # wait until the services are being started, then interrupt
    deadline = time.monotonic() + 30
    seen = ""
    while "[4/6]" not in seen and time.monotonic() < deadline:
        seen += proc.stdout.read(1)
    assert "[4/6]" in seen, seen
    time.sleep(0.3)  # into the start of the services: the moment under test
    proc.send_signal(sig)
    rest, _ = proc.communicate(timeout=30)
    assert proc.returncode == 130, seen + rest
    assert "interrupted" in rest
    eventually(lambda: not leftovers(str(tmp_path)), timeout=2)


def test_demo_names_the_failing_step_and_exits_non_zero(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "deploy.demo", "--output", str(tmp_path / "sboms")],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        env={
            "PATH": "/nonexistent",
            "PYTHONPATH": str(REPO),
            "HOME": str(tmp_path),
            "TMPDIR": str(tmp_path),
        },
    )
    assert proc.returncode == 1
    assert "[1/6] checking prerequisites ... failed" in proc.stdout
    assert "missing htpasswd" in proc.stderr and "make deps" in proc.stderr
    assert not leftovers(str(tmp_path))
