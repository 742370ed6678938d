"""TLS to the broker server with an extra CA (NODE_EXTRA_CA_CERTS / SSL_CERT_FILE) and an HTTPS
proxy for the websocket and every POST, against the real snyk-broker server serving HTTPS."""

from __future__ import annotations

import asyncio
import json
import ssl
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from deploy.processes import wait_for_http
from tests.broker_client.conftest import Apps, start_our_client
from tests.broker_client.connect_proxy import ConnectProxy
from tests.support import snyk_broker
from tests.support.eventually import eventually

pytestmark = pytest.mark.interop


@dataclass
class Pki:
    ca: Path
    cert: Path
    key: Path


def make_pki(directory: Path) -> Pki:
    """A throw-away CA and a server certificate for 127.0.0.1 / localhost."""
    import datetime
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "crbroker test CA")])
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=2))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                key_cert_sign=True,
                crl_sign=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(
            x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=2))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
        )
        .add_extension(
            x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    pki = Pki(directory / "ca.pem", directory / "server.pem", directory / "server.key")
    pki.ca.write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    pki.cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    pki.key.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption(),
        )
    )
    return pki


@dataclass
class TlsServer:
    broker: snyk_broker.SnykBroker
    pki: Pki

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.broker.port}"

    def context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self.pki.ca))


@pytest.fixture(scope="module")
def tls_server(apps: Apps, tmp_path_factory: pytest.TempPathFactory) -> Iterator[TlsServer]:
    snyk_broker.require_snyk_broker()
    workdir = tmp_path_factory.mktemp("tls")
    pki = make_pki(workdir)
    broker = snyk_broker.start_server(
        workdir / "server",
        accept=snyk_broker.server_accept(apps.upstream_url),
        env={"HTTPS_CERT": str(pki.cert), "HTTPS_KEY": str(pki.key)},
        wait=False,
    )
    server = TlsServer(broker, pki)
    try:
        deadline_url = f"{server.url}/healthcheck"
        wait_for_https(deadline_url, server.context())
        yield server
    finally:
        broker.stop()


def wait_for_https(url: str, context: ssl.SSLContext, timeout: float = 30) -> None:
    def answers() -> bool:
        with urllib.request.urlopen(url, timeout=2, context=context) as resp:
            return resp.status == 200

    eventually(answers, timeout=timeout, interval=0.1, retry_on=(AssertionError, OSError))


def fetch_list(server: TlsServer, token: str) -> dict:
    url = f"{server.url}/broker/{token}/list?page=7"
    with urllib.request.urlopen(url, timeout=30, context=server.context()) as resp:
        return json.loads(resp.read())


@pytest.mark.parametrize("variable", ["NODE_EXTRA_CA_CERTS", "SSL_CERT_FILE"])
def test_extra_ca_is_trusted_for_websocket_and_posts(
    tls_server: TlsServer, apps: Apps, tmp_path: Path, variable: str
) -> None:
    client = start_our_client(
        tmp_path,
        server_url=tls_server.url,
        agent_url=apps.agent_url,
        extra={variable: str(tls_server.pki.ca)},
    )
    try:
        wait_for_http(f"{client.url}/healthcheck", timeout=20)  # 200 = a socket is open over TLS
        assert (
            fetch_list(tls_server, client.token)["path_qs"] == "/list?page=7"
        )  # POST over TLS too
    finally:
        client.stop()


def test_without_the_ca_the_server_is_not_trusted(
    tls_server: TlsServer, apps: Apps, tmp_path: Path
) -> None:
    client = start_our_client(tmp_path, server_url=tls_server.url, agent_url=apps.agent_url)
    try:
        with pytest.raises(TimeoutError):
            wait_for_http(f"{client.url}/healthcheck", timeout=2)
        assert "CERTIFICATE_VERIFY_FAILED" in client.process.log_text()
    finally:
        client.stop()


def test_https_proxy_carries_websocket_and_response_posts(
    tls_server: TlsServer, apps: Apps, tmp_path: Path
) -> None:
    proxy = ConnectProxy()
    proxy_port = asyncio.run_coroutine_threadsafe(proxy.start(), apps.background.loop).result(10)
    client = start_our_client(
        tmp_path,
        server_url=tls_server.url,
        agent_url=apps.agent_url,
        extra={
            "NODE_EXTRA_CA_CERTS": str(tls_server.pki.ca),
            "HTTPS_PROXY": f"http://127.0.0.1:{proxy_port}",
            "HTTP_PROXY": f"http://127.0.0.1:{proxy_port}",
            "NO_PROXY": f"127.0.0.1:{apps.agent_port}",  # the agent is reached directly
        },
    )
    try:
        wait_for_http(f"{client.url}/healthcheck", timeout=20)
        before = len(proxy.targets)
        assert fetch_list(tls_server, client.token)["path_qs"] == "/list?page=7"
        server_target = f"127.0.0.1:{tls_server.broker.port}"
        # two websockets through the proxy before the request, then a tunnel for the POST
        assert before >= 2
        assert len(proxy.targets) >= before + 1
        assert all(t == server_target for t in proxy.targets)
    finally:
        client.stop()
        asyncio.run_coroutine_threadsafe(proxy.stop(), apps.background.loop).result(10)


def test_local_listener_serves_https_with_https_cert_and_key(
    tls_server: TlsServer, apps: Apps, tmp_path: Path
) -> None:
    client = start_our_client(
        tmp_path,
        server_url=tls_server.url,
        agent_url=apps.agent_url,
        wait=False,
        extra={
            "NODE_EXTRA_CA_CERTS": str(tls_server.pki.ca),
            "HTTPS_CERT": str(tls_server.pki.cert),
            "HTTPS_KEY": str(tls_server.pki.key),
        },
    )
    try:
        wait_for_https(
            f"https://127.0.0.1:{client.port}/healthcheck", tls_server.context(), timeout=20
        )
        url = f"https://127.0.0.1:{client.port}/filters"
        with urllib.request.urlopen(url, timeout=10, context=tls_server.context()) as resp:
            assert set(json.loads(resp.read())) == {"private", "public"}
    finally:
        client.stop()
