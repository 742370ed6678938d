"""Run Debian's docker-registry on 127.0.0.1 for tests and benchmarks.

Three flavours: plain (no auth), htpasswd Basic auth, and Bearer tokens from a small token
realm that runs in a background thread (aiohttp) and signs RS256 JWTs with a self-signed
certificate the registry trusts through ``rootcertbundle``.

Use :func:`start_registry` (returns a :class:`RunningRegistry`, call ``stop()``) or the
pytest fixtures at the bottom of this module, which ``tests/cr_agent/conftest.py`` re-exports.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import datetime as dt
import json
import secrets
import shutil
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml
from aiohttp import web
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509.oid import NameOID

from deploy.processes import ServerProcess, wait_for_http, wait_for_listening_port
from shared.port_file import bound_port

REGISTRY_BINARY = "/usr/bin/docker-registry"
TOKEN_SERVICE = "crbroker-test-registry"
TOKEN_ISSUER = "crbroker-test-token-realm"


def registry_available() -> bool:
    return Path(REGISTRY_BINARY).exists()


def require_registry() -> None:
    """Skip the calling test when Debian's docker-registry is not installed."""
    if not registry_available():
        pytest.skip(f"{REGISTRY_BINARY} missing (apt-get install docker-registry)")


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


# --------------------------------------------------------------------------- token realm


@dataclass
class TokenRequest:
    """What the realm saw, so tests can check caching and scope widening."""

    method: str
    user: str | None
    scopes: list[str]
    grant_type: str | None = None


@dataclass
class TokenRealm:
    """A Bearer token realm as docker/distribution's token auth expects it.

    ``users`` maps username -> password for Basic credentials on GET (and the OAuth2
    ``password`` grant); ``refresh_tokens`` maps an identity/refresh token -> username for the
    OAuth2 ``refresh_token`` grant. Authenticated users get every action they ask for;
    anonymous callers get ``pull`` only when ``anonymous_pull`` is set.
    ``response_keys`` chooses which of ``token`` / ``access_token`` the answer carries.
    """

    users: dict[str, str] = field(default_factory=dict)
    refresh_tokens: dict[str, str] = field(default_factory=dict)
    anonymous_pull: bool = False
    expires_in: int = 300
    response_keys: tuple[str, ...] = ("token", "access_token")
    service: str = TOKEN_SERVICE
    issuer: str = TOKEN_ISSUER
    requests: list[TokenRequest] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "crbroker test token realm")])
        now = dt.datetime.now(dt.UTC)
        self._cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(self._key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(days=1))
            .not_valid_after(now + dt.timedelta(days=30))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(self._key, hashes.SHA256())
        )
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runner: web.AppRunner | None = None
        self.port = 0

    # -- certificate and signing

    def cert_pem(self) -> bytes:
        return self._cert.public_bytes(serialization.Encoding.PEM)

    def sign(self, claims: dict[str, Any]) -> str:
        der = self._cert.public_bytes(serialization.Encoding.DER)
        header = {"typ": "JWT", "alg": "RS256", "x5c": [base64.b64encode(der).decode()]}
        signing_input = (
            _b64url(json.dumps(header, separators=(",", ":")).encode())
            + "."
            + _b64url(json.dumps(claims, separators=(",", ":")).encode())
        )
        signature = self._key.sign(signing_input.encode(), padding.PKCS1v15(), hashes.SHA256())
        return signing_input + "." + _b64url(signature)

    def issue(self, subject: str, scopes: list[str], *, expires_in: int | None = None) -> str:
        lifetime = self.expires_in if expires_in is None else expires_in
        now = int(time.time())
        access = []
        for scope in scopes:
            parts = scope.split(":")
            if len(parts) < 3:
                continue
            kind, name, actions = parts[0], ":".join(parts[1:-1]), parts[-1].split(",")
            if not subject:
                actions = [a for a in actions if a == "pull"] if self.anonymous_pull else []
            access.append({"type": kind, "name": name, "actions": actions})
        claims = {
            "iss": self.issuer,
            "sub": subject,
            "aud": self.service,
            "exp": now + lifetime,
            "nbf": now - 10,
            "iat": now,
            "jti": secrets.token_hex(8),
            "access": access,
        }
        return self.sign(claims)

    # -- HTTP

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/token"

    def _basic_user(self, request: web.Request) -> str | bool | None:
        header = request.headers.get("Authorization", "")
        if not header.lower().startswith("basic "):
            return None
        try:
            user, _, password = base64.b64decode(header[6:]).decode().partition(":")
        except ValueError:
            return False
        if self.users.get(user) != password:
            return False
        return user

    def _answer(self, subject: str, scopes: list[str]) -> web.Response:
        token = self.issue(subject, scopes)
        body: dict[str, Any] = {
            "expires_in": self.expires_in,
            "issued_at": dt.datetime.now(dt.UTC).isoformat(),
        }
        for key in self.response_keys:
            body[key] = token
        return web.json_response(body)

    async def _get(self, request: web.Request) -> web.Response:
        scopes = request.query.getall("scope", [])
        user = self._basic_user(request)
        self.requests.append(TokenRequest("GET", user if isinstance(user, str) else None, scopes))
        if user is False:
            return web.json_response({"errors": [{"code": "UNAUTHORIZED"}]}, status=401)
        if request.query.get("service") != self.service:
            return web.json_response({"error": "unknown service"}, status=400)
        return self._answer(user if isinstance(user, str) else "", scopes)

    async def _post(self, request: web.Request) -> web.Response:
        form = await request.post()
        grant = str(form.get("grant_type", ""))
        scopes = " ".join(str(s) for s in form.getall("scope", [])).split()
        self.requests.append(TokenRequest("POST", None, scopes, grant))
        if str(form.get("service", "")) != self.service:
            return web.json_response({"error": "invalid_request"}, status=400)
        if grant == "refresh_token":
            user = self.refresh_tokens.get(str(form.get("refresh_token", "")))
        elif grant == "password":
            name = str(form.get("username", ""))
            user = name if self.users.get(name) == str(form.get("password", "")) else None
        else:
            return web.json_response({"error": "unsupported_grant_type"}, status=400)
        if user is None:
            return web.json_response({"error": "invalid_grant"}, status=401)
        self.requests[-1].user = user
        return self._answer(user, scopes)

    def start(self) -> TokenRealm:
        ready = threading.Event()

        def run() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            app = web.Application()
            app.router.add_get("/token", self._get)
            app.router.add_post("/token", self._post)
            self._runner = web.AppRunner(app, access_log=None)
            loop.run_until_complete(self._runner.setup())
            site = web.TCPSite(self._runner, "127.0.0.1", 0)
            loop.run_until_complete(site.start())
            self.port = bound_port(self._runner.addresses, 0)
            ready.set()
            loop.run_forever()
            loop.run_until_complete(self._runner.cleanup())
            loop.close()

        self._thread = threading.Thread(target=run, name="token-realm", daemon=True)
        self._thread.start()
        if not ready.wait(10):
            raise TimeoutError("token realm did not start")
        return self

    def stop(self) -> None:
        if self._loop is not None and self._thread is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)
            self._loop = None


# --------------------------------------------------------------------------- registry


@dataclass
class RunningRegistry:
    """A docker-registry process and how to reach it."""

    port: int
    workdir: Path
    process: ServerProcess
    auth: str  # "none" | "htpasswd" | "token"
    tls: bool = False
    username: str | None = None
    password: str | None = None
    realm: TokenRealm | None = None
    _own_workdir: bool = True

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return f"{'https' if self.tls else 'http'}://127.0.0.1:{self.port}"

    @property
    def ca_file(self) -> str | None:
        """PEM of the self-signed server certificate when started with ``tls=True``."""
        return str(self.workdir / "tls-cert.pem") if self.tls else None

    @property
    def storage(self) -> Path:
        return self.workdir / "storage"

    def stop(self) -> None:
        self.process.stop()
        if self.realm is not None:
            self.realm.stop()
        if self._own_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def log_text(self) -> str:
        return self.process.log_text()


def self_signed_server_cert() -> tuple[bytes, bytes]:
    """(certificate PEM, key PEM) for 127.0.0.1 / localhost, valid for a month."""
    import ipaddress

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=30))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    )
    return cert.public_bytes(serialization.Encoding.PEM), key_pem


def _htpasswd_line(username: str, password: str) -> str:
    out = subprocess.run(
        ["htpasswd", "-Bbn", username, password],
        check=True,
        capture_output=True,
        text=True,
        timeout=30,
    )
    return out.stdout.strip() + "\n"


def _wait_ready(process: ServerProcess, port: int, *, tls: bool, timeout: float) -> None:
    """Return once the registry answers; ``TimeoutError`` when it exits or the time is up.
    With TLS, listening is enough (a handshake would need its CA)."""
    if not tls:
        wait_for_http(
            f"http://127.0.0.1:{port}/v2/", ok=(200, 401), timeout=timeout, process=process
        )


def _launch(
    root: Path,
    port: int,
    auth: str,
    username: str,
    password: str,
    realm: TokenRealm | None,
    tls: bool,
) -> ServerProcess:
    config: dict[str, Any] = {
        "version": 0.1,
        "log": {"level": "warn", "accesslog": {"disabled": True}},
        "storage": {
            "filesystem": {"rootdirectory": str(root / "storage")},
            "delete": {"enabled": True},
            "cache": {"blobdescriptor": "inmemory"},
        },
        "http": {"addr": f"127.0.0.1:{port}", "secret": secrets.token_hex(16)},
    }
    if auth == "htpasswd":
        (root / "htpasswd").write_text(_htpasswd_line(username, password))
        config["auth"] = {"htpasswd": {"realm": "crbroker-test", "path": str(root / "htpasswd")}}
    elif auth == "token":
        assert realm is not None
        (root / "token-cert.pem").write_bytes(realm.cert_pem())
        config["auth"] = {
            "token": {
                "realm": realm.url,
                "service": realm.service,
                "issuer": realm.issuer,
                "rootcertbundle": str(root / "token-cert.pem"),
            }
        }
    if tls:
        if not (root / "tls-cert.pem").exists():
            cert, key = self_signed_server_cert()
            (root / "tls-cert.pem").write_bytes(cert)
            (root / "tls-key.pem").write_bytes(key)
        config["http"]["tls"] = {
            "certificate": str(root / "tls-cert.pem"),
            "key": str(root / "tls-key.pem"),
        }
    (root / "config.yml").write_text(yaml.safe_dump(config))
    return ServerProcess(
        [REGISTRY_BINARY, "serve", str(root / "config.yml")],
        log_path=root / "registry.log",
    ).start()


def start_registry(
    auth: str = "none",
    *,
    username: str = "scanner",
    password: str | None = None,
    realm: TokenRealm | None = None,
    workdir: Path | None = None,
    tls: bool = False,
) -> RunningRegistry:
    """Start docker-registry on a free loopback port (it binds 0) and wait until ``/v2/`` answers.

    ``auth``: "none", "htpasswd" (Basic, ``username``/``password``) or "token" (Bearer via
    ``realm``, a :class:`TokenRealm`; one is made with ``username``/``password`` if omitted).
    """
    if auth not in ("none", "htpasswd", "token"):
        raise ValueError(f"unknown registry auth {auth!r}")
    own = workdir is None
    root = Path(tempfile.mkdtemp(prefix="crb-registry-")) if workdir is None else workdir
    (root / "storage").mkdir(parents=True, exist_ok=True)
    password = password or secrets.token_urlsafe(12)
    if auth == "token":
        if realm is None:
            realm = TokenRealm(users={username: password})
        if not realm.port:
            realm.start()
    # port 0: docker-registry binds a free port (and names it only at log level info, which
    # we keep at warn), so the kernel's socket table tells which one
    process = _launch(root, 0, auth, username, password, realm, tls)
    try:
        port = wait_for_listening_port(process, name="docker-registry", timeout=30)
        _wait_ready(process, port, tls=tls, timeout=30)
    except TimeoutError:
        if realm is not None:
            realm.stop()
        raise process.failed("docker-registry", "did not answer /v2/ within 30s") from None
    except BaseException:  # also Ctrl-C while waiting: never leave the registry behind
        process.stop()
        if realm is not None:
            realm.stop()
        raise
    return RunningRegistry(
        port=port,
        workdir=root,
        process=process,
        auth=auth,
        tls=tls,
        username=username if auth != "none" else None,
        password=password if auth != "none" else None,
        realm=realm,
        _own_workdir=own,
    )


@contextlib.contextmanager
def running_registry(auth: str = "none", **kwargs: Any) -> Iterator[RunningRegistry]:
    registry = start_registry(auth, **kwargs)
    try:
        yield registry
    finally:
        registry.stop()


# --------------------------------------------------------------------------- pytest fixtures
# Session-scoped so the whole area shares three registry processes; tests use unique
# repository names (see ``unique_repo``) instead of fresh registries.


@pytest.fixture(scope="session")
def plain_registry() -> Iterator[RunningRegistry]:
    require_registry()
    with running_registry("none") as registry:
        yield registry


@pytest.fixture(scope="session")
def htpasswd_registry() -> Iterator[RunningRegistry]:
    require_registry()
    with running_registry("htpasswd") as registry:
        yield registry


@pytest.fixture(scope="session")
def token_registry() -> Iterator[RunningRegistry]:
    require_registry()
    realm = TokenRealm(users={"scanner": secrets.token_urlsafe(12)})
    realm.refresh_tokens[secrets.token_urlsafe(16)] = "scanner"
    password = realm.users["scanner"]
    with running_registry("token", username="scanner", password=password, realm=realm) as reg:
        yield reg


@pytest.fixture
def unique_repo(request: pytest.FixtureRequest) -> str:
    """A repository name nobody else in this session uses."""
    base = "".join(c if c.isalnum() else "-" for c in request.node.name.lower()).strip("-")
    return f"t/{base[:60].strip('-')}-{secrets.token_hex(3)}"
