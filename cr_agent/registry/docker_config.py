"""Credentials for the command line: ``~/.docker/config.json`` and credential helpers,
and for the agent: the ``CR_CREDENTIALS`` blob.

Docker config keys may be bare hosts or URLs (``https://index.docker.io/v1/`` for Docker Hub);
``credHelpers`` (per host) wins over ``credsStore`` (global) wins over ``auths``. A helper is
run as ``docker-credential-<name> get`` with the server URL on stdin; username ``<token>``
means the secret is an identity (OAuth2 refresh) token.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import subprocess
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from cr_agent.registry.auth import RegistryAuth
from cr_agent.registry.reference import DOCKER_HUB
from shared.logging import get_logger, register_secrets

log = get_logger(__name__)

HUB_KEYS = ("https://index.docker.io/v1/", "index.docker.io", "docker.io", "registry-1.docker.io")


class CredentialHelperError(RuntimeError):
    """A credential helper failed; the message names the helper, never the secret."""


def docker_config_path() -> Path:
    base = os.environ.get("DOCKER_CONFIG")
    return Path(base) / "config.json" if base else Path.home() / ".docker" / "config.json"


def _host_of(key: str) -> str:
    if "://" in key:
        return urlsplit(key).netloc
    return key.split("/")[0]


def _keys_for(registry: str) -> list[str]:
    if registry in HUB_KEYS:
        return list(HUB_KEYS)
    return [registry]


def run_credential_helper(
    helper: str, server: str, *, timeout: float = 30.0
) -> RegistryAuth | None:
    """Ask ``docker-credential-<helper>`` for ``server``'s credentials (None if it has none)."""
    program = f"docker-credential-{helper}"
    try:
        out = subprocess.run(
            [program, "get"],
            input=server.encode(),
            capture_output=True,
            timeout=timeout,
            check=False,
        )
    except FileNotFoundError:
        raise CredentialHelperError(f"credential helper {program} is not on PATH") from None
    except subprocess.TimeoutExpired:
        raise CredentialHelperError(
            f"credential helper {program} did not answer in {timeout}s"
        ) from None
    if out.returncode != 0:
        text = out.stdout.decode(errors="replace").strip()
        if "credentials not found" in text.lower():
            return None
        raise CredentialHelperError(f"credential helper {program} failed (exit {out.returncode})")
    try:
        data = json.loads(out.stdout)
        username, secret = data.get("Username"), data.get("Secret")
    except (ValueError, AttributeError):
        raise CredentialHelperError(f"credential helper {program} printed no JSON object") from None
    register_secrets(secret)
    if username == "<token>":
        return RegistryAuth(identity_token=secret)
    return RegistryAuth(username=username, password=secret)


def auth_from_docker_config(
    registry: str, config: dict[str, Any] | None = None
) -> RegistryAuth | None:
    """Credentials for ``registry`` (host[:port], or docker.io) from the Docker config."""
    if config is None:
        path = docker_config_path()
        if not path.exists():
            return None
        try:
            config = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            raise ValueError(f"cannot read {path}: {exc}") from None
    if not isinstance(config, dict):
        return None
    keys = _keys_for(registry)
    helpers = config.get("credHelpers") or {}
    for key in keys:
        if key in helpers:
            return run_credential_helper(
                helpers[key], "https://index.docker.io/v1/" if registry == DOCKER_HUB else key
            )
    auths = config.get("auths") or {}
    if config.get("credsStore"):
        server = "https://index.docker.io/v1/" if registry == DOCKER_HUB else registry
        found = run_credential_helper(config["credsStore"], server)
        if found is not None:
            return found
    for key, entry in auths.items():
        if _host_of(key) in keys or key in keys:
            return _auth_entry(entry)
    return None


def _auth_entry(entry: Any) -> RegistryAuth | None:
    if not isinstance(entry, dict):
        return None
    if entry.get("identitytoken"):
        return RegistryAuth(identity_token=entry["identitytoken"])
    if entry.get("registrytoken"):
        return RegistryAuth(bearer_token=entry["registrytoken"])
    if entry.get("auth"):
        try:
            raw = base64.b64decode(entry["auth"]).decode()
        except (binascii.Error, UnicodeDecodeError):
            raise ValueError(
                "docker config: an 'auth' entry is not base64 of user:password"
            ) from None
        user, _, password = raw.partition(":")
        return RegistryAuth(username=user, password=password)
    if entry.get("username") is not None:
        return RegistryAuth(username=entry["username"], password=entry.get("password"))
    return None


def auth_from_cr_credentials(blob: str) -> tuple[RegistryAuth, str | None]:
    """(auth, registryBase) from a ``CR_CREDENTIALS`` blob (username/password types)."""
    from shared.credentials import decode_credentials  # pydantic: only when a blob is given

    creds = decode_credentials(blob)
    register_secrets(*creds.secret_values())
    return RegistryAuth(username=creds.username, password=creds.password), creds.registryBase
