"""The registry client runs over two HTTP transports; its tests run over both."""

from __future__ import annotations

import pytest

from cr_agent.registry import client as client_module
from cr_agent.registry.transport import KINDS


@pytest.fixture(params=KINDS)
def transport(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setattr(client_module, "DEFAULT_TRANSPORT", request.param)
    return str(request.param)
