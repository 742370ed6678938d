"""Broker server settings, under snyk-broker's environment names where it has them.

Validated once at start-up; :func:`load_settings` turns every problem into one
:class:`SettingsError` line naming the variable, which ``__main__`` prints before exiting 2.
Names marked "crbroker" are our own additions.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import Field, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from shared.accept_rules import AcceptRules, AcceptRulesError, load_rules
from shared.broker_protocol import parse_semver
from shared.logging import parse_level
from shared.protocol_error import ProtocolError
from shared.var_substitution import VariableSource

_FALSE = {"", "0", "false", "no", "off"}
#: used when ACCEPT is not set but UPSTREAM_URL is: the agent's callbacks go to UPSTREAM_URL
DEFAULT_ACCEPT = Path(__file__).with_name("default_accept.json")


class SettingsError(ValueError):
    """One line: the variable and what is wrong with it."""


class Settings(BaseSettings):
    """Environment of ``broker-server``; field names are the environment variable names."""

    model_config = SettingsConfigDict(case_sensitive=False, env_ignore_empty=True, extra="ignore")

    PORT: int = Field(7341, ge=0, le=65535)
    #: crbroker: after binding, write {"PORT": bound port} here (shared.port_file)
    PORT_FILE: str | None = None
    #: crbroker: interface to bind (snyk-broker binds all interfaces)
    BROKER_SERVER_HOST: str = "0.0.0.0"
    #: the server's own accept rules: private = where client callbacks may go, public = what
    #: callers of /broker/<token>/* may ask for (no public list = everything allowed);
    #: unset: default_accept.json when UPSTREAM_URL is set, else every callback is refused
    ACCEPT: str | None = None
    #: crbroker: comma-separated tokens this server admits
    BROKER_TOKENS: str | None = None
    #: crbroker: file with one admitted token per line (# comments allowed)
    BROKER_TOKEN_FILE: str | None = None
    #: crbroker: the upstream ("Snyk API") base URL; usable as ${UPSTREAM_URL} in rule origins
    UPSTREAM_URL: str | None = None

    SOCKET_PING_INTERVAL: int = Field(25000, ge=100)
    SOCKET_PING_TIMEOUT: int = Field(20000, ge=100)
    #: Primus ends a spark that sent nothing for this long (Primus default 35 s)
    PRIMUS_TIMEOUT: int = Field(35000, ge=100)
    SOCKET_MAX_RESPONSE_LENGTH: int = Field(22020096, ge=1024)
    #: HTTP bodies of /broker/<token>/* are read up to this size (snyk: 10 MB)
    BROKER_SERVER_MAX_BODY: int = Field(10 * 1024 * 1024, ge=1024)
    #: crbroker: open client sockets one token may have (more: 429 at the handshake)
    BROKER_SERVER_MAX_CONNECTIONS_PER_TOKEN: int = Field(10, ge=1)
    #: crbroker: bytes of peers' messages the server holds at once (socket messages from their
    #: header until handled, polling POSTs, callers' bodies, callbacks on their way upstream):
    #: per client socket, per token, and in all
    BROKER_SERVER_MAX_INFLIGHT_BYTES_PER_CONNECTION: int = Field(48 * 1024 * 1024, ge=1024)
    BROKER_SERVER_MAX_INFLIGHT_BYTES_PER_TOKEN: int = Field(64 * 1024 * 1024, ge=1024)
    BROKER_SERVER_MAX_INFLIGHT_BYTES: int = Field(256 * 1024 * 1024, ge=1024)
    MINIMAL_SUPPORTED_BROKER_VERSION: str = "4.100.0"
    MINIMAL_RECOMMENDED_BROKER_VERSION: str = "4.182.0"
    #: seconds a streaming id stays valid (snyk: node-cache TTL)
    CACHE_EXPIRY: int = Field(3600, ge=1)
    #: 503 instead of 404 this long after a token's last client went away
    RECONNECT_GRACE_MS: int = Field(60000, ge=0)
    #: a caller's whole request through /broker, its answer's last byte included
    BROKER_WEBSERVER_REQUEST_TIMEOUT: int = Field(600000, ge=100)
    #: crbroker: longest silence inside a streamed answer (POST start to head, chunk to chunk)
    BROKER_SERVER_STREAM_IDLE_TIMEOUT: int = Field(60000, ge=100)
    LOG_LEVEL: str = "info"
    DEBUG: str | None = None

    @field_validator("LOG_LEVEL")
    @classmethod
    def _level(cls, value: str) -> str:
        parse_level(value)
        return value

    @field_validator("MINIMAL_SUPPORTED_BROKER_VERSION", "MINIMAL_RECOMMENDED_BROKER_VERSION")
    @classmethod
    def _semver(cls, value: str) -> str:
        if value != "local":
            try:
                parse_semver(value)
            except ProtocolError as exc:
                raise ValueError(str(exc).replace("client version", "version")) from None
        return value

    @field_validator("UPSTREAM_URL")
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("http://", "https://")):
            raise ValueError("must start with http:// or https://")
        return value.rstrip("/") if value else value

    @model_validator(mode="after")
    def _budget_holds_a_message(self) -> Settings:
        # a callback's body is charged while the message carrying it is, so a socket and a token
        # must hold the largest message twice, else such a callback could never pass
        twice = 2 * self.SOCKET_MAX_RESPONSE_LENGTH
        for name in (
            "BROKER_SERVER_MAX_INFLIGHT_BYTES_PER_CONNECTION",
            "BROKER_SERVER_MAX_INFLIGHT_BYTES_PER_TOKEN",
            "BROKER_SERVER_MAX_INFLIGHT_BYTES",
        ):
            if getattr(self, name) < twice:
                raise ValueError(
                    f"{name}: {getattr(self, name)} is less than twice SOCKET_MAX_RESPONSE_LENGTH "
                    f"({twice}); a message of that size carrying a callback could never pass"
                )
        return self

    @property
    def debug(self) -> bool:
        return self.DEBUG is not None and self.DEBUG.strip().lower() not in _FALSE

    def tokens(self) -> list[str]:
        """Every admitted token, lower-cased (snyk-broker lower-cases the token it routes on)."""
        if not self.BROKER_TOKENS and not self.BROKER_TOKEN_FILE:
            return []
        found: list[str] = []
        if self.BROKER_TOKENS:
            found += [t.strip() for t in self.BROKER_TOKENS.split(",") if t.strip()]
        if self.BROKER_TOKEN_FILE:
            try:
                text = Path(self.BROKER_TOKEN_FILE).read_text(encoding="utf-8")
            except OSError as exc:
                raise SettingsError(
                    f"BROKER_TOKEN_FILE: cannot read {self.BROKER_TOKEN_FILE}: {exc.strerror}"
                ) from None
            for line in text.splitlines():
                line = line.split("#", 1)[0].strip()
                if line:
                    found.append(line)
        if not found:
            raise SettingsError(
                "BROKER_TOKENS: no token given (BROKER_TOKENS / BROKER_TOKEN_FILE are empty)"
            )
        for token in found:
            if any(ch in token for ch in "/?# ") or len(token) < 8:
                raise SettingsError(
                    "BROKER_TOKENS: a token is shorter than 8 characters or contains / ? # or space"
                )
        return [t.lower() for t in found]

    def variables(self, environ: Mapping[str, str] | None = None) -> VariableSource:
        values: dict[str, str | None] = dict(os.environ if environ is None else environ)
        if self.UPSTREAM_URL:
            values["UPSTREAM_URL"] = self.UPSTREAM_URL
        return VariableSource(values)


def load_settings(
    environ: Mapping[str, str] | None = None, *, require_tokens: bool = True
) -> tuple[Settings, AcceptRules | None, list[str]]:
    """Read and check the environment; raises :class:`SettingsError` with one line on any problem.

    ``require_tokens=False``: no token setting is fine (crbroker-server admits the broker
    tokens of the control plane's integrations instead).
    """
    env = dict(os.environ if environ is None else environ)
    names = {name.upper(): name for name in Settings.model_fields}
    values: dict[str, Any] = {}
    for key, value in env.items():
        field = names.get(key.upper())
        if field is not None and value != "":
            values[field] = value
    try:
        settings = Settings(_env_file=None, **values)
    except ValidationError as exc:
        raise SettingsError(_one_line(exc)) from None
    if require_tokens and not settings.BROKER_TOKENS and not settings.BROKER_TOKEN_FILE:
        raise SettingsError("BROKER_TOKENS: required, set it or BROKER_TOKEN_FILE")
    tokens = settings.tokens()
    rules: AcceptRules | None = None
    source = settings.ACCEPT or (str(DEFAULT_ACCEPT) if settings.UPSTREAM_URL else None)
    if source:
        try:
            rules = load_rules(Path(source))
        except AcceptRulesError as exc:
            raise SettingsError(f"ACCEPT: {exc}") from None
        if not settings.UPSTREAM_URL and any(
            "${UPSTREAM_URL}" in (rule.origin or "") for rule in rules.private
        ):
            raise SettingsError(
                "UPSTREAM_URL: required, the accept rules send callbacks to ${UPSTREAM_URL}"
            )
    return settings, rules, tokens


def _one_line(exc: ValidationError) -> str:
    error = exc.errors()[0]
    where = ".".join(str(p) for p in error.get("loc", ())) or "settings"
    message = str(error.get("msg", "invalid")).removeprefix("Value error, ")
    if error.get("type") == "missing":
        message = "required, not set"
    if where == "settings" and ": " in message:
        return message
    return f"{where}: {message}"
