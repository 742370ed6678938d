"""``cr-agent scan``: scan one image from the command line and print an SBOM.

Exit status 0 on success (reader warnings go to stderr), 1 with one clear message when the scan
fails, 2 for a bad command line. Progress is shown on stderr only when stdout is a terminal,
so pipelines get clean output.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import importlib.util
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from cr_agent.registry.auth import RegistryAuth
from cr_agent.registry.docker_config import (
    CredentialHelperError,
    auth_from_cr_credentials,
    auth_from_docker_config,
)
from cr_agent.registry.errors import RegistryError, TlsError
from cr_agent.registry.manifest import Platform
from cr_agent.registry.reference import ImageReference
from cr_agent.request_watch import WatchedClient
from shared.logging import configure_logging, register_secrets

FORMATS = ("json", "cyclonedx", "spdx")
#: seconds one connect or read may take by default, and tries per request: a hung registry
#: ends the command within about a minute, not 4 x 60 s
DEFAULT_TIMEOUT = 20.0
TRIES = 2
#: a request unanswered this long gets a line on stderr (at most half the timeout)
SLOW_AFTER = 5.0
_LOOPBACK = ("localhost", "127.", "[::1]")


def _log_level(text: str) -> str:
    """argparse type: a level shared.logging knows, else a usage error (exit 2)."""
    from shared.logging import parse_level

    try:
        parse_level(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text


class _QuickFormatter(argparse.HelpFormatter):
    """argparse builds a formatter for every ``add_argument`` and each one asks the terminal for
    its width (importing shutil, bz2 and lzma on the way): ~2.5 ms of every scan. A fixed width
    serves those checks and error usage lines; ``--help`` still gets the terminal's width."""

    def __init__(self, prog: str) -> None:
        super().__init__(prog, width=100)


def _parser(argv: list[str] | None = None) -> argparse.ArgumentParser:
    args = sys.argv[1:] if argv is None else argv
    wants_help = any(a in ("-h", "--help") for a in args)
    p = argparse.ArgumentParser(
        prog="cr-agent scan",
        description="Scan a container image in a registry and print its package inventory.",
        formatter_class=argparse.HelpFormatter if wants_help else _QuickFormatter,
    )
    p.add_argument(
        "image", help="<registry>/<repository>:<tag> or <registry>/<repository>@<digest>"
    )
    p.add_argument(
        "--format", choices=FORMATS, default="json", help="output format (default: json)"
    )
    p.add_argument(
        "--platform", default="linux/amd64", help="os/arch[/variant] for multi-arch images"
    )
    p.add_argument("--output", "-o", help="write the document here instead of stdout")
    p.add_argument(
        "--advisories",
        nargs="+",
        metavar="PATH",
        help="match against these advisory files (OSV JSON, a directory or all.zip; Alpine "
        "secdb; Debian tracker JSON) and list the matches in json/cyclonedx output",
    )
    p.add_argument("--plain-http", action="store_true", help="talk plain HTTP to the registry")
    p.add_argument(
        "--insecure", action="store_true", help="do not verify the registry's TLS certificate"
    )
    p.add_argument("--ca-file", help="extra CA bundle (PEM) for the registry's certificate")
    p.add_argument("--username", help="registry username (password from --password-stdin)")
    p.add_argument("--password-stdin", action="store_true", help="read the password from stdin")
    p.add_argument("--cache-dir", help="layer cache directory (default: ~/.cache/crbroker/layers)")
    p.add_argument("--cache-size", type=int, default=2 << 30, help="layer cache bound in bytes")
    p.add_argument("--no-cache", action="store_true", help="do not use the layer cache")
    p.add_argument(
        "--timeout",
        type=float,
        default=DEFAULT_TIMEOUT,
        help=f"connect/read timeout in seconds, per try ({TRIES} tries; default: "
        f"{DEFAULT_TIMEOUT:g})",
    )
    p.add_argument(
        "--log-level",
        type=_log_level,
        default="warning",
        help="log level for stderr: debug shows every registry request (default: warning)",
    )
    return p


def _check(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """Combinations argparse cannot express: a usage error (exit 2) naming the option."""
    if args.username and not args.password_stdin:
        parser.error("--username needs --password-stdin (the password is read from stdin)")
    if args.password_stdin and not args.username:
        parser.error("--password-stdin needs --username")
    if args.timeout <= 0:
        parser.error("--timeout must be more than 0 seconds")
    if args.advisories and importlib.util.find_spec("control_plane") is None:
        parser.error(
            "--advisories needs the control plane's advisory matcher, which this installation "
            "leaves out (the agent image does): use a full `pip install crbroker`"
        )


def _auth(args: argparse.Namespace, ref: ImageReference) -> RegistryAuth | None:
    if args.username:
        password = sys.stdin.readline().rstrip("\r\n")
        register_secrets(password)
        return RegistryAuth(username=args.username, password=password)
    blob = os.environ.get("CR_CREDENTIALS")
    if blob:
        register_secrets(blob)
        auth, _ = auth_from_cr_credentials(blob)
        return auth
    return auth_from_docker_config(ref.registry)


class _Progress:
    """One self-rewriting status line on stderr."""

    def __init__(self) -> None:
        self.layers = 0
        self.done = 0
        self.total = 0
        self.read = 0
        self.last = 0.0

    def __call__(self, event: str, data: dict[str, Any]) -> None:
        if event == "resolved":
            self.layers, self.total = data["layers"], data["bytes"]
        elif event == "layer_bytes":
            self.read += data["bytes"]
        elif event == "layer_done":
            self.done += 1
        now = time.monotonic()
        if now - self.last < 0.1 and event == "layer_bytes":
            return
        self.last = now
        sys.stderr.write(
            f"\rlayers {self.done}/{self.layers}  {self.read / 1e6:.1f}/{self.total / 1e6:.1f} MB "
        )
        sys.stderr.flush()

    def finish(self) -> None:
        sys.stderr.write("\r" + " " * 60 + "\r")
        sys.stderr.flush()


async def _scan(args: argparse.Namespace) -> str:
    from cr_agent.scan import scan_image

    ref = ImageReference.parse(args.image)
    Platform.parse(args.platform)  # fail before any network traffic
    scheme = "http" if args.plain_http else "https"
    auth = _auth(args, ref)
    cache = None
    if not args.no_cache:
        from cr_agent.layer_cache import LayerCache

        directory = args.cache_dir or Path.home() / ".cache" / "crbroker" / "layers"
        try:
            cache = LayerCache(directory, max_bytes=args.cache_size)
        except OSError as exc:  # a read-only home costs the cache, not the scan
            print(
                f"cr-agent scan: warning: layer cache {directory} is not usable "
                f"({exc.strerror or exc}); scanning without it (--no-cache silences this)",
                file=sys.stderr,
            )
    progress = _progress()
    reading = None
    if args.advisories:
        from control_plane.advisories.advisory_files import read_paths

        # the advisory files are read while the layers stream
        reading = asyncio.create_task(asyncio.to_thread(read_paths, args.advisories))
    writer_module = {"json": "native", "cyclonedx": "cyclonedx", "spdx": "spdx"}[args.format]
    # the SBOM library takes a noticeable share of start-up; load it while layers stream
    warm = asyncio.create_task(
        asyncio.to_thread(importlib.import_module, f"cr_agent.sbom.{writer_module}")
    )
    async with WatchedClient(
        f"{scheme}://{ref.api_host}",
        auth,
        ca_file=args.ca_file,
        insecure=args.insecure,
        timeout=args.timeout,
        retries=TRIES,
        max_retry_wait=min(5.0, args.timeout),
        # a one-shot process: the lean transport spares it aiohttp's import (see transport.py)
        transport="stream",
        slow_after=min(SLOW_AFTER, args.timeout / 2),
        notice=_notice,
    ) as client:
        try:
            result = await scan_image(
                client,
                ref.repository,
                ref.reference,
                platform=args.platform,
                cache=cache,
                progress=progress,
            )
        finally:
            if isinstance(progress, _Progress):
                progress.finish()
    await warm
    for warning in result.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    writer = {"native": "to_native_json", "cyclonedx": "to_cyclonedx_json", "spdx": "to_spdx_json"}
    module = importlib.import_module(f"cr_agent.sbom.{writer_module}")
    if reading is None:
        return str(getattr(module, writer[writer_module])(result))
    from cr_agent.advisories import match_scan

    match, notes = match_scan(result, await reading)
    for note in notes:
        print(note, file=sys.stderr)
    counts = match.counts
    print(
        f"vulnerabilities: {counts.total} ({counts.critical} critical, {counts.high} high, "
        f"{counts.medium} medium, {counts.low} low, {counts.unknown} unknown; "
        f"{counts.fixable} fixable)",
        file=sys.stderr,
    )
    if writer_module == "spdx":
        return str(module.to_spdx_json(result))  # SPDX 2.3 has no place for them
    return str(getattr(module, writer[writer_module])(result, match))


def _notice(text: str) -> None:
    print(f"cr-agent scan: {text}", file=sys.stderr, flush=True)


def _progress() -> Callable[[str, dict[str, Any]], None] | None:
    """The terminal status line, debug lines of the scan's steps, both, or nothing."""
    import logging

    bar = _Progress() if sys.stdout.isatty() else None
    if not logging.getLogger().isEnabledFor(logging.DEBUG):
        return bar
    from shared.logging import get_logger

    log = get_logger("cr_agent.scan")

    def report(event: str, data: dict[str, Any]) -> None:
        if event != "layer_bytes":
            log.debug(event, **data)
        if bar is not None:
            bar(event, data)

    return report


def _tls_hint(args: argparse.Namespace, exc: RegistryError) -> str:
    """A TLS failure against a registry that may speak plain HTTP: suggest --plain-http."""
    if args.plain_http or not isinstance(exc, TlsError):
        return ""
    try:
        host = ImageReference.parse(args.image).registry
    except ValueError:
        return ""
    text = str(exc)
    if host.startswith(_LOOPBACK) or "WRONG_VERSION_NUMBER" in text or "record layer" in text:
        return f" ({host} may speak plain HTTP, as a local registry often does: try --plain-http)"
    return ""


def main(argv: list[str] | None = None) -> int:
    parser = _parser(argv)
    args = parser.parse_args(argv)
    _check(parser, args)
    configure_logging(args.log_level, service="cr-agent", stream=sys.stderr)
    try:
        document = asyncio.run(_scan(args))
    except RegistryError as exc:
        print(f"cr-agent scan: error: {exc}{_tls_hint(args, exc)}", file=sys.stderr)
        return 1
    except CredentialHelperError as exc:
        print(f"cr-agent scan: error: {exc}", file=sys.stderr)
        return 1
    except ValueError as exc:  # CredentialsError, bad --platform, unreadable docker config
        print(f"cr-agent scan: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("cr-agent scan: interrupted", file=sys.stderr)
        return 130
    if args.output:
        try:
            Path(args.output).write_text(document + "\n")
        except OSError as exc:
            print(f"cr-agent scan: error: cannot write {args.output}: {exc}", file=sys.stderr)
            return 1
    else:
        sys.stdout.write(document + "\n")
    return 0
