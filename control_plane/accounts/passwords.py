"""Console passwords: argon2id hashes (argon2-cffi), never the password itself.

Verification costs the same whether or not the user exists (:func:`verify` checks a dummy
hash for an unknown user), so sign-in timing does not tell which user names exist.
"""

from __future__ import annotations

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

#: argon2-cffi's defaults (RFC 9106 low-memory profile)
_hasher = PasswordHasher()
MIN_LENGTH = 8
_DUMMY = _hasher.hash("not a password of anyone")


def check_strength(password: str) -> None:
    if len(password) < MIN_LENGTH:
        raise ValueError(f"the password must be at least {MIN_LENGTH} characters")


def hash_password(password: str) -> str:
    check_strength(password)
    return _hasher.hash(password)


def verify(stored: str | None, password: str) -> bool:
    try:
        return _hasher.verify(stored or _DUMMY, password) and stored is not None
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def needs_rehash(stored: str) -> bool:
    return _hasher.check_needs_rehash(stored)
