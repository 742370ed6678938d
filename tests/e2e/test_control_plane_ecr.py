"""ECR through the control plane (seed 002): moto in server mode holds a tagged repository,
the agent reaches it with the customer's role (AssumeRole with ExternalId) through a broker
client that holds the ECR credentials; the image itself comes from a local registry (moto
serves no registry API; the credentials' ``registryBase`` points there, as in the agent's ECR
tests). After an import the target carries the repository's resource tags in AWS's shape,
the project has them as tags, and the documented jq finds the service names in our targets.
"""

from __future__ import annotations

import json
import secrets
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest

from deploy import stack as st
from deploy.control_plane_client import ControlPlaneClient
from shared.credentials import encode_credentials
from tests.cr_agent.service.images import debian_image
from tests.support import moto_server
from tests.support.images import push
from tests.support.registry import RunningRegistry, require_registry, running_registry

pytestmark = [pytest.mark.registry, pytest.mark.timeout(180)]

ACCOUNT = "123456789012"
REGION = "eu-west-1"
# moto keeps its state per process, shared by every moto server a test run starts: names of
# our own, so another module's role or repository never collides with these
ROLE_NAME = f"CrbrokerE2eEcrRole{secrets.token_hex(4)}"
ROLE_ARN = f"arn:aws:iam::{ACCOUNT}:role/{ROLE_NAME}"
REPOSITORY = f"payments-{secrets.token_hex(4)}/api"
TAGS = [
    {"Key": "port-auth-service", "Value": ""},
    {"Key": "port-billing", "Value": "owner"},
    {"Key": "cost-centre", "Value": "42"},
]
#: the jq the docs give for the real AWS shape (seed 002's own jq fails on it)
JQ = '.Tags | from_entries | keys[] | select(startswith("port-")) | .[5:]'


def _aws(kind: str, url: str) -> Any:
    return boto3.client(
        kind, region_name=REGION, endpoint_url=url, aws_access_key_id="x", aws_secret_access_key="x"
    )


#: the module's moto server (STS, ECR)
moto_url = moto_server.moto_url


@pytest.fixture(scope="module")
def tagged_repository(moto_url: str) -> Iterator[RunningRegistry]:
    require_registry()
    trust = {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Principal": {"AWS": "*"}, "Action": "sts:AssumeRole"}],
    }
    _aws("iam", moto_url).create_role(
        RoleName=ROLE_NAME, AssumeRolePolicyDocument=json.dumps(trust)
    )
    ecr = _aws("ecr", moto_url)
    ecr.create_repository(repositoryName=REPOSITORY, tags=TAGS)
    image = debian_image()
    ecr.put_image(
        repositoryName=REPOSITORY,
        imageManifest=image.manifest.decode(),
        imageManifestMediaType=image.media_type,
        imageTag="1.0",
    )
    with running_registry("none") as registry:
        push(registry.url, REPOSITORY, image, tag="1.0")
        yield registry


def test_an_ecr_import_carries_the_repository_tags_to_target_and_project(
    moto_url: str, tagged_repository: RunningRegistry, tmp_path: Path
) -> None:
    admin = "adm-" + secrets.token_hex(16)
    aws_identity = {
        "AWS_ENDPOINT_URL": moto_url,
        "AWS_ACCESS_KEY_ID": "AKIAAGENTIDENTITY00",
        "AWS_SECRET_ACCESS_KEY": "agent-own-secret-key",
        "AWS_EC2_METADATA_DISABLED": "true",
    }
    credentials = encode_credentials(
        {
            "type": "ecr",
            "roleArn": ROLE_ARN,
            "extra": {"region": REGION, "externalId": "ext-" + secrets.token_hex(4)},
            "registryBase": tagged_repository.url,
        }
    ).strip()
    started: list[st.Service] = []
    try:
        server = st.start_crbroker_server(tmp_path, env={"CRBROKER_ADMIN_TOKEN": admin})
        started.append(server)
        api = ControlPlaneClient(server.api_url, admin)
        org = api.default_org()
        integration = api.create_integration(
            org, {"integration_type": "ecr", "profile_name": "aws", "has_broker": True}
        )
        token = integration["attributes"]["broker_token"]
        agent, client = st.start_agent_and_client(
            tmp_path,
            token=token,
            server_url=server.url,
            registry={"CR_TYPE": "ecr", "CR_CREDENTIALS": credentials},
            agent_env=aws_identity,
            startup=st.Startup(ready=(200, 500)),
        )
        started += [agent, client]
        st.wait_for_connection(server.url, token)
        status, listing = st.broker_request(
            server.url, token, "GET", f"/list-with-metadata/{REPOSITORY}"
        )
        assert status == 200, listing
        if "Tags" not in listing:
            pytest.skip("this agent does not answer ECR resource tags yet (server-robust's change)")
        job = api.wait_import(api.import_image(org, integration["id"], f"{REPOSITORY}:1.0"))
        assert job["status"] == "complete", job
        project_id = job["logs"][0]["projects"][0]["projectId"]
        (target,) = api.all_pages(f"/rest/orgs/{org}/targets")
        assert target["attributes"]["display_name"] == REPOSITORY
        assert _by_key(target["attributes"]["tags"]) == _by_key(TAGS)
        (project,) = [p for p in api.projects(org) if p["id"] == project_id]
        assert {(t["key"], t["value"]) for t in project["attributes"]["tags"]} == {
            (t["Key"], t["Value"]) for t in TAGS
        }
        found = api.projects(org, tags="port-billing:owner")
        assert [p["id"] for p in found] == [project_id]
        if shutil.which("jq") is None:
            pytest.skip("Debian's jq is not installed")
        services = subprocess.run(
            ["jq", "-r", JQ],
            input=json.dumps({"Tags": target["attributes"]["tags"]}),
            capture_output=True,
            text=True,
            check=True,
        ).stdout.split()
        assert services == ["auth-service", "billing"]
    finally:
        for service in reversed(started):
            service.stop()


def _by_key(tags: list[dict[str, str]]) -> dict[str, str]:
    return {t["Key"]: t["Value"] for t in tags}
