"""CR_AGENT_SECRET: the client's own header on agent-bound requests, never the server's."""

from __future__ import annotations

from broker_client.agent_secret import HEADER, add_agent_secret
from broker_client.settings import Settings

SECRET = "client-agent-secret-0123456789"


def settings(**values: str) -> Settings:
    return Settings.model_validate(
        {"BROKER_TOKEN": "t0k3n", "CR_AGENT_URL": "http://cr-agent:8081", **values}
    )


def test_the_secret_goes_to_the_agent_and_replaces_what_the_server_sent() -> None:
    headers = {"X-Crbroker-Agent-Secret": "from-the-server", "accept": "application/json"}
    add_agent_secret(settings(CR_AGENT_SECRET=SECRET), "http://CR-AGENT:8081/list", headers)
    assert headers == {HEADER: SECRET, "accept": "application/json"}


def test_other_origins_never_get_the_secret() -> None:
    client = settings(CR_AGENT_SECRET=SECRET)
    for url in (
        "http://cr-agent:8082/list",
        "https://cr-agent:8081/list",
        "http://other-host:8081/systemcheck",
        "not a url",
    ):
        headers = {HEADER: "from-the-server"}
        add_agent_secret(client, url, headers)
        assert headers == {}, url


def test_without_a_secret_the_servers_header_is_still_dropped() -> None:
    headers = {HEADER: "from-the-server"}
    add_agent_secret(settings(), "http://cr-agent:8081/list", headers)
    assert headers == {}


def test_the_secret_is_redacted_from_logs() -> None:
    assert SECRET in settings(CR_AGENT_SECRET=SECRET).secret_values()
