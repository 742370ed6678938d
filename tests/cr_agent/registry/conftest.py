"""The registry client runs over two HTTP transports; its tests run over both."""

from __future__ import annotations

import functools
from collections.abc import Callable

import pytest

from cr_agent.registry.client import RegistryClient
from tests.support.registry_client import TRANSPORTS, registry_client


@pytest.fixture(params=TRANSPORTS)
def client_over(request: pytest.FixtureRequest) -> Callable[..., RegistryClient]:
    """``registry_client`` over this run's transport."""
    return functools.partial(registry_client, transport=request.param)
