"""The set of broker tokens this server admits.

Lookups never compare a candidate against a stored token character by character: the candidate
is hashed first (sha256), the hash selects at most one entry, and the final equality check is
``hmac.compare_digest``. Response timing therefore tells an attacker nothing about how much of
a guessed token was right.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable

from shared.logging import register_secrets
from shared.redaction import hash_token, mask_token


class TokenRegistry:
    def __init__(self, tokens: Iterable[str]) -> None:
        self._by_digest: dict[bytes, str] = {}
        for token in tokens:
            self.add(token)

    def add(self, token: str) -> None:
        """Admit ``token`` from now on (crbroker-server: an integration was created)."""
        token = token.lower()
        self._by_digest[hashlib.sha256(token.encode()).digest()] = token
        register_secrets(token)

    def discard(self, token: str) -> None:
        """Stop admitting ``token`` (sockets already open stay until they close)."""
        self._by_digest.pop(hashlib.sha256(token.lower().encode()).digest(), None)

    def __len__(self) -> int:
        return len(self._by_digest)

    def lookup(self, candidate: str) -> str | None:
        """The canonical (lower-case) token equal to ``candidate``, or None."""
        candidate = candidate.lower()
        digest = hashlib.sha256(candidate.encode("utf-8", "surrogatepass")).digest()
        found = self._by_digest.get(digest, "")
        # compare_digest even on a miss, so hit and miss cost the same
        same = hmac.compare_digest(found.encode(), candidate.encode("utf-8", "surrogatepass"))
        return found if same and found else None

    @staticmethod
    def same(a: str, b: str) -> bool:
        """Constant-time equality of two tokens (case-insensitive, as snyk-broker routes)."""
        return hmac.compare_digest(a.lower().encode(), b.lower().encode())

    @staticmethod
    def describe(token: str) -> dict[str, str]:
        """How a token may appear in a log line: masked plus its sha256."""
        return {"token_masked": mask_token(token), "token_hash": hash_token(token)}
