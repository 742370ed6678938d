"""A small stand-in for the scanning service behind the broker server ("the Snyk API").

The broker server forwards the agent's callbacks here (its private accept rules point
``/api/*`` at this receiver). It records every request, puts split results back together
(``chunk: {index, count, fields}``), answers a repeated ``Idempotency-Key`` with 409 the way a
careful receiver would, and can write each SBOM to a directory. It runs an aiohttp app on
127.0.0.1 in a background thread so synchronous callers (the demo, e2e tests, bench) can
wait for results with plain timeouts.
"""

from __future__ import annotations

import asyncio
import json
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiohttp import web

RESULT_PATHS = ("/api/v2/import/result", "/v2/import/result")
DONE_PATHS = ("/api/v2/import/done", "/v2/import/done")


@dataclass(frozen=True)
class ReceivedRequest:
    method: str
    path: str
    headers: dict[str, str]  # lower-case names
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


def _safe_name(image: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", image).strip("_") or "image"


class UpstreamReceiver:
    """Records callbacks; ``results``/``dones`` are keyed by the agent's job id."""

    def __init__(self, output_dir: Path | None = None) -> None:
        self.output_dir = output_dir
        self.requests: list[ReceivedRequest] = []
        #: job id -> assembled result bodies (one per image)
        self.results: dict[str, list[dict[str, Any]]] = {}
        #: job id -> done body
        self.dones: dict[str, dict[str, Any]] = {}
        #: where each image's SBOM was written (image -> path)
        self.written: dict[str, Path] = {}
        self.duplicates = 0
        self._keys: set[str] = set()
        self._chunks: dict[str, dict[int, dict[str, Any]]] = {}
        self._cond = threading.Condition()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runner: web.AppRunner | None = None
        self.port = 0

    # ------------------------------------------------------------------ HTTP

    async def _handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        headers = {k.lower(): v for k, v in request.headers.items()}
        received = ReceivedRequest(request.method, request.path, headers, body)
        key = headers.get("idempotency-key")
        with self._cond:
            self.requests.append(received)
            if key and key in self._keys:
                self.duplicates += 1
                return web.json_response({"duplicate": key}, status=409)
            if key:
                self._keys.add(key)
        if request.method == "POST" and request.path in RESULT_PATHS + DONE_PATHS:
            try:
                obj = json.loads(body)
            except ValueError:
                return web.json_response({"error": "body is not JSON"}, status=400)
            if not isinstance(obj, dict) or not isinstance(obj.get("jobId"), str):
                return web.json_response({"error": "body has no jobId"}, status=400)
            if request.path in RESULT_PATHS:
                self._add_result(obj)
            else:
                with self._cond:
                    self.dones[obj["jobId"]] = obj
                    self._cond.notify_all()
        return web.json_response({"ok": True})

    def _add_result(self, obj: dict[str, Any]) -> None:
        chunk = obj.get("chunk")
        if isinstance(chunk, dict):
            parts = self._chunks.setdefault(str(obj.get("resultId")), {})
            parts[int(chunk["index"])] = obj
            if len(parts) < int(chunk["count"]):
                return
            ordered = [parts[i] for i in sorted(parts)]
            # chunk.fields: every SBOM list sliced alike; body i holds slice i of each
            names = chunk.get("fields") or [chunk["field"]]
            merged = dict(ordered[0])
            merged.pop("chunk", None)
            sbom = dict(merged["sbom"])
            for name in names:
                sbom[name] = [item for part in ordered for item in part["sbom"].get(name, [])]
            merged["sbom"] = sbom
            obj = merged
        if self.output_dir is not None and isinstance(obj.get("sbom"), dict):
            self.output_dir.mkdir(parents=True, exist_ok=True)
            suffix = {"cyclonedx-json": "cdx.json", "spdx-json": "spdx.json"}.get(
                str(obj.get("format")), "json"
            )
            path = self.output_dir / f"{_safe_name(str(obj.get('image')))}.{suffix}"
            path.write_text(json.dumps(obj["sbom"], indent=2))
            self.written[str(obj.get("image"))] = path
        with self._cond:
            self.results.setdefault(obj["jobId"], []).append(obj)
            self._cond.notify_all()

    # ------------------------------------------------------------------ waiting

    def wait_until(self, predicate: Callable[[], bool], timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        with self._cond:
            while not predicate():
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(
                        f"upstream receiver: {what} did not arrive within {timeout}s"
                    )
                self._cond.wait(min(left, 0.5))

    def wait_for_job(self, job_id: str, timeout: float = 60.0) -> dict[str, Any]:
        """Block until the job's done callback arrived; returns it."""
        self.wait_until(lambda: job_id in self.dones, timeout, f"done callback of job {job_id}")
        return self.dones[job_id]

    def job_results(self, job_id: str) -> list[dict[str, Any]]:
        with self._cond:
            return list(self.results.get(job_id, []))

    def all_bytes(self) -> bytes:
        """Every header and body this receiver was sent (for secret checks)."""
        with self._cond:
            parts = []
            for r in self.requests:
                parts.append(json.dumps(r.headers).encode())
                parts.append(r.body)
            return b"\n".join(parts)

    # ------------------------------------------------------------------ lifecycle

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, port: int = 0) -> UpstreamReceiver:
        ready = threading.Event()
        failure: list[BaseException] = []

        def run() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            app = web.Application(client_max_size=64 * 1024 * 1024)
            app.router.add_route("*", "/{tail:.*}", self._handle)
            self._runner = web.AppRunner(app, access_log=None)
            try:
                loop.run_until_complete(self._runner.setup())
                site = web.TCPSite(self._runner, "127.0.0.1", port)
                loop.run_until_complete(site.start())
                self.port = next(a[1] for a in self._runner.addresses if isinstance(a, tuple))
            except BaseException as exc:
                failure.append(exc)
                ready.set()
                return
            ready.set()
            loop.run_forever()
            loop.run_until_complete(self._runner.cleanup())
            loop.close()

        self._thread = threading.Thread(target=run, name="upstream-receiver", daemon=True)
        self._thread.start()
        if not ready.wait(10):
            raise TimeoutError("upstream receiver did not start within 10s")
        if failure:
            raise RuntimeError(f"upstream receiver could not start: {failure[0]}")
        return self

    def stop(self) -> None:
        if self._loop is not None and self._thread is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)
            self._loop = None
