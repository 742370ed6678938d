"""Broker client settings, under the environment names snyk-broker documents.

Validated once at start-up; :func:`load_settings` turns every problem into one
:class:`SettingsError` line naming the variable, which ``__main__`` prints before exiting 2.
Names marked "crbroker" are our own additions (snyk-broker has no variable for them).
"""

from __future__ import annotations

import base64
import json
import os
import re
import ssl
import urllib.parse
import urllib.request
from collections.abc import Mapping
from functools import cached_property
from pathlib import Path
from typing import Any

from pydantic import Field, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from shared.accept_rules import AcceptRules, AcceptRulesError, load_rules
from shared.credentials import (
    KNOWN_TYPES,
    CredentialsError,
    build_credentials_json,
    decode_credentials,
    encode_credentials,
    normalise_type,
)
from shared.logging import parse_level
from shared.var_substitution import (
    DEFAULT_ALLOW,
    AllowListError,
    SubstitutionAllowList,
    VariableSource,
)
from shared.version import package_version

DEFAULT_ACCEPT = Path(__file__).with_name("accept") / "container-registry-agent.json"

#: The snyk-broker release whose wire protocol we speak.
PROTOCOL_VERSION = "5.22.14"
#: What we report as ``metadata.version``: valid semver (the server compares it with
#: MINIMAL_SUPPORTED 4.100.0 / RECOMMENDED 4.182.0 / SERVICE_ENABLED 4.209.0), equal in
#: precedence to the release we are compatible with; build metadata (ignored by semver
#: ordering, unlike a pre-release tag, which would sort *below* 5.22.14) names our build.
CLIENT_VERSION = f"{PROTOCOL_VERSION}+crbroker.{re.sub(r'[^0-9A-Za-z.-]', '-', package_version())}"

_FALSE = {"", "0", "false", "no", "off"}


class SettingsError(ValueError):
    """One line: the variable and what is wrong with it."""


def _truthy(value: str | None) -> bool:
    return value is not None and value.strip().lower() not in _FALSE


class Settings(BaseSettings):
    """Environment of ``broker-client``; field names are the environment variable names."""

    model_config = SettingsConfigDict(case_sensitive=False, env_ignore_empty=True, extra="ignore")

    # connection
    BROKER_TOKEN: str
    BROKER_SERVER_URL: str = "https://broker.snyk.io"
    BROKER_CLIENT_URL: str | None = None
    #: crbroker: 0 binds a free port (logged; written to PORT_FILE)
    PORT: int = Field(7341, ge=0, le=65535)
    #: crbroker: after binding, write {"PORT": bound port} here (shared.port_file)
    PORT_FILE: str | None = None
    ACCEPT: str | None = None
    BROKER_HEALTHCHECK_PATH: str = "/healthcheck"
    BROKER_SYSTEMCHECK_PATH: str = "/systemcheck"
    HTTPS_CERT: str | None = None
    HTTPS_KEY: str | None = None
    BROKER_CLIENT_LISTEN_HOST: str = "0.0.0.0"  # crbroker: snyk-broker binds all interfaces

    # container registry agent and its credentials
    CR_AGENT_URL: str | None = None
    CR_TYPE: str | None = None
    CR_BASE: str | None = None
    CR_USERNAME: str | None = None
    CR_PASSWORD: str | None = None
    CR_TOKEN: str | None = None
    CR_ROLE_ARN: str | None = None
    CR_REGION: str | None = None
    CR_EXTERNAL_ID: str | None = None
    CR_CREDENTIALS: str | None = None
    #: crbroker: the agent's CR_AGENT_SECRET, sent to CR_AGENT_URL as X-Crbroker-Agent-Secret
    CR_AGENT_SECRET: str | None = None

    # systemcheck
    BROKER_CLIENT_VALIDATION_URL: str | None = None
    BROKER_CLIENT_VALIDATION_METHOD: str = "GET"
    BROKER_CLIENT_VALIDATION_TIMEOUT_MS: int = Field(5000, gt=0)
    BROKER_CLIENT_VALIDATION_AUTHORIZATION_HEADER: str | None = None
    BROKER_CLIENT_VALIDATION_AUTHORIZATION_HEADER_POOL: str | None = None
    BROKER_CLIENT_VALIDATION_BASIC_AUTH: str | None = None
    BROKER_CLIENT_VALIDATION_BASIC_AUTH_POOL: str | None = None

    # logging
    LOG_LEVEL: str = "info"
    DEBUG: str | None = None

    # network
    HTTPS_PROXY: str | None = None
    HTTP_PROXY: str | None = None
    NO_PROXY: str | None = None
    NODE_EXTRA_CA_CERTS: str | None = None
    SSL_CERT_FILE: str | None = None
    NODE_TLS_REJECT_UNAUTHORIZED: str | None = None

    # request handling
    MAX_RETRY: int = Field(3, ge=0, le=100)
    DISABLE_HEADER_VARS_SUBSTITUTION: str | None = None
    DISABLE_BODY_VARS_SUBSTITUTION: str | None = None
    REMOVE_X_FORWARDED_HEADERS: str | None = None  # accepted; X-Forwarded-* are always dropped

    # socket timings (milliseconds) and limits
    SOCKET_PING_INTERVAL: int = Field(25000, gt=0)
    SOCKET_PONG_TIMEOUT: int = Field(10000, gt=0)
    SOCKET_CONNECT_TIMEOUT: int = Field(10000, gt=0)
    SOCKET_MAX_RESPONSE_LENGTH: int = Field(20971520, gt=0)
    BROKER_CLIENT_POST_TIMEOUT: int = Field(1200000, gt=0)
    BROKER_WEBSERVER_REQUEST_TIMEOUT: int = Field(600000, gt=0)
    BROKER_DOWNSTREAM_TIMEOUT: int = Field(600000, gt=0)  # crbroker: per downstream request
    BROKER_CLIENT_MAX_REQUEST_BODY: int = Field(10485760, gt=0)  # crbroker: local listener limit
    BROKER_CLIENT_RECONNECT_MAX_ATTEMPTS: int = Field(0, ge=0)  # crbroker: 0 = forever
    BROKER_CLIENT_RECONNECT_MAX_DELAY: int = Field(60000, gt=0)  # crbroker: back-off cap, ms
    BROKER_CLIENT_OUTBOX_LIMIT: int = Field(1000, gt=0)  # crbroker: events held while down
    # crbroker: connections open to one downstream origin at once; more requests queue
    BROKER_DOWNSTREAM_MAX_CONNECTIONS: int = Field(64, gt=0, le=10000)
    # crbroker: which ${VAR} server-requested substitution may fill, and where (see README)
    BROKER_CLIENT_VAR_SUB_ALLOW: str = DEFAULT_ALLOW

    @field_validator("BROKER_TOKEN")
    @classmethod
    def _token(cls, value: str) -> str:
        token = value.strip().lower()  # the server lower-cases the path token; keep both equal
        if not token or any(c in token for c in "/?#% \t"):
            raise ValueError("must be a non-empty token without '/', '?', '#', '%' or spaces")
        return token

    @field_validator(
        "BROKER_SERVER_URL", "BROKER_CLIENT_URL", "CR_AGENT_URL", "BROKER_CLIENT_VALIDATION_URL"
    )
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        if value is None:
            return None
        parsed = urllib.parse.urlsplit(value.strip())
        if parsed.scheme not in ("http", "https") or not parsed.hostname:
            raise ValueError("must be an http:// or https:// URL with a host")
        return value.strip().rstrip("/")

    @field_validator("HTTPS_PROXY", "HTTP_PROXY")
    @classmethod
    def _proxy(cls, value: str | None) -> str | None:
        if value is None:
            return None
        parsed = urllib.parse.urlsplit(value if "://" in value else f"http://{value}")
        if parsed.scheme not in ("http", "https") or not parsed.hostname:
            raise ValueError("must be an http:// or https:// proxy URL")
        return parsed.geturl()

    @field_validator("BROKER_HEALTHCHECK_PATH", "BROKER_SYSTEMCHECK_PATH")
    @classmethod
    def _path(cls, value: str) -> str:
        if not value.startswith("/"):
            raise ValueError("must start with '/'")
        return value

    @field_validator("BROKER_CLIENT_VAR_SUB_ALLOW")
    @classmethod
    def _allow(cls, value: str) -> str:
        try:
            SubstitutionAllowList.parse(value)
        except AllowListError as exc:
            raise ValueError(str(exc)) from None
        return value

    @field_validator("CR_TYPE")
    @classmethod
    def _cr_type(cls, value: str | None) -> str | None:
        if value is None:
            return None
        kind = normalise_type(value)
        if kind not in KNOWN_TYPES:
            raise ValueError(
                f"unknown registry type {value!r}; use one of {', '.join(KNOWN_TYPES)}"
            )
        return kind

    @field_validator("LOG_LEVEL")
    @classmethod
    def _level(cls, value: str) -> str:
        parse_level(value)
        return value

    @field_validator("BROKER_CLIENT_VALIDATION_METHOD")
    @classmethod
    def _method(cls, value: str) -> str:
        method = value.strip().upper()
        if method not in ("GET", "POST", "HEAD", "PUT", "OPTIONS"):
            raise ValueError("must be an HTTP method such as GET or POST")
        return method

    @field_validator("NODE_EXTRA_CA_CERTS", "SSL_CERT_FILE", "HTTPS_CERT", "HTTPS_KEY")
    @classmethod
    def _file(cls, value: str | None) -> str | None:
        if value is not None and not Path(value).is_file():
            raise ValueError(f"file {value} does not exist")
        return value

    @model_validator(mode="after")
    def _pairs(self) -> Settings:
        if bool(self.HTTPS_CERT) != bool(self.HTTPS_KEY):
            missing = "HTTPS_KEY" if self.HTTPS_CERT else "HTTPS_CERT"
            raise ValueError(
                f"{missing}: required together with {'HTTPS_CERT' if self.HTTPS_CERT else 'HTTPS_KEY'}"
            )
        return self

    # ----------------------------------------------------------------- derived values

    @property
    def debug(self) -> bool:
        return _truthy(self.DEBUG)

    @property
    def header_substitution(self) -> bool:
        return not _truthy(self.DISABLE_HEADER_VARS_SUBSTITUTION)

    @property
    def body_substitution(self) -> bool:
        return not _truthy(self.DISABLE_BODY_VARS_SUBSTITUTION)

    @cached_property
    def substitution_allow(self) -> SubstitutionAllowList:
        return SubstitutionAllowList.parse(self.BROKER_CLIENT_VAR_SUB_ALLOW)

    @property
    def tls_verify(self) -> bool:
        return (
            self.NODE_TLS_REJECT_UNAUTHORIZED is None
            or self.NODE_TLS_REJECT_UNAUTHORIZED.strip() != "0"
        )

    @property
    def credentials(self) -> str | None:
        """``CR_CREDENTIALS`` as given, else built from the ``CR_*`` variables (set by validation)."""
        return self.CR_CREDENTIALS

    @cached_property
    def ssl_context(self) -> ssl.SSLContext:
        """TLS for the websocket, every upstream POST and downstream: system CAs plus extra bundles."""
        context = ssl.create_default_context()
        for bundle in (self.NODE_EXTRA_CA_CERTS, self.SSL_CERT_FILE):
            if bundle:
                context.load_verify_locations(cafile=bundle)
        if not self.tls_verify:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        return context

    def proxy_for(self, url: str) -> str | None:
        """The proxy to use for ``url`` (HTTPS_PROXY / HTTP_PROXY, honouring NO_PROXY)."""
        parsed = urllib.parse.urlsplit(url)
        host = parsed.hostname or ""
        if self.NO_PROXY and _no_proxy_matches(host, parsed.port, self.NO_PROXY):
            return None
        if parsed.scheme in ("https", "wss"):
            return self.HTTPS_PROXY or self.HTTP_PROXY
        return self.HTTP_PROXY

    def variables(self, environ: Mapping[str, str] | None = None) -> VariableSource:
        """``${VAR}`` source: the environment plus derived values (snyk's merged config)."""
        values: dict[str, str | None] = dict(os.environ if environ is None else environ)
        values.update({k: v for k, v in self.model_dump().items() if isinstance(v, str)})
        values["CR_CREDENTIALS"] = self.CR_CREDENTIALS
        return VariableSource(values)

    def secret_values(self) -> list[str]:
        """Every value no log line may show."""
        # not CR_BASE, CR_REGION or CR_AGENT_URL: addresses are not secrets, and a log line
        # must be able to say which registry or agent failed
        values: list[str | None] = [
            self.BROKER_TOKEN,
            self.CR_USERNAME,
            self.CR_PASSWORD,
            self.CR_TOKEN,
            self.CR_ROLE_ARN,
            self.CR_EXTERNAL_ID,
            self.CR_CREDENTIALS,
            self.CR_AGENT_SECRET,
            self.BROKER_CLIENT_VALIDATION_AUTHORIZATION_HEADER,
            self.BROKER_CLIENT_VALIDATION_BASIC_AUTH,
        ]
        for pool in (
            self.BROKER_CLIENT_VALIDATION_AUTHORIZATION_HEADER_POOL,
            self.BROKER_CLIENT_VALIDATION_BASIC_AUTH_POOL,
        ):
            values += (pool or "").split(",")
        if self.CR_CREDENTIALS:
            try:
                values += decode_credentials(self.CR_CREDENTIALS).secret_values()
            except CredentialsError:
                pass
        for proxy in (self.HTTPS_PROXY, self.HTTP_PROXY):
            if proxy:
                values.append(urllib.parse.urlsplit(proxy).password)
        return [v.strip() for v in values if v and v.strip()]

    def validation_credentials(self) -> list[str | None]:
        """Authorization values for systemcheck, snyk's order; ``[None]`` = one unauthenticated check."""
        if self.BROKER_CLIENT_VALIDATION_AUTHORIZATION_HEADER_POOL:
            return [
                v.strip()
                for v in self.BROKER_CLIENT_VALIDATION_AUTHORIZATION_HEADER_POOL.split(",")
                if v.strip()
            ]
        if self.BROKER_CLIENT_VALIDATION_BASIC_AUTH_POOL:
            pairs = [
                v.strip()
                for v in self.BROKER_CLIENT_VALIDATION_BASIC_AUTH_POOL.split(",")
                if v.strip()
            ]
            return ["Basic " + base64.b64encode(p.encode()).decode() for p in pairs]
        if self.BROKER_CLIENT_VALIDATION_AUTHORIZATION_HEADER:
            return [self.BROKER_CLIENT_VALIDATION_AUTHORIZATION_HEADER]
        if self.BROKER_CLIENT_VALIDATION_BASIC_AUTH:
            return [
                "Basic "
                + base64.b64encode(self.BROKER_CLIENT_VALIDATION_BASIC_AUTH.encode()).decode()
            ]
        # the CRA image copies CR_CREDENTIALS into the validation header; we do the same
        if self.CR_CREDENTIALS:
            return [self.CR_CREDENTIALS]
        return [None]


def _no_proxy_matches(host: str, port: int | None, no_proxy: str) -> bool:
    for entry in (e.strip().lower() for e in no_proxy.split(",")):
        if not entry:
            continue
        if entry == "*":
            return True
        name, _, entry_port = entry.partition(":") if entry.count(":") == 1 else (entry, "", "")
        if entry_port and port is not None and str(port) != entry_port:
            continue
        name = name.lstrip("*")
        if (
            host == name.lstrip(".")
            or (name.startswith(".") and host.endswith(name))
            or host.endswith("." + name)
        ):
            return True
    return False


def load_settings(environ: Mapping[str, str] | None = None) -> tuple[Settings, AcceptRules]:
    """Read and check the environment; raises :class:`SettingsError` with one line on any problem."""
    env = dict(os.environ if environ is None else environ)
    try:
        settings = Settings(_env_file=None, **_from_env(env))
    except ValidationError as exc:
        raise SettingsError(_one_line(exc)) from None
    settings.CR_CREDENTIALS = _credentials(settings)
    rules = load_accept_rules(settings)
    to_agent = any("${CR_AGENT_URL}" in (rule.origin or "") for rule in rules.private)
    if settings.CR_AGENT_URL is None and to_agent:
        raise SettingsError(
            "CR_AGENT_URL: required, the accept rules send requests to ${CR_AGENT_URL}"
        )
    if to_agent and settings.CR_CREDENTIALS is None:
        raise SettingsError(
            "CR_TYPE: required (or CR_CREDENTIALS): the agent gets its registry credentials "
            "from this client only"
        )
    return settings, rules


def _from_env(env: Mapping[str, str]) -> dict[str, Any]:
    # pydantic-settings would read os.environ; we pass a mapping explicitly so tests stay hermetic
    names = {name.upper(): name for name in Settings.model_fields}
    values: dict[str, Any] = {}
    for key, value in env.items():
        field = names.get(key.upper())
        if field is not None and value != "" and (field not in values or key.isupper()):
            values[field] = value
    return values


def _one_line(exc: ValidationError) -> str:
    error = exc.errors()[0]
    where = ".".join(str(p) for p in error.get("loc", ())) or "settings"
    message = str(error.get("msg", "invalid")).removeprefix("Value error, ")
    if error.get("type") == "missing":
        message = "required, not set"
    if ": " in message and where == "settings":
        return message
    return f"{where}: {message}"


def _credentials(settings: Settings) -> str | None:
    if settings.CR_CREDENTIALS:
        try:
            decode_credentials(settings.CR_CREDENTIALS)
        except CredentialsError as exc:
            raise SettingsError(f"CR_CREDENTIALS: {exc}") from None
        return settings.CR_CREDENTIALS.strip()
    if not settings.CR_TYPE:
        return None
    try:
        obj = build_credentials_json(
            settings.CR_TYPE,
            base=settings.CR_BASE,
            username=settings.CR_USERNAME,
            password=settings.CR_PASSWORD,
            token=settings.CR_TOKEN,
            role_arn=settings.CR_ROLE_ARN,
            region=settings.CR_REGION,
            external_id=settings.CR_EXTERNAL_ID,
        )
    except CredentialsError as exc:
        message = str(exc)
        raise SettingsError(
            message if message.startswith("CR_") else f"CR_TYPE: {message}"
        ) from None
    return encode_credentials(obj)


def load_accept_rules(settings: Settings) -> AcceptRules:
    """The rules ``ACCEPT`` names (file path or http(s) URL), else the shipped CRA rules."""
    source = settings.ACCEPT or str(DEFAULT_ACCEPT)
    try:
        if source.startswith(("http://", "https://")):
            with urllib.request.urlopen(source, timeout=10, context=settings.ssl_context) as resp:
                return load_rules(json.loads(resp.read()))
        return load_rules(Path(source))
    except AcceptRulesError as exc:
        raise SettingsError(f"ACCEPT: {exc}") from None
    except (OSError, ValueError) as exc:
        raise SettingsError(f"ACCEPT: cannot download {source}: {exc}") from None
