"""deploy/kubernetes.yaml: checked without a cluster, against the services' own settings."""

from __future__ import annotations

import urllib.parse
from pathlib import Path
from typing import Any

import pytest
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


def pod_spec(docs: dict[tuple[str, str], dict[str, Any]], name: str) -> dict[str, Any]:
    spec: dict[str, Any] = docs[("Deployment", name)]["spec"]["template"]["spec"]
    return spec


def pod_labels(docs: dict[tuple[str, str], dict[str, Any]], name: str) -> dict[str, str]:
    labels: dict[str, str] = docs[("Deployment", name)]["spec"]["template"]["metadata"]["labels"]
    return labels


def selects(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    assert set(selector) <= {"matchLabels"}, f"unexpected selector form: {selector}"
    return selector["matchLabels"].items() <= labels.items()


DEPLOYMENTS = ("crbroker-broker-client", "crbroker-cr-agent")


@pytest.mark.parametrize("name", DEPLOYMENTS)
def test_pods_are_locked_down(name: str) -> None:
    docs = documents()
    pod = pod_spec(docs, name)
    assert pod["automountServiceAccountToken"] is False
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert pod["securityContext"]["runAsNonRoot"] is True
    for c in pod["containers"]:
        security = c["securityContext"]
        assert security["readOnlyRootFilesystem"] is True
        assert security["allowPrivilegeEscalation"] is False
        assert security["runAsNonRoot"] is True
        assert security["capabilities"] == {"drop": ["ALL"]}
        assert "privileged" not in security and "add" not in security["capabilities"]


@pytest.mark.parametrize("name", DEPLOYMENTS)
def test_every_mount_is_a_declared_writable_volume(name: str) -> None:
    pod = pod_spec(documents(), name)
    volumes = {v["name"]: v for v in pod["volumes"]}
    (c,) = pod["containers"]
    mounts = {m["mountPath"]: m for m in c["volumeMounts"]}
    assert "/tmp" in mounts, "Python's tempfile needs a writable /tmp"
    for mount in mounts.values():
        assert mount["name"] in volumes, f"{mount} names no volume of the pod"
        assert not mount.get("readOnly"), mount
        assert {"emptyDir", "persistentVolumeClaim"} & set(volumes[mount["name"]]), mount


def test_agent_writes_only_to_volumes() -> None:
    docs = documents()
    c = container(docs, "crbroker-cr-agent")
    settings = load_agent_settings(environment(docs, c))
    mounts = {Path(m["mountPath"]) for m in c["volumeMounts"]}
    # the spool and the layer cache are the agent's only files besides /tmp
    assert settings.SPOOL_DIR in mounts
    assert settings.LAYER_CACHE_DIR in mounts


def test_agent_secret_comes_from_the_secret_on_both_sides() -> None:
    docs = documents()
    refs = []
    for name in DEPLOYMENTS:
        env = {i["name"]: i for i in container(docs, name)["env"]}
        refs.append(env["CR_AGENT_SECRET"]["valueFrom"]["secretKeyRef"])
    assert refs[0] == refs[1]
    assert refs[0]["key"] in docs[("Secret", refs[0]["name"])]["stringData"]
    assert "CR_AGENT_SECRET" not in docs[("ConfigMap", "crbroker-broker-client")]["data"]


def policies_for(docs: dict[tuple[str, str], dict[str, Any]], name: str) -> list[dict[str, Any]]:
    labels = pod_labels(docs, name)
    return [
        d["spec"]
        for (kind, _), d in docs.items()
        if kind == "NetworkPolicy" and selects(d["spec"]["podSelector"], labels)
    ]


def test_only_the_broker_client_reaches_the_agent() -> None:
    docs = documents()
    agent = container(docs, "crbroker-cr-agent")
    (agent_port,) = agent["ports"]
    client_labels = pod_labels(docs, "crbroker-broker-client")
    policies = policies_for(docs, "crbroker-cr-agent")
    assert policies, "no NetworkPolicy selects the agent's pods"
    ingress = [p for p in policies if "Ingress" in p["policyTypes"]]
    assert ingress, "the agent's ingress is not restricted"
    # NetworkPolicies add up: every rule of every policy must admit only the broker client
    rules = [rule for p in ingress for rule in p.get("ingress", [])]
    assert rules
    for rule in rules:
        peers = rule["from"]
        assert peers and all(set(peer) == {"podSelector"} for peer in peers), rule
        assert all(selects(peer["podSelector"], client_labels) for peer in peers), rule
        assert rule["ports"] == [{"protocol": "TCP", "port": agent_port["containerPort"]}]


def egress_ports(policies: list[dict[str, Any]], labels: dict[str, str]) -> set[int]:
    """Ports these policies let the pods reach at pods carrying ``labels`` (or anywhere)."""
    ports: set[int] = set()
    for rule in (r for p in policies for r in p.get("egress", [])):
        peers = rule.get("to", [])
        if not peers or any(selects(peer["podSelector"], labels) for peer in peers):
            ports |= {int(p["port"]) for p in rule["ports"]}
    return ports


def test_network_policies_let_the_two_talk_and_resolve_names() -> None:
    docs = documents()
    client_env = environment(docs, container(docs, "crbroker-broker-client"))
    client_settings, _rules = load_client_settings(client_env)
    agent_policies = policies_for(docs, "crbroker-cr-agent")
    client_policies = policies_for(docs, "crbroker-broker-client")
    assert all("Egress" in p["policyTypes"] for p in agent_policies + client_policies)
    client_labels = pod_labels(docs, "crbroker-broker-client")
    agent_labels = pod_labels(docs, "crbroker-cr-agent")
    # the agent calls back to the broker client; the client forwards to the agent
    assert client_settings.PORT in egress_ports(agent_policies, client_labels)
    agent_port = urllib.parse.urlsplit(client_settings.CR_AGENT_URL).port
    (service_port,) = docs[("Service", "crbroker-cr-agent")]["spec"]["ports"]
    assert service_port["port"] == agent_port
    assert agent_port in egress_ports(client_policies, agent_labels)
    # the broker client admits the agent's callbacks
    (client_ingress,) = [r for p in client_policies for r in p.get("ingress", [])]
    assert all(selects(peer["podSelector"], agent_labels) for peer in client_ingress["from"])
    assert {p["port"] for p in client_ingress["ports"]} == {client_settings.PORT}
    for policies in (agent_policies, client_policies):
        assert 53 in egress_ports(policies, {}), "DNS"
        assert 443 in egress_ports(policies, {}), "registries / the broker server over HTTPS"
