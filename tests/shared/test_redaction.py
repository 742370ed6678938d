import base64
import io
import json
import logging

import pytest

from shared.credentials import build_credentials_json, encode_credentials
from shared.logging import configure_logging, get_logger, register_secrets
from shared.redaction import (
    SECRETS,
    WITHHELD,
    SecretRegistry,
    excerpt,
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


# --------------------------------------------------------------------------- wire excerpts

#: the issue's example: base64 of ``,"password":"testpass",`` sits inside this blob
ISSUE_BLOB = encode_credentials(
    build_credentials_json(
        "generic-cr", base="registry.example", username="testuser", password="testpass"
    )
)


def test_the_issue_fragment_is_inside_the_blob() -> None:
    assert "iLCJwYXNzd29yZCI6InRlc3RwYXNz" in ISSUE_BLOB


def test_a_cut_through_a_secret_leaks_nothing_of_it() -> None:
    """Issue 16 item 7: cut first and redact after, and the part before the cut escapes."""
    registry = SecretRegistry()
    registry.add(ISSUE_BLOB)
    limit = 400
    for start in range(limit - len(ISSUE_BLOB), limit):
        frame = "4" + "x" * (start - 1) + ISSUE_BLOB + "y" * 50
        if start + 30 < limit < start + len(ISSUE_BLOB):
            # the old order, for contrast: the piece before the cut matches no registered form
            assert ISSUE_BLOB[:30] in registry.scrub(frame[:limit])
        shown = excerpt(frame, limit, registry)
        assert len(shown) <= limit
        for i in range(len(ISSUE_BLOB) - 8):
            assert ISSUE_BLOB[i : i + 8] not in shown


def test_frames_with_secrets_or_credential_fields_are_withheld() -> None:
    registry = SecretRegistry()
    registry.add("s3cret-value")
    assert excerpt('{"a":"s3cret-value"}', 400, registry) == WITHHELD
    # a credential field is withheld whatever its value (a substituted blob, a server's own)
    assert excerpt('{"headers":{"Authorization":"Bearer abc"}}', 400, registry) == WITHHELD
    assert excerpt('{"credentials": "whatever"}', 400, registry) == WITHHELD
    assert excerpt('{"url":"/list","method":"GET"}', 10, registry) == '{"url":"/l'


def test_escaped_credential_fields_inside_a_json_string_are_withheld_too() -> None:
    frame = json.dumps({"body": json.dumps({"credentials": "x", "image": "a:b"})})
    assert excerpt(frame, 400, SecretRegistry()) == WITHHELD
