"""API token values: generated, hashed, compared. The value itself is never stored."""

from __future__ import annotations

import hashlib
import secrets
import uuid


def generate_token() -> str:
    """A new API token value (UUID-shaped, as Snyk's are, from the OS's CSPRNG)."""
    return str(uuid.UUID(bytes=secrets.token_bytes(16), version=4))


def hash_token(value: str) -> str:
    """What the database keeps: sha256 hex. Tokens are long and random, so no salt or KDF is
    needed to make a leaked table useless, and a lookup by hash stays one index probe."""
    return hashlib.sha256(value.encode()).hexdigest()
