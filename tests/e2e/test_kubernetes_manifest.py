"""deploy/kubernetes.yaml: checked without a cluster, against the services' own settings."""

from __future__ import annotations

import urllib.parse
from pathlib import Path
from typing import Any

import yaml

from broker_client.settings import load_settings as load_client_settings
from cr_agent.service.settings import load_settings as load_agent_settings
from tests.e2e.test_dockerfiles import REPO, parse, values

MANIFEST = REPO / "deploy" / "kubernetes.yaml"
SECRET_NAMES = {"BROKER_TOKEN", "CR_USERNAME", "CR_PASSWORD", "CR_TOKEN", "CR_CREDENTIALS"}


def documents() -> dict[tuple[str, str], dict[str, Any]]:
    docs = [d for d in yaml.safe_load_all(MANIFEST.read_text()) if d]
    return {(d["kind"], d["metadata"]["name"]): d for d in docs}


def container(docs: dict[tuple[str, str], dict[str, Any]], name: str) -> dict[str, Any]:
    spec = docs[("Deployment", name)]["spec"]["template"]["spec"]
    (only,) = spec["containers"]
    return {**only, "pod_security": spec["securityContext"]}


def environment(docs: dict[tuple[str, str], dict[str, Any]], c: dict[str, Any]) -> dict[str, str]:
    """The container's environment with secret references resolved from the Secret."""
    env: dict[str, str] = {}
    for source in c.get("envFrom", []):
        env.update(docs[("ConfigMap", source["configMapRef"]["name"])]["data"])
    for item in c.get("env", []):
        if "value" in item:
            env[item["name"]] = item["value"]
        else:
            ref = item["valueFrom"]["secretKeyRef"]
            env[item["name"]] = docs[("Secret", ref["name"])]["stringData"][ref["key"]]
    return env


def service_url(docs: dict[tuple[str, str], dict[str, Any]], name: str) -> str:
    (port,) = docs[("Service", name)]["spec"]["ports"]
    return f"http://{name}:{port['port']}"


def image_uid(dockerfile: str) -> int:
    return int(values(parse(Path(REPO / dockerfile)), "USER")[-1].split(":")[0])


def test_broker_client_deployment() -> None:
    docs = documents()
    c = container(docs, "crbroker-broker-client")
    env = environment(docs, c)
    settings, _rules = load_client_settings(env)  # the client would start with this
    assert settings.credentials, "CR_* did not make a credential blob"
    # secrets come from the Secret, never from the ConfigMap
    secret_refs = {i["name"] for i in c["env"] if "valueFrom" in i}
    assert {"BROKER_TOKEN", "CR_USERNAME", "CR_PASSWORD"} <= secret_refs
    assert not SECRET_NAMES & set(docs[("ConfigMap", "crbroker-broker-client")]["data"])
    # the URLs point at the two Services, on the ports the containers listen on
    assert settings.BROKER_CLIENT_URL == service_url(docs, "crbroker-broker-client")
    assert settings.CR_AGENT_URL == service_url(docs, "crbroker-cr-agent")
    (port,) = c["ports"]
    assert port["containerPort"] == settings.PORT
    assert c["pod_security"]["runAsNonRoot"] is True
    assert c["pod_security"]["runAsUser"] == image_uid("Dockerfile.broker")
    for probe in ("readinessProbe", "livenessProbe"):
        assert c[probe]["httpGet"]["path"] == settings.BROKER_HEALTHCHECK_PATH


def test_agent_deployment() -> None:
    docs = documents()
    c = container(docs, "crbroker-cr-agent")
    env = environment(docs, c)
    settings = load_agent_settings(env)
    assert not SECRET_NAMES & set(env), "the agent holds no registry secret"
    # it shares its secret with the client and calls back to the client's Service only
    client_env = environment(docs, container(docs, "crbroker-broker-client"))
    assert settings.CR_AGENT_SECRET is not None
    assert settings.CR_AGENT_SECRET.get_secret_value() == client_env["CR_AGENT_SECRET"]
    assert {i["name"] for i in c["env"] if "valueFrom" in i} == {"CR_AGENT_SECRET"}
    assert settings.BROKER_CLIENT_URL == service_url(docs, "crbroker-broker-client")
    (port,) = c["ports"]
    assert port["containerPort"] == settings.port
    agent_url = urllib.parse.urlsplit(service_url(docs, "crbroker-cr-agent"))
    assert agent_url.port == docs[("Service", "crbroker-cr-agent")]["spec"]["ports"][0]["port"]
    assert c["pod_security"]["runAsUser"] == image_uid("Dockerfile.agent")
    mounts = {m["mountPath"] for m in c["volumeMounts"]}
    assert str(settings.SPOOL_DIR) in mounts
    assert settings.MAX_ACTIVE_OPERATIONS == 1
    for probe in ("readinessProbe", "livenessProbe"):
        assert c[probe]["httpGet"]["path"] == "/healthcheck"
