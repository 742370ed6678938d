"""The agent's registry credentials come from this client, never from the server.

snyk-broker forwards whatever ``Authorization`` the server wrote, so a server can hand the
agent a credential blob of its own (``"registryBase": "http://<internal host>"``) and read back
what the agent fetched there. For agent-bound requests we drop the server's ``Authorization``
and the ``credentials`` field the agent would also read from a JSON body, and put this
client's own ``CR_CREDENTIALS`` in the header. Pure functions: the caller logs what was dropped.
"""

from __future__ import annotations

import json

#: What Snyk's backend sends for the client to fill in; dropping it is routine, not an alarm.
PLACEHOLDER = "${CR_CREDENTIALS}"
BODY_FIELD = "credentials"


def own_credentials(headers: dict[str, str], credentials: str | None) -> bool:
    """Replace ``authorization`` in ``headers`` (lower-case names) with ``credentials``.

    Returns True when the server had sent a value of its own (anything but the placeholder).
    """
    sent = headers.pop("authorization", None)
    if credentials:
        headers["authorization"] = credentials
    return sent is not None and sent.strip() not in ("", PLACEHOLDER)


def without_body_credentials(body: bytes | None) -> tuple[bytes | None, bool]:
    """``body`` without a top-level ``credentials`` field; True when one held a real value."""
    if not body or BODY_FIELD.encode() not in body:
        return body, False
    try:
        parsed = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return body, False
    if not isinstance(parsed, dict) or BODY_FIELD not in parsed:
        return body, False
    sent = parsed.pop(BODY_FIELD)
    foreign = not (sent is None or (isinstance(sent, str) and sent.strip() in ("", PLACEHOLDER)))
    text = json.dumps(parsed, separators=(",", ":"), ensure_ascii=False)
    return text.encode(), foreign
