"""Fixtures of the service tests (defined in tests.cr_agent.service.agent)."""

from tests.cr_agent.service.agent import agent, make_agent  # noqa: F401 - fixtures by name
