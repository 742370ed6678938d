"""Settings of the ``crbroker-server`` process: which halves run, where they listen, how
the control plane reaches agents, and the scan queue's timing.

The domain's own settings (database, org, secret key) are :mod:`control_plane.settings`; the
relay's are :mod:`broker_server.settings`. Field names are the environment variable names.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping
from typing import Any, Literal

from pydantic import Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

Mode = Literal["all", "relay", "control-plane"]


class ServerSettingsError(ValueError):
    """One line: the variable and what is wrong with it."""


def _url(value: str | None) -> str | None:
    if value is None:
        return None
    if not value.startswith(("http://", "https://")):
        raise ValueError("must start with http:// or https://")
    return value.rstrip("/")


class ServerSettings(BaseSettings):
    model_config = SettingsConfigDict(case_sensitive=False, env_ignore_empty=True, extra="ignore")

    #: all: relay + control plane in one process; relay / control-plane: one half only
    CRBROKER_MODE: Mode = "all"
    #: where the control plane's HTTP API (REST, v1, agent callbacks) listens
    CONTROL_PLANE_HOST: str = "0.0.0.0"
    CONTROL_PLANE_PORT: int = Field(8080, ge=0, le=65535)
    #: after binding, write {"PORT": relay port, "CONTROL_PLANE_PORT": API port} here (the
    #: listeners of this mode; shared.port_file)
    PORT_FILE: str | None = None
    #: base URL the control plane calls ``/broker/<token>/...`` on; unset in mode "all": the
    #: relay of the same process
    BROKER_SERVER_URL: str | None = None
    #: the agent a direct integration (no broker) scans with, co-located with this server
    CR_AGENT_URL: str | None = None
    #: shared secret of that agent (sent as X-Crbroker-Agent-Secret on direct calls)
    CR_AGENT_SECRET: str | None = None
    #: base URL agents of direct integrations send results to (this listener as they reach it)
    CONTROL_PLANE_URL: str | None = None
    #: name of this process in ``scans.claimed_by`` (default: host name and pid)
    CRBROKER_WORKER_ID: str | None = None
    #: seconds between queue polls when idle
    SCAN_POLL_SECONDS: float = Field(1.0, gt=0, le=60)
    #: a claimed scan not handed to an agent within this many seconds goes back to the queue
    SCAN_CLAIM_TIMEOUT: float = Field(300.0, ge=1)
    #: a scan the agent accepted but never reported within this many seconds fails ("timeout")
    SCAN_RESULT_TIMEOUT: float = Field(3600.0, ge=1)
    #: dispatch attempts before a scan fails at step "dispatch"
    SCAN_MAX_ATTEMPTS: int = Field(5, ge=1, le=100)
    #: seconds before the first retry of a dispatch that could not reach the agent (doubles)
    SCAN_RETRY_SECONDS: float = Field(5.0, gt=0)
    #: seconds between registry-sync scheduler rounds when idle
    SYNC_POLL_SECONDS: float = Field(5.0, gt=0, le=300)
    #: a sync run whose process stopped beating for this many seconds is taken over
    SYNC_CLAIM_TIMEOUT: float = Field(120.0, ge=2)
    #: seconds between syncs of the relay's admitted tokens with the integrations (mode all)
    TOKEN_SYNC_SECONDS: float = Field(2.0, gt=0, le=300)

    @field_validator("BROKER_SERVER_URL", "CR_AGENT_URL", "CONTROL_PLANE_URL")
    @classmethod
    def _urls(cls, value: str | None) -> str | None:
        return _url(value)

    @property
    def worker_id(self) -> str:
        return self.CRBROKER_WORKER_ID or f"{socket.gethostname()}:{os.getpid()}"

    def callback_base(self, port: int) -> str:
        """Where a direct integration's agent sends results."""
        return self.CONTROL_PLANE_URL or f"http://127.0.0.1:{port}"


def load_server_settings(environ: Mapping[str, str] | None = None) -> ServerSettings:
    env = dict(os.environ if environ is None else environ)
    names = {name.upper(): name for name in ServerSettings.model_fields}
    values: dict[str, Any] = {}
    for key, value in env.items():
        field = names.get(key.upper())
        if field is not None and value != "":
            values[field] = value
    try:
        return ServerSettings(_env_file=None, **values)
    except ValidationError as exc:
        error = exc.errors()[0]
        where = ".".join(str(p) for p in error.get("loc", ())) or "settings"
        message = str(error.get("msg", "invalid")).removeprefix("Value error, ")
        raise ServerSettingsError(f"{where}: {message}") from None
