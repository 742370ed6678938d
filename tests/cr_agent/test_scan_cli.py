"""``cr-agent scan`` as a user runs it: a subprocess against the test registries."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
from pathlib import Path

from tests.support.images import DebPackage, Layer, build_image, dpkg_status, os_release, push

ROOT = Path(__file__).resolve().parents[2]


def _run(args, *, env=None, stdin=None, tmp_path=None):
    full_env = {k: v for k, v in os.environ.items() if k not in ("CR_CREDENTIALS", "DOCKER_CONFIG")}
    full_env.update({"HOME": str(tmp_path), **(env or {})})
    return subprocess.run(
        [sys.executable, "-m", "cr_agent", "scan", *args],
        cwd=ROOT,
        env=full_env,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
    )


def _image():
    return build_image(
        [
            Layer(
                {
                    "etc/os-release": os_release("debian", "12"),
                    "var/lib/dpkg/status": dpkg_status([DebPackage("curl", "7.88.1-10+deb12u5")]),
                },
                created_by="ADD rootfs /",
            ),
        ]
    )


def test_scan_prints_cyclonedx_to_file(plain_registry, unique_repo, tmp_path):
    push(plain_registry.url, unique_repo, _image(), tag="v1")
    out = tmp_path / "bom.json"
    proc = _run(
        [
            f"{plain_registry.host}/{unique_repo}:v1",
            "--plain-http",
            "--format",
            "cyclonedx",
            "--output",
            str(out),
            "--cache-dir",
            str(tmp_path / "c"),
        ],
        tmp_path=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(out.read_text())
    purls = [c.get("purl") for c in doc["components"]]
    assert "pkg:deb/debian/curl@7.88.1-10%2Bdeb12u5?arch=amd64&distro=debian-12" in purls
    assert proc.stdout == ""  # not a terminal: no progress, document went to the file


def test_scan_by_digest_to_stdout_as_native_json(plain_registry, unique_repo, tmp_path):
    image = _image()
    push(plain_registry.url, unique_repo, image, tag="v1")
    proc = _run(
        [f"{plain_registry.host}/{unique_repo}@{image.digest}", "--plain-http", "--no-cache"],
        tmp_path=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    assert doc["image"]["digest"] == image.digest
    assert [(p["name"], p["layer"]["createdBy"]) for p in doc["packages"]] == [
        ("curl", "ADD rootfs /")
    ]


def test_missing_tag_is_one_clear_message(plain_registry, unique_repo, tmp_path):
    proc = _run(
        [f"{plain_registry.host}/{unique_repo}:nope", "--plain-http", "--no-cache"],
        tmp_path=tmp_path,
    )
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines() == [
        f"cr-agent scan: error: manifest: {unique_repo}:nope not found"
    ]


def test_credentials_from_stdin_docker_config_and_helper(htpasswd_registry, unique_repo, tmp_path):
    reg = htpasswd_registry
    push(reg.url, unique_repo, _image(), username=reg.username, password=reg.password)
    ref = f"{reg.host}/{unique_repo}:latest"
    proc = _run(
        [ref, "--plain-http", "--no-cache", "--username", reg.username, "--password-stdin"],
        stdin=reg.password + "\n",
        tmp_path=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    # docker config "auths"
    cfg = tmp_path / "docker"
    cfg.mkdir()
    auth = base64.b64encode(f"{reg.username}:{reg.password}".encode()).decode()
    (cfg / "config.json").write_text(json.dumps({"auths": {reg.host: {"auth": auth}}}))
    proc = _run(
        [ref, "--plain-http", "--no-cache"], env={"DOCKER_CONFIG": str(cfg)}, tmp_path=tmp_path
    )
    assert proc.returncode == 0, proc.stderr
    # credHelpers: docker-credential-<name> get, server URL on stdin
    bindir = tmp_path / "bin"
    bindir.mkdir()
    helper = bindir / "docker-credential-crbtest"
    answer = json.dumps({"ServerURL": reg.host, "Username": reg.username, "Secret": reg.password})
    helper.write_text(
        f'#!/bin/sh\nread server\n[ "$server" = "{reg.host}" ] || exit 1\necho \'{answer}\'\n'
    )
    helper.chmod(0o755)
    (cfg / "config.json").write_text(json.dumps({"credHelpers": {reg.host: "crbtest"}}))
    env = {"DOCKER_CONFIG": str(cfg), "PATH": f"{bindir}:{os.environ['PATH']}"}
    proc = _run([ref, "--plain-http", "--no-cache"], env=env, tmp_path=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert reg.password not in proc.stderr
    # and without any credentials: a clear refusal
    proc = _run([ref, "--plain-http", "--no-cache"], tmp_path=tmp_path)
    assert proc.returncode == 1
    assert "requires credentials" in proc.stderr


def test_bad_reference_and_platform(tmp_path):
    proc = _run(["127.0.0.1:1/UPPER:tag", "--no-cache"], tmp_path=tmp_path)
    assert proc.returncode == 1 and "invalid repository name" in proc.stderr
    proc = _run(["127.0.0.1:1/x:tag", "--platform", "linux", "--no-cache"], tmp_path=tmp_path)
    assert proc.returncode == 1 and "platform 'linux' is not os/arch" in proc.stderr


def test_progress_only_when_stdout_is_a_terminal(plain_registry, unique_repo, tmp_path):
    import pty

    push(plain_registry.url, unique_repo, _image(), tag="v1")
    primary, secondary = pty.openpty()
    env = {k: v for k, v in os.environ.items() if k not in ("CR_CREDENTIALS", "DOCKER_CONFIG")}
    env["HOME"] = str(tmp_path)
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "cr_agent",
            "scan",
            f"{plain_registry.host}/{unique_repo}:v1",
            "--plain-http",
            "--no-cache",
            "--output",
            str(tmp_path / "out.json"),
        ],
        cwd=ROOT,
        env=env,
        stdout=secondary,
        stderr=subprocess.PIPE,
        text=True,
        timeout=120,
    )
    os.close(secondary)
    os.close(primary)
    assert proc.returncode == 0
    assert "layers 1/1" in proc.stderr  # the status line, shown because stdout is a terminal
    quiet = _run(
        [
            f"{plain_registry.host}/{unique_repo}:v1",
            "--plain-http",
            "--no-cache",
            "--output",
            str(tmp_path / "o2.json"),
        ],
        tmp_path=tmp_path,
    )
    assert quiet.returncode == 0 and "layers" not in quiet.stderr


def test_log_level_debug_prints_each_registry_request(plain_registry, unique_repo, tmp_path):
    push(plain_registry.url, unique_repo, _image(), tag="v1")
    ref = f"{plain_registry.host}/{unique_repo}:v1"
    proc = _run([ref, "--plain-http", "--no-cache", "--log-level", "debug"], tmp_path=tmp_path)
    assert proc.returncode == 0, proc.stderr
    lines = [json.loads(line) for line in proc.stderr.splitlines() if line.startswith("{")]
    requests = [e for e in lines if e["event"] == "registry http"]
    assert requests and all(e["level"] == "debug" for e in lines)
    assert any(e["url"].endswith(f"/v2/{unique_repo}/manifests/v1") for e in requests)
    assert {"resolved", "layer_done"} <= {e["event"] for e in lines}
    quiet = _run([ref, "--plain-http", "--no-cache"], tmp_path=tmp_path)
    assert quiet.returncode == 0 and quiet.stderr == ""


def test_bad_option_combinations_are_usage_errors(tmp_path):
    cases = [
        (["--log-level", "loud"], "unknown log level 'loud'"),
        (["--username", "u"], "--username needs --password-stdin"),
        (["--password-stdin"], "--password-stdin needs --username"),
        (["--timeout", "0"], "--timeout must be more than 0"),
    ]
    for extra, message in cases:
        proc = _run(["127.0.0.1:1/x:tag", "--no-cache", *extra], stdin="pw\n", tmp_path=tmp_path)
        assert proc.returncode == 2, (extra, proc.stderr)
        assert proc.stderr.startswith("usage: cr-agent scan"), proc.stderr
        assert message in proc.stderr and "Traceback" not in proc.stderr


def test_tls_error_against_a_plain_http_registry_suggests_the_flag(plain_registry, tmp_path):
    proc = _run([f"{plain_registry.host}/x:tag", "--no-cache"], tmp_path=tmp_path)
    assert proc.returncode == 1
    assert "TLS handshake" in proc.stderr and "try --plain-http" in proc.stderr
    assert plain_registry.host in proc.stderr


def test_a_hung_registry_is_reported_while_waiting_and_given_up(tmp_path):
    import socket
    import threading

    from cr_agent.cli import DEFAULT_TIMEOUT, TRIES

    # the default bound: a hung registry ends the command within about a minute
    assert DEFAULT_TIMEOUT * TRIES <= 60
    hang = socket.socket()
    hang.bind(("127.0.0.1", 0))
    hang.listen(8)
    accepted: list[socket.socket] = []

    def accept() -> None:
        while True:
            try:
                accepted.append(hang.accept()[0])  # and never answer
            except OSError:
                return

    threading.Thread(target=accept, daemon=True).start()
    try:
        host = f"127.0.0.1:{hang.getsockname()[1]}"
        proc = _run(
            [f"{host}/t/x:v1", "--plain-http", "--no-cache", "--timeout", "2"], tmp_path=tmp_path
        )
    finally:
        hang.close()
        for conn in accepted:
            conn.close()
    assert proc.returncode == 1
    notices = [line for line in proc.stderr.splitlines() if "has not answered" in line]
    assert len(notices) == TRIES, proc.stderr
    assert notices[0].startswith(f"cr-agent scan: waiting for {host}: GET /v2/t/x/manifests/v1")
    assert proc.stderr.splitlines()[-1].startswith("cr-agent scan: error: manifest:")


def test_an_unwritable_cache_directory_costs_the_cache_not_the_scan(
    plain_registry, unique_repo, tmp_path
):
    from tests.support.read_only import assert_unwritable, read_only_dir

    push(plain_registry.url, unique_repo, _image(), tag="v1")
    with read_only_dir(tmp_path / "cache") as cache:
        assert_unwritable(cache)
        proc = _run(
            [f"{plain_registry.host}/{unique_repo}:v1", "--plain-http", "--cache-dir", str(cache)],
            tmp_path=tmp_path,
        )
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["packages"][0]["name"] == "curl"
    assert f"layer cache {cache} is not usable" in proc.stderr


def test_scan_matches_advisory_files_without_a_server(plain_registry, unique_repo, tmp_path):
    push(plain_registry.url, unique_repo, _image(), tag="v1")
    feed = tmp_path / "feed"
    feed.mkdir()
    (feed / "DSA-1-1.json").write_text(
        json.dumps(
            {
                "id": "DSA-1-1",
                "modified": "2024-05-01T00:00:00Z",
                "aliases": ["CVE-2024-2398"],
                "severity": [
                    {"type": "CVSS_V3", "score": "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:N/A:N"}
                ],
                "affected": [
                    {
                        "package": {"ecosystem": "Debian:12", "name": "curl"},
                        "ranges": [
                            {
                                "type": "ECOSYSTEM",
                                "events": [{"introduced": "0"}, {"fixed": "7.88.1-10+deb12u6"}],
                            }
                        ],
                    }
                ],
            }
        )
    )
    (feed / "broken.json").write_text("{")
    proc = _run(
        [
            f"{plain_registry.host}/{unique_repo}:v1",
            "--plain-http",
            "--no-cache",
            "--format",
            "cyclonedx",
            "--advisories",
            str(feed),
        ],
        tmp_path=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    [curl] = [c for c in doc["components"] if c.get("name") == "curl"]
    [vulnerability] = doc["vulnerabilities"]
    assert vulnerability["id"] == "DSA-1-1"
    assert vulnerability["affects"][0]["ref"] == curl["bom-ref"]
    assert vulnerability["ratings"][0]["severity"] == "high"
    assert {"name": "crbroker:vulnerability:fixedVersion", "value": "7.88.1-10+deb12u6"} in (
        vulnerability["properties"]
    )
    assert "broken.json: (file): not JSON" in proc.stderr
    assert (
        "vulnerabilities: 1 (0 critical, 1 high, 0 medium, 0 low, 0 unknown; 1 fixable)"
        in proc.stderr
    )
