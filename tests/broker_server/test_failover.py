"""Issue 5, "What must be shown" items 3 and 4: two clients on one token (newest ready serves,
the other takes over after it leaves) and a server restart (both kinds of client come back)."""

from __future__ import annotations

import pytest

from tests.broker_server.conftest import (
    OTHER_TOKEN,
    TOKEN,
    Backends,
    start_our_server,
    upstream_accept,
)
from tests.broker_server.http_calls import call
from tests.support import snyk_broker
from tests.support.eventually import eventually

pytestmark = pytest.mark.interop


def served_by(recorder_before: int, recorder) -> int:
    return len(recorder.seen) - recorder_before


def test_two_clients_newest_serves_then_other_takes_over(backends: Backends, tmp_path):
    snyk_broker.require_snyk_broker()
    agent_a, url_a = backends.extra_agent()
    agent_b, url_b = backends.extra_agent()
    server = start_our_server(tmp_path, accept=upstream_accept(backends.upstream_url))
    client_a = client_b = None
    try:
        client_a = snyk_broker.start_client(
            tmp_path / "a", token=TOKEN, server_url=server.url, env={"CR_AGENT_URL": url_a}
        )
        snyk_broker.wait_for_clients(server.url, TOKEN, 2)
        client_b = snyk_broker.start_client(
            tmp_path / "b", token=TOKEN, server_url=server.url, env={"CR_AGENT_URL": url_b}
        )
        snyk_broker.wait_for_clients(server.url, TOKEN, 4)

        a0, b0 = len(agent_a.seen), len(agent_b.seen)
        for _ in range(5):
            status, _, _ = call(f"{server.url}/broker/{TOKEN}/list")
            assert status == 200
        assert (len(agent_a.seen) - a0, len(agent_b.seen) - b0) == (0, 5)

        client_b.stop()
        a0 = len(agent_a.seen)
        statuses = [call(f"{server.url}/broker/{TOKEN}/list")[0] for _ in range(20)]
        # at most a short 503 window while B's sockets go, then every request succeeds via A
        assert set(statuses) <= {200, 503}, statuses
        first_ok = statuses.index(200)
        assert all(s == 200 for s in statuses[first_ok:]), statuses
        assert len(agent_a.seen) - a0 == statuses.count(200)
    finally:
        for client in (client_b, client_a):
            if client is not None:
                client.stop()
        server.stop()


def wait_requests_work(url: str, timeout: float = 45) -> int:
    def works() -> int:
        status = call(url, timeout=10)[0]
        assert status == 200, f"{url} did not work again (last status {status})"
        return status

    return eventually(works, timeout=timeout, interval=0.25)


def test_server_restart_both_kinds_of_client_come_back(backends: Backends, tmp_path):
    snyk_broker.require_snyk_broker()
    from tests.broker_client.conftest import start_our_client

    server = start_our_server(
        tmp_path, accept=upstream_accept(backends.upstream_url), tokens=f"{TOKEN},{OTHER_TOKEN}"
    )
    snyk = ours = None
    try:
        snyk = snyk_broker.start_client(
            tmp_path / "snyk",
            token=TOKEN,
            server_url=server.url,
            env={"CR_AGENT_URL": backends.agent_url},
        )
        ours = start_our_client(
            tmp_path, server_url=server.url, agent_url=backends.agent_url, token=OTHER_TOKEN
        )
        snyk_broker.wait_for_clients(server.url, TOKEN, 2)
        snyk_broker.wait_for_clients(server.url, OTHER_TOKEN, 2)
        for token in (TOKEN, OTHER_TOKEN):
            assert call(f"{server.url}/broker/{token}/list")[0] == 200

        server.restart()
        for token, client_log in ((TOKEN, snyk.log_text), (OTHER_TOKEN, ours.process.log_text)):
            try:
                snyk_broker.wait_for_clients(server.url, token, 2, timeout=45)
                assert wait_requests_work(f"{server.url}/broker/{token}/list?after=restart") == 200
            except (TimeoutError, AssertionError) as exc:
                raise AssertionError(
                    f"{exc}\n--- server log ---\n{server.log_text()[-3000:]}"
                    f"\n--- client log ---\n{client_log()[-3000:]}"
                ) from None
        assert snyk.process.alive() and ours.process.alive()
    finally:
        for client in (snyk, ours):
            if client is not None:
                client.stop()
        server.stop()
