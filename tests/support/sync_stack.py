"""A brokered ``generic-cr`` integration on a running ``crbroker-server``, with our agent and
broker client in front of a registry: what the sync's end-to-end tests and benchmark share."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from deploy import stack as st
from deploy.control_plane_client import ControlPlaneClient


@dataclass
class Connected:
    integration: str
    token: str
    client: st.Service
    stoppers: list[Callable[[], None]]


def connect_registry(
    api: ControlPlaneClient,
    org: str,
    server: st.Service,
    workdir: Path,
    *,
    registry_url: str,
    username: str,
    password: str,
    **attributes: Any,
) -> Connected:
    """Create the integration, start the agent and the broker client, wait until connected."""
    integration = api.create_integration(
        org,
        {
            "integration_type": "generic-cr",
            "profile_name": "sync registry",
            "has_broker": True,
            "registry_base": registry_url,
            **attributes,
        },
    )
    token = integration["attributes"]["broker_token"]
    agent, client = st.start_agent_and_client(
        workdir / "client",
        token=token,
        server_url=server.url,
        registry={
            "CR_TYPE": "generic-cr",
            "CR_BASE": registry_url,
            "CR_USERNAME": username,
            "CR_PASSWORD": password,
        },
    )
    st.wait_for_connection(server.url, token)
    return Connected(integration["id"], token, client, [agent.stop, client.stop])
