"""deploy.stack: services bind port 0 and report it; "up" means our own process listens."""

from __future__ import annotations

from pathlib import Path

import pytest

from deploy import stack as st
from deploy.upstream_receiver import UpstreamReceiver


def test_a_port_taken_by_someone_else_is_not_mistaken_for_our_service(tmp_path: Path) -> None:
    squatter = UpstreamReceiver().start()  # answers 200 on every path, /healthcheck too
    try:
        with pytest.raises(st.StartFailed) as failure:
            st.start_agent(tmp_path, port=squatter.port)
        assert failure.value.exited
        assert "cr-agent exited" in str(failure.value)
    finally:
        squatter.stop()


def test_a_free_port_is_found_and_the_service_stops(tmp_path: Path) -> None:
    agent = st.start_agent(tmp_path)
    try:
        assert agent.process.alive()
        assert str(agent.port) in (tmp_path / "cr-agent.log").read_text()
    finally:
        agent.stop()
    assert not agent.process.alive()


def test_each_service_reports_the_port_it_bound_and_restarts_on_it(tmp_path: Path) -> None:
    server = st.start_crbroker_server(tmp_path / "crbroker")
    try:
        relay, api = server.port, server.api_port
        assert relay != api and 0 not in (relay, api)
        logged = server.log_text()
        assert f'"port": {relay}' in logged and f'"port": {api}' in logged
        server.restart()
        assert (server.port, server.api_port) == (relay, api)
    finally:
        server.stop()
    relay_only = st.start_broker_server(
        tmp_path / "relay", token="a-long-token", upstream_url="http://x"
    )
    try:
        assert f'"port": {relay_only.port}' in relay_only.log_text()
    finally:
        relay_only.stop()


def test_the_agent_and_client_pair_find_each_other(tmp_path: Path) -> None:
    agent, client = st.start_agent_and_client(
        tmp_path,
        token="a-long-token",
        server_url="http://127.0.0.1:9",
        registry={"CR_TYPE": "docker-hub", "CR_USERNAME": "u", "CR_PASSWORD": "p"},
        startup=st.Startup(ready=(200, 500)),
    )
    try:
        assert agent.env["BROKER_CLIENT_URL"] == client.url
        assert client.env["CR_AGENT_URL"] == agent.url
        assert f'"port": {agent.port}' in agent.log_text()
    finally:
        client.stop()
        agent.stop()
