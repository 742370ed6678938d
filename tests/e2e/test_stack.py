"""deploy.stack: a service is "up" only when our own process listens on its port."""

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
