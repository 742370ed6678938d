"""Fixtures every cr_agent test area can use: registries on loopback (see tests/support)."""

from tests.support.registry import (  # noqa: F401 - pytest finds fixtures by name
    htpasswd_registry,
    plain_registry,
    token_registry,
    unique_repo,
)
