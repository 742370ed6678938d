"""Secrets at rest: Fernet (``cryptography``) with a key from a setting or a key file.

Encrypts what the control plane must be able to read back (broker tokens it calls the broker
with, direct integrations' registry credentials). API tokens are not here: they are only ever
compared, so they are stored as a hash (:mod:`control_plane.accounts.tokens`).
"""

from __future__ import annotations

import hashlib
import hmac
import os
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken


class SecretKeyError(ValueError):
    """The key setting or key file is unusable (message names which)."""


class SecretBox:
    """Encrypts and decrypts small secrets with one Fernet key."""

    def __init__(self, key: bytes | str) -> None:
        try:
            self._fernet = Fernet(key)
        except (ValueError, TypeError):
            raise SecretKeyError(
                "CRBROKER_SECRET_KEY: not a Fernet key (urlsafe base64 of 32 bytes)"
            ) from None
        raw = key.encode() if isinstance(key, str) else key
        # a MAC key of its own, derived from the same secret (never the encryption key itself)
        self._mac_key = hashlib.sha256(b"crbroker signature key\0" + raw).digest()

    def sign(self, message: bytes) -> str:
        """A short, identifier-shaped MAC of ``message`` (hex HMAC-SHA256)."""
        return hmac.new(self._mac_key, message, hashlib.sha256).hexdigest()

    def verify(self, message: bytes, signature: str) -> bool:
        return hmac.compare_digest(self.sign(message), signature)

    def encrypt(self, plain: bytes) -> bytes:
        return self._fernet.encrypt(plain)

    def decrypt(self, token: bytes) -> bytes:
        try:
            return self._fernet.decrypt(token)
        except InvalidToken:
            raise SecretKeyError(
                "stored secret does not decrypt with CRBROKER_SECRET_KEY (was the key changed?)"
            ) from None


def load_box(key: str | None, key_file: Path) -> SecretBox:
    """The key from ``key`` if given, else from ``key_file``, created (0600) when missing."""
    if key:
        return SecretBox(key.strip())
    try:
        return SecretBox(key_file.read_bytes().strip())
    except FileNotFoundError:
        pass
    except OSError as exc:
        raise SecretKeyError(
            f"CRBROKER_SECRET_KEY_FILE: cannot read {key_file}: {exc.strerror}"
        ) from None
    key_file.parent.mkdir(parents=True, exist_ok=True)
    new_key = Fernet.generate_key()
    try:
        fd = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # another process made it first
        return SecretBox(key_file.read_bytes().strip())
    with os.fdopen(fd, "wb") as handle:
        handle.write(new_key + b"\n")
    return SecretBox(new_key)
