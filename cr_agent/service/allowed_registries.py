"""``CR_ALLOWED_REGISTRIES``: the registries the agent may be sent to, whatever a request says.

The credentials of a request name the hosts the agent will contact: ``registryBase`` (or the
registry type's default, or for ECR the token's proxy endpoint), ``apiBase`` (a vendor API),
and a Google key's ``token_uri``. With the setting present, each of them must be one of the
listed ``host[:port]`` entries (compared lower-case, a default port 443/80 omitted), or the
request is answered 403 naming the host. Hosts written into the code (api.github.com,
hub.docker.com, oauth2.googleapis.com, ...) and the redirects a listed registry answers with
(blob storage) are not steerable by a request and are not checked.
"""

from __future__ import annotations

import json
import urllib.parse

from cr_agent.registry_types import RegistryType
from cr_agent.registry_types.base import extra_value
from cr_agent.service.errors import ApiError
from cr_agent.service.settings import host_port
from shared.credentials import CredentialsError, RegistryCredentials


def url_host(url: str) -> str:
    """``host[:port]`` of a URL or bare ``host[:port][/path]`` in the allow-list's form."""
    text = url.strip()
    netloc = urllib.parse.urlsplit(text if "://" in text else "//" + text).netloc
    try:
        return host_port(netloc.rsplit("@", 1)[-1])
    except ValueError:
        return netloc.lower()


def credential_hosts(creds: RegistryCredentials, kind: RegistryType) -> list[tuple[str, str]]:
    """(field, host) for every host these credentials make the agent contact."""
    hosts: list[tuple[str, str]] = []
    if creds.registryBase or kind.default_base:
        try:
            hosts.append(("registryBase", url_host(kind.base_url(creds))))
        except CredentialsError:
            hosts.append(("registryBase", url_host(creds.registryBase or "")))
    api = extra_value(creds, "apiBase")
    if api:
        hosts.append(("apiBase", url_host(api)))
    token_uri = _key_token_uri(creds.password)
    if token_uri:
        hosts.append(("password.token_uri", url_host(token_uri)))
    return hosts


def _key_token_uri(password: str | None) -> str | None:
    if not password or not password.lstrip().startswith("{"):
        return None
    try:
        key = json.loads(password)
    except ValueError:
        return None
    uri = key.get("token_uri") if isinstance(key, dict) else None
    return uri if isinstance(uri, str) and uri.strip() else None


def check_host(host: str, allowed: frozenset[str] | None, *, field: str = "registryBase") -> None:
    """403 unless ``host`` is listed (or no list is set)."""
    if allowed is None or host in allowed:
        return
    raise ApiError(
        403,
        "registry-not-allowed",
        f"registry {host} is not in the agent's CR_ALLOWED_REGISTRIES",
        field=field,
        step="credentials",
        details={"registry": host},  # a host name is not a secret; the message may be scrubbed
    )


def check_credentials(
    creds: RegistryCredentials, kind: RegistryType, allowed: frozenset[str] | None
) -> None:
    """403 naming the first host of these credentials that is not listed."""
    if allowed is None:
        return
    for field, host in credential_hosts(creds, kind):
        check_host(host, allowed, field=field)
