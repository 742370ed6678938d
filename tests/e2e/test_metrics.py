"""``/metrics`` on all three services (issue 10 item 15): the broker client's own counters,
and the process and Python collectors everywhere."""

from __future__ import annotations

import urllib.error
import urllib.request

import pytest

from deploy import stack as st
from tests.e2e.conftest import Trio

STANDARD = (
    "process_resident_memory_bytes",
    "process_cpu_seconds_total",
    "process_open_fds",
    "python_info",
    "python_gc_objects_collected_total",
)


def scrape(url: str) -> dict[str, float]:
    with urllib.request.urlopen(f"{url}/metrics", timeout=10) as resp:
        assert resp.headers["content-type"].startswith("text/plain")
        text = resp.read().decode()
    samples = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            samples[name] = float(value)
    return samples


@pytest.mark.parametrize("service", ["agent", "server", "client"])
def test_process_and_python_collectors_on_every_service(trio: Trio, service: str) -> None:
    samples = scrape(getattr(trio, service).url)
    for name in STANDARD:
        assert any(s == name or s.startswith(name + "{") for s in samples), name
    assert samples["process_resident_memory_bytes"] > 1_000_000


def test_client_counts_requests_by_outcome_and_callbacks(trio: Trio) -> None:
    before = scrape(trio.client.url)
    for path in ("/healthcheck", "/v2/_catalog", "/list/..;/x"):
        st.broker_request(trio.server.url, trio.token, "GET", path)
    request = urllib.request.Request(
        f"{trio.client.url}/api/v2/import/done", data=b"{}", method="POST"
    )
    try:
        urllib.request.urlopen(request, timeout=30)
    except urllib.error.HTTPError as exc:
        callback_status = exc.code  # the server's upstream (port 9) does not answer
    else:
        callback_status = 200
    after = scrape(trio.client.url)

    def grew(name: str) -> float:
        return after.get(name, 0) - before.get(name, 0)

    assert grew('broker_client_requests_total{outcome="forwarded",status="200"}') == 1
    assert grew('broker_client_requests_total{outcome="blocked",status="401"}') == 1
    assert grew('broker_client_requests_total{outcome="refused",status="400"}') == 1
    assert grew("broker_client_request_seconds_count") == 3
    assert grew(f'broker_client_callbacks_total{{status="{callback_status}"}}') == 1
    assert after['broker_client_socket_open{role="primary"}'] == 1
    assert after["broker_client_requests_in_flight"] == 0
