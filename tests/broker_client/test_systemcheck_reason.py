"""The reason a failed system check reports, from whatever the validation URL answered."""

from __future__ import annotations

import json

from broker_client.systemcheck import REASON_CHARS, agent_reason
from shared.redaction import SECRETS


def test_agent_step_reason_and_message() -> None:
    body = {
        "ok": False,
        "steps": [
            {"step": "credentials", "ok": True},
            {"step": "list", "ok": False, "message": "catalog: not permitted"},
        ],
        "failedStep": "list",
        "reason": "listing-not-permitted",
    }
    assert (
        agent_reason(json.dumps(body).encode())
        == "list failed (listing-not-permitted): catalog: not permitted"
    )


def test_agent_error_message_and_other_answers() -> None:
    error = {"error": {"code": "credentials-invalid", "message": "Authorization: not base64"}}
    assert agent_reason(json.dumps(error).encode()) == "Authorization: not base64"
    assert agent_reason(b"<html>\n  Bad   gateway\n</html>") == "<html> Bad gateway </html>"
    assert agent_reason(b"") is None
    assert agent_reason(b'{"ok": false}') is None  # JSON without a reason adds nothing
    assert len(agent_reason(b"x" * 10_000) or "") == REASON_CHARS


def test_secrets_are_redacted_before_the_cut() -> None:
    secret = "Sup3r-secret-value-0123456789"
    SECRETS.add(secret)
    try:
        answer = ("y" * (REASON_CHARS - 10) + secret).encode()
        reason = agent_reason(answer) or ""
        assert reason.startswith("y" * (REASON_CHARS - 10)) and len(reason) == REASON_CHARS
        assert not any(secret[i : i + 6] in reason for i in range(len(secret) - 6))
    finally:
        SECRETS.clear()
