"""The registry-type registry and the small rules each type carries."""

from __future__ import annotations

import pytest

from cr_agent.registry_types import REGISTRY_TYPES, UnknownRegistryType, known_types, registry_type
from cr_agent.registry_types.base import normalise_base
from cr_agent.registry_types.gitlab_cr import GitLabRegistry
from cr_agent.service.app import image_from_path
from shared.credentials import KNOWN_TYPES, CredentialsError, RegistryCredentials


def test_every_known_type_has_a_plugin() -> None:
    assert set(REGISTRY_TYPES) == set(KNOWN_TYPES)
    assert known_types() == sorted(KNOWN_TYPES)


def test_unknown_type_lists_the_known_ones() -> None:
    with pytest.raises(UnknownRegistryType) as caught:
        registry_type("zip-cr")
    assert "docker-hub" in str(caught.value) and "generic-cr" in str(caught.value)


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("registry.example.com", "https://registry.example.com"),
        ("registry.example.com:5000/", "https://registry.example.com:5000"),
        ("http://127.0.0.1:5000", "http://127.0.0.1:5000"),
        ("HTTPS://host/artifactory/api/docker/repo/", "https://host/artifactory/api/docker/repo"),
        (
            "host/artifactory/api/docker/docker-local",
            "https://host/artifactory/api/docker/docker-local",
        ),
    ],
)
def test_base_gets_https_unless_http_is_written(given: str, expected: str) -> None:
    assert normalise_base(given) == expected


@pytest.mark.parametrize(
    "bad", ["", "ftp://host", "https://user:pw@host", "https://host:99999", "https://host/?q=1"]
)
def test_bad_bases_are_refused_naming_the_field(bad: str) -> None:
    with pytest.raises(CredentialsError) as caught:
        normalise_base(bad)
    assert "registryBase" in str(caught.value)


def creds(**kw: object) -> RegistryCredentials:
    return RegistryCredentials.model_validate(kw)


def test_docker_hub_aliases_pull_from_registry_1() -> None:
    hub = registry_type("docker-hub")
    for base in ("docker.io", "index.docker.io", "https://hub.docker.com", None):
        assert (
            hub.base_url(creds(type="docker-hub", registryBase=base))
            == "https://registry-1.docker.io"
        )


def test_gitlab_api_host_is_the_registry_host_without_registry_prefix() -> None:
    gitlab = registry_type("gitlab-cr")
    assert isinstance(gitlab, GitLabRegistry)
    assert (
        gitlab.api_base(creds(type="gitlab-cr", registryBase="registry.gitlab.com"))
        == "https://gitlab.com"
    )
    assert (
        gitlab.api_base(creds(type="gitlab-cr", registryBase="https://gitlab.corp:5050"))
        == "https://gitlab.corp:5050"
    )


def test_google_types_need_the_json_key_username() -> None:
    for name in ("gcr", "google-artifact-cr"):
        kind = registry_type(name)
        kind.check(
            creds(
                type=name, username="_json_key", password="{}", registryBase="europe-docker.pkg.dev"
            )
        )
        with pytest.raises(CredentialsError, match="_json_key"):
            kind.check(creds(type=name, username="me", password="{}", registryBase="gcr.io"))


def test_ecr_needs_role_and_region() -> None:
    ecr = registry_type("ecr")
    with pytest.raises(CredentialsError, match="roleArn"):
        ecr.check(creds(type="ecr", extra={"region": "us-east-1"}))
    with pytest.raises(CredentialsError, match="region"):
        ecr.check(creds(type="ecr", roleArn="arn:aws:iam::123456789012:role/R"))
    with pytest.raises(CredentialsError, match="IAM role ARN"):
        ecr.check(creds(type="ecr", roleArn="not-an-arn", extra={"region": "us-east-1"}))


@pytest.mark.parametrize(
    ("path", "image"),
    [
        ("library/alpine/3.19", "library/alpine:3.19"),
        ("team/app:1.0", "team/app:1.0"),
        ("team/app@sha256:" + "a" * 64, "team/app@sha256:" + "a" * 64),
        ("team/app/sha256:" + "b" * 64, "team/app@sha256:" + "b" * 64),
        ("alpine", "alpine"),
    ],
)
def test_image_metadata_path_forms(path: str, image: str) -> None:
    assert image_from_path(path) == image
