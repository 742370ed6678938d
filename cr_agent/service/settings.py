"""Agent settings, under the environment names snyk's container registry agent documents.

``SNYK_PORT`` (or ``PORT``), ``HTTPS_CERT``/``HTTPS_KEY``, ``CA_CERT`` /
``NODE_EXTRA_CA_CERTS``, ``NODE_TLS_REJECT_UNAUTHORIZED``, ``LOG_LEVEL`` and
``MAX_ACTIVE_OPERATIONS`` are snyk's; the rest are crbroker's own (marked below). The agent
holds no registry secret: credentials arrive with each request.
:func:`load_settings` turns any problem into one :class:`SettingsError` line naming the
variable; ``cr-agent serve`` prints it and exits 2.

Three settings bound what the upstream can make the agent do (see README, "the upstream is
not trusted"): ``CR_AGENT_SECRET`` (the broker client must present it; required unless
``CR_AGENT_AUTH=disabled``), ``BROKER_CLIENT_URL`` (the only callback destination unless
``CR_AGENT_ALLOW_REQUEST_CALLBACK_URL=true``) and ``CR_ALLOWED_REGISTRIES``.
"""

from __future__ import annotations

import urllib.parse
from collections.abc import Mapping
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from cr_agent.registry.pagination import ListingLimits
from shared.logging import parse_level

DEFAULT_PORT = 8081
GIB = 1024**3
_FALSE = {"0", "false", "no", "off"}
_OFF = {"off", "none", "false", "0", "no"}
#: shortest shared secret accepted: a guessable one would be no lock at all
MIN_SECRET_LENGTH = 16


class SettingsError(ValueError):
    """One line: the variable and what is wrong with it."""


class Settings(BaseSettings):
    """Environment of ``cr-agent serve``; field names are the environment variable names."""

    model_config = SettingsConfigDict(case_sensitive=False, env_ignore_empty=True, extra="ignore")

    SNYK_PORT: int | None = Field(None, ge=0, le=65535)
    PORT: int | None = Field(None, ge=0, le=65535)
    #: crbroker: address to bind (0.0.0.0 in a container)
    HOST: str = "0.0.0.0"
    #: crbroker: after binding, write {"SNYK_PORT" or "PORT": bound port} here (shared.port_file)
    PORT_FILE: Path | None = None
    HTTPS_CERT: Path | None = None
    HTTPS_KEY: Path | None = None
    #: extra CA bundle for registries and the broker client (snyk: CA_CERT or NODE_EXTRA_CA_CERTS)
    CA_CERT: Path | None = None
    NODE_EXTRA_CA_CERTS: Path | None = None
    #: "0" turns off TLS verification towards registries and the callback (as with Node)
    NODE_TLS_REJECT_UNAUTHORIZED: str = "1"
    LOG_LEVEL: str = "info"

    MAX_ACTIVE_OPERATIONS: int = Field(1, ge=1, le=64)
    MAX_IMAGE_SIZE_IN_BYTES: int = Field(2 * GIB, ge=1)
    #: crbroker: where callbacks go (the broker client's BROKER_CLIENT_URL); a request may name
    #: only this URL (see cr_agent.service.callback_target)
    BROKER_CLIENT_URL: str | None = None
    #: crbroker: "true" lets a request name any callbackUrl (the agent then posts wherever the
    #: upstream says: only for setups without a broker client)
    CR_AGENT_ALLOW_REQUEST_CALLBACK_URL: bool = False
    #: crbroker: comma list of registry host[:port] the agent may talk to; empty = any
    CR_ALLOWED_REGISTRIES: str | None = None
    #: crbroker: shared secret the broker client sends as X-Crbroker-Agent-Secret
    CR_AGENT_SECRET: SecretStr | None = None
    #: crbroker: "disabled" lets the agent run without CR_AGENT_SECRET (anyone who reaches its
    #: port can drive it); "required" is the default
    CR_AGENT_AUTH: Literal["required", "disabled"] = "required"
    #: crbroker: where undeliverable callbacks wait to be retried (survives restarts)
    SPOOL_DIR: Path = Path("/tmp/cr-agent-spool")
    #: crbroker: largest callback body, bytes; the broker client's body limit is 10 MB
    MAX_CALLBACK_BODY_BYTES: int = Field(9 * 1024 * 1024, ge=16 * 1024)
    #: crbroker: attempts per callback before it goes to the spool, and seconds between spool retries
    CALLBACK_ATTEMPTS: int = Field(4, ge=1, le=20)
    CALLBACK_RETRY_SECONDS: float = Field(30.0, gt=0)
    #: crbroker: bound on one registry or vendor API call, seconds
    REGISTRY_TIMEOUT: float = Field(30.0, gt=0)
    #: crbroker: bound on a whole synchronous request (listing, metadata), seconds
    REQUEST_TIMEOUT: float = Field(120.0, gt=0)
    #: crbroker: overall bounds, seconds, on reading one layer (request to last byte) and on
    #: one image's whole scan; each ends in a failed result naming the layer and the step
    LAYER_DEADLINE_SECONDS: float = Field(600.0, gt=0)
    SCAN_DEADLINE_SECONDS: float = Field(1800.0, gt=0)
    #: crbroker: what one image may decompress to over all its layers, bytes and tar entries
    #: (a layer alone stops at 16 GiB); past either the scan fails with image-too-large
    MAX_IMAGE_UNCOMPRESSED_BYTES: int = Field(8 * GIB, ge=1024 * 1024)
    MAX_IMAGE_TAR_ENTRIES: int = Field(4_000_000, ge=1000)
    #: crbroker: on-disk cache of per-layer results, so a base layer shared by many images is
    #: downloaded and read once; "off" turns it off
    LAYER_CACHE_DIR: Path | None = Path("/tmp/cr-agent-layer-cache")
    LAYER_CACHE_BYTES: int = Field(2 * GIB, ge=1024 * 1024)
    #: crbroker: what one listing (catalog, a repository's tags, a vendor API's pages) may read;
    #: past any of them the request fails with 502 listing-too-long naming the limit
    LISTING_MAX_PAGES: int = Field(1000, ge=1)
    LISTING_MAX_ENTRIES: int = Field(200_000, ge=1)
    LISTING_MAX_BYTES: int = Field(16 * 1024 * 1024, ge=64 * 1024)
    #: crbroker: images waiting or scanning at most; more is answered 503 (come back later)
    MAX_QUEUED_IMAGES: int = Field(10000, ge=1)
    #: crbroker: finished jobs kept for GET /scan/<id>
    JOB_HISTORY: int = Field(1000, ge=1)
    #: boto3's own variable; moto in tests
    AWS_ENDPOINT_URL: str | None = None

    @field_validator("LAYER_CACHE_DIR", mode="before")
    @classmethod
    def _cache_off(cls, value: object) -> object:
        if isinstance(value, str) and value.strip().lower() in _OFF:
            return None
        return value

    @field_validator("LOG_LEVEL")
    @classmethod
    def _level(cls, value: str) -> str:
        parse_level(value)
        return value

    @field_validator("HTTPS_CERT", "HTTPS_KEY", "CA_CERT", "NODE_EXTRA_CA_CERTS")
    @classmethod
    def _file_exists(cls, value: Path | None) -> Path | None:
        if value is not None and not value.is_file():
            raise ValueError(f"file {value} does not exist")
        return value

    @field_validator("BROKER_CLIENT_URL")
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("http://", "https://")):
            raise ValueError("must be an http:// or https:// URL")
        return value.rstrip("/") if value else value

    @field_validator("CR_AGENT_AUTH", mode="before")
    @classmethod
    def _auth_mode(cls, value: object) -> object:
        return value.strip().lower() if isinstance(value, str) else value

    @field_validator("CR_AGENT_SECRET")
    @classmethod
    def _secret(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None:
            return None
        text = value.get_secret_value().strip()
        if len(text) < MIN_SECRET_LENGTH:
            raise ValueError(f"must be at least {MIN_SECRET_LENGTH} characters")
        if any(ord(c) < 0x21 or ord(c) > 0x7E for c in text):
            raise ValueError("must be printable ASCII without spaces (it travels in a header)")
        return SecretStr(text)

    @field_validator("CR_ALLOWED_REGISTRIES")
    @classmethod
    def _registries(cls, value: str | None) -> str | None:
        if value is None:
            return None
        for entry in value.split(","):
            if entry.strip():
                host_port(entry)  # raises naming the entry
        return value

    @model_validator(mode="after")
    def _https_pair(self) -> Settings:
        if (self.HTTPS_CERT is None) != (self.HTTPS_KEY is None):
            missing = "HTTPS_KEY" if self.HTTPS_KEY is None else "HTTPS_CERT"
            raise ValueError(f"{missing}: HTTPS_CERT and HTTPS_KEY must be set together")
        if self.CR_AGENT_SECRET is None and self.CR_AGENT_AUTH != "disabled":
            raise ValueError(
                "CR_AGENT_SECRET: required (the broker client's CR_AGENT_SECRET); "
                "set CR_AGENT_AUTH=disabled to run without it"
            )
        return self

    @property
    def port(self) -> int:
        """``SNYK_PORT`` wins over ``PORT``; 0 binds a free port (logged at start-up)."""
        if self.SNYK_PORT is not None:
            return self.SNYK_PORT
        if self.PORT is not None:
            return self.PORT
        return DEFAULT_PORT

    @property
    def port_variable(self) -> str:
        """The variable :attr:`port` came from (the key written to ``PORT_FILE``)."""
        return "PORT" if self.SNYK_PORT is None and self.PORT is not None else "SNYK_PORT"

    @property
    def ca_file(self) -> str | None:
        path = self.CA_CERT or self.NODE_EXTRA_CA_CERTS
        return str(path) if path else None

    @property
    def listing_limits(self) -> ListingLimits:
        return ListingLimits(
            self.LISTING_MAX_PAGES, self.LISTING_MAX_ENTRIES, self.LISTING_MAX_BYTES
        )

    @property
    def tls_insecure(self) -> bool:
        return self.NODE_TLS_REJECT_UNAUTHORIZED.strip().lower() in _FALSE

    @property
    def allowed_registries(self) -> frozenset[str] | None:
        """``host[:port]`` entries, lower-case, default ports dropped; None = any registry."""
        if not self.CR_ALLOWED_REGISTRIES:
            return None
        entries = (e for e in self.CR_ALLOWED_REGISTRIES.split(",") if e.strip())
        return frozenset(host_port(e) for e in entries) or None


def host_port(entry: str) -> str:
    """``host[:port]`` as compared with a registry's address: lower-case, without a default
    port (443/80). A scheme, path or user part is an error naming the entry."""
    text = entry.strip().lower()
    parts = urllib.parse.urlsplit("//" + text)
    try:
        port = parts.port
    except ValueError:
        raise ValueError(f"{entry.strip()!r} has an invalid port") from None
    if not parts.hostname or parts.path or parts.query or parts.fragment or "@" in text:
        raise ValueError(f"{entry.strip()!r} is not host[:port]")
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    return host if port in (None, 443, 80) else f"{host}:{port}"


def load_settings(env: Mapping[str, str] | None = None) -> Settings:
    """Settings from ``env`` (default: the process environment); :class:`SettingsError` on bad."""
    try:
        if env is None:
            return Settings()
        values = {k: v for k, v in env.items() if k.upper() in Settings.model_fields and v != ""}
        return Settings.model_validate({k.upper(): v for k, v in values.items()})
    except ValidationError as exc:
        first = exc.errors()[0]
        name = ".".join(str(p) for p in first.get("loc", ())) or "settings"
        message = first.get("msg", "invalid")
        if message.startswith("Value error, "):
            message = message[len("Value error, ") :]
        if ":" in message and message.split(":", 1)[0].isupper():
            name, message = message.split(":", 1)
            message = message.strip()
        raise SettingsError(f"{name}: {message}") from None
