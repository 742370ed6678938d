import base64
import io
import json
import logging

import pytest

from shared.logging import configure_logging, get_logger, register_secrets
from shared.redaction import (
    SECRETS,
    SecretRegistry,
    hash_token,
    is_sensitive_key,
    mask_credentials,
    mask_token,
)


@pytest.fixture
def log_stream():
    SECRETS.clear()
    stream = io.StringIO()
    configure_logging("debug", service="test", stream=stream)
    yield stream
    SECRETS.clear()


def lines(stream):
    return [json.loads(line) for line in stream.getvalue().splitlines() if line.strip()]


def test_registered_secret_is_removed_from_message_and_nested_values(log_stream):
    register_secrets("hunter2-secret")
    get_logger("t").debug(
        "connecting with hunter2-secret",
        url="http://x/hunter2-secret/y",
        nested={"a": ["hunter2-secret"]},
    )
    text = log_stream.getvalue()
    assert "hunter2-secret" not in text
    assert lines(log_stream)[0]["nested"] == {"a": ["[REDACTED]"]}


def test_base64_and_decoded_forms_are_removed(log_stream):
    blob = base64.b64encode(b'{"password":"pw-xyz-123"}\n').decode()
    register_secrets(blob)
    get_logger("t").info("x", decoded='{"password":"pw-xyz-123"}', blob=blob)
    assert blob not in log_stream.getvalue()
    assert "pw-xyz-123" not in log_stream.getvalue()


def test_authorization_header_values_are_always_replaced(log_stream):
    get_logger("t").info("req", headers={"Authorization": "Basic Zm9vOmJhcg==", "accept": "*/*"})
    assert lines(log_stream)[0]["headers"] == {"Authorization": "[REDACTED]", "accept": "*/*"}


def test_stdlib_loggers_pass_the_same_processor(log_stream):
    register_secrets("stdlib-secret-value")
    logging.getLogger("some.library").warning("got stdlib-secret-value back")
    assert "stdlib-secret-value" not in log_stream.getvalue()
    assert lines(log_stream)[0]["level"] == "warning"


def test_token_masks():
    token = "4f6c7a52-3d0e-4b8a-9a51-2b5e1d7c9e10"
    assert mask_token(token) == "4f6c-...-9e10"
    assert len(hash_token(token)) == 64
    assert mask_credentials("eyJabcdefg==") == "eyJ***g=="
    assert mask_credentials("short") == "***"
    assert mask_credentials(None) is None


def test_unknown_level_is_named():
    with pytest.raises(ValueError, match="verbose"):
        configure_logging("verbose", service="t")


def test_documented_public_usernames_are_never_redacted(log_stream):
    register_secrets("_json_key", "oauth2accesstoken", "real-password-42")
    get_logger("t").info("username must be _json_key or oauth2accesstoken", pw="real-password-42")
    text = log_stream.getvalue()
    assert "_json_key or oauth2accesstoken" in text
    assert "real-password-42" not in text


def test_secrets_added_after_a_scrub_are_redacted_by_the_next_one() -> None:
    registry = SecretRegistry()
    assert registry.scrub("nothing registered yet") == "nothing registered yet"
    registry.add("first-secret-1")
    assert registry.scrub("a first-secret-1 b") == "a [REDACTED] b"
    registry.add("second-secret-2")
    assert registry.scrub("first-secret-1 second-secret-2") == "[REDACTED] [REDACTED]"
    registry.clear()
    assert registry.scrub("first-secret-1") == "first-secret-1"


def test_a_secret_containing_another_is_replaced_whole() -> None:
    registry = SecretRegistry()
    registry.add("inner-value", "outer-inner-value-tail")
    assert registry.scrub("x outer-inner-value-tail y") == "x [REDACTED] y"


@pytest.mark.parametrize(
    ("key", "sensitive"),
    [
        ("Authorization", True),
        ("x-broker-token", True),
        ("private_key", True),
        ("client-secret", True),
        ("token_type", False),
        ("tokens", False),
        ("username", False),
    ],
)
def test_sensitive_key_names(key: str, sensitive: bool) -> None:
    assert is_sensitive_key(key) is sensitive
