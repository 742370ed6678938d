import base64
import json

import pytest

from shared.credentials import (
    CredentialsError,
    build_credentials_json,
    decode_credentials,
    encode_credentials,
)


def test_default_type_has_username_password_and_base_and_trailing_newline():
    blob = encode_credentials(
        build_credentials_json("harbor-cr", base="h.example", username="u", password="p")
    )
    raw = base64.b64decode(blob)
    assert raw.endswith(b"\n")
    assert json.loads(raw) == {
        "type": "harbor-cr",
        "username": "u",
        "password": "p",
        "registryBase": "h.example",
    }


def test_password_with_quote_and_backslash_survives_round_trip():
    password = 'pa"ss\\word{}'
    blob = encode_credentials(
        build_credentials_json("docker-hub", base="r", username="u", password=password)
    )
    assert decode_credentials(blob).password == password


def test_ecr_shape_uses_role_arn_and_extra():
    obj = build_credentials_json(
        "ecr", role_arn="arn:aws:iam::1:role/x", region="eu-west-1", external_id="ext"
    )
    assert obj == {
        "type": "ecr",
        "roleArn": "arn:aws:iam::1:role/x",
        "extra": {"region": "eu-west-1", "externalId": "ext"},
    }


def test_digitalocean_uses_token_as_username_and_password():
    obj = build_credentials_json("digitalocean-cr", base="registry.digitalocean.com", token="t0k")
    assert obj["username"] == obj["password"] == "t0k"


@pytest.mark.parametrize(
    ("kwargs", "needle"),
    [
        ({"cr_type": "ecr", "region": "x"}, "CR_ROLE_ARN"),
        ({"cr_type": "digitalocean-cr"}, "CR_TOKEN"),
        ({"cr_type": "acr", "username": "u", "base": "a.azurecr.io"}, "CR_PASSWORD"),
        ({"cr_type": "generic-cr", "username": "u", "password": "p"}, "CR_BASE"),
    ],
)
def test_missing_variable_is_named(kwargs, needle):
    cr_type = kwargs.pop("cr_type")
    with pytest.raises(CredentialsError, match=needle):
        build_credentials_json(cr_type, **kwargs)


def test_decode_accepts_shell_variant_with_spaces_and_legacy_type():
    text = '{"type":"DockerHub", "username":"a", "password":"b", "registryBase":"c"}\n'
    creds = decode_credentials(base64.b64encode(text.encode()).decode())
    assert creds.type == "docker-hub"
    assert (creds.username, creds.password, creds.registryBase) == ("a", "b", "c")


@pytest.mark.parametrize(
    ("blob", "message"),
    [
        ("", "empty"),
        ("!!!notbase64!!!", "base64"),
        (base64.b64encode(b"not json").decode(), "JSON"),
        (base64.b64encode(b"[1,2]").decode(), "not an object"),
        (base64.b64encode(b'{"username":"x"}').decode(), "type"),
    ],
)
def test_decode_errors_say_which_step_failed(blob, message):
    with pytest.raises(CredentialsError, match=message):
        decode_credentials(blob)


def test_repr_hides_secrets():
    creds = decode_credentials(
        encode_credentials(
            build_credentials_json("acr", base="b", username="uu", password="sekrit")
        )
    )
    assert "sekrit" not in repr(creds)
