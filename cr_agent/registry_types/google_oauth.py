"""A Google OAuth2 access token from a service-account key (JWT bearer grant, RFC 7523).

Google's registries accept the key itself as Basic credentials (``_json_key``), but the
Artifact Registry API wants a bearer token: the key signs a short JWT (RS256) that the key's
``token_uri`` exchanges for an access token. Tokens are cached per key and scope until
shortly before they expire.
"""

from __future__ import annotations

import base64
import hashlib
import json
import time
from typing import Any

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from cr_agent.registry.errors import AuthenticationError
from cr_agent.registry_types.base import TypeContext
from cr_agent.registry_types.vendor_api import VendorApi
from shared.credentials import CredentialsError
from shared.logging import register_secrets

CLOUD_PLATFORM = "https://www.googleapis.com/auth/cloud-platform"
DEFAULT_TOKEN_URI = "https://oauth2.googleapis.com/token"
JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"
#: the assertion may live at most an hour (Google's limit)
ASSERTION_LIFETIME = 3600
REFRESH_MARGIN = 300
_CACHE = "google-oauth"


def parse_key(secret: str) -> dict[str, Any]:
    """The service-account key JSON, given as is (``_json_key``) or base64 (``_json_key_base64``)."""
    text = secret.strip()
    if not text.startswith("{"):
        try:
            text = base64.b64decode(text, validate=True).decode()
        except ValueError:
            raise CredentialsError(
                "password is not a service-account key (JSON or base64 JSON)"
            ) from None
    try:
        key = json.loads(text)
    except ValueError:
        raise CredentialsError("password is not a service-account key (invalid JSON)") from None
    missing = [f for f in ("client_email", "private_key") if not isinstance(key.get(f), str)]
    if missing:
        raise CredentialsError(f"service-account key lacks {', '.join(missing)}")
    register_secrets(key["private_key"], key.get("private_key_id"))
    return key


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def sign_assertion(key: dict[str, Any], scope: str, now: float | None = None) -> str:
    issued = int(time.time() if now is None else now)
    header = {"alg": "RS256", "typ": "JWT"}
    if key.get("private_key_id"):
        header["kid"] = key["private_key_id"]
    claims = {
        "iss": key["client_email"],
        "scope": scope,
        "aud": key.get("token_uri") or DEFAULT_TOKEN_URI,
        "iat": issued,
        "exp": issued + ASSERTION_LIFETIME,
    }
    signing_input = f"{_b64url(json.dumps(header).encode())}.{_b64url(json.dumps(claims).encode())}"
    try:
        private = serialization.load_pem_private_key(key["private_key"].encode(), password=None)
    except ValueError:
        raise CredentialsError("service-account key has an unreadable private_key") from None
    if not isinstance(private, rsa.RSAPrivateKey):
        raise CredentialsError("service-account key is not an RSA key")
    signature = private.sign(signing_input.encode(), padding.PKCS1v15(), hashes.SHA256())
    return f"{signing_input}.{_b64url(signature)}"


async def access_token(secret: str, ctx: TypeContext, scope: str = CLOUD_PLATFORM) -> str:
    key = parse_key(secret)
    cache = ctx.caches.setdefault(_CACHE, {})
    assert isinstance(cache, dict)
    cache_key = (hashlib.sha256(secret.encode()).hexdigest(), scope)
    hit = cache.get(cache_key)
    if hit is not None and time.time() < hit[1] - REFRESH_MARGIN:
        return hit[0]
    token_uri = key.get("token_uri") or DEFAULT_TOKEN_URI
    assertion = sign_assertion(key, scope)
    register_secrets(assertion)
    api = VendorApi(ctx, token_uri, {"Accept": "application/json"}, vendor="Google OAuth")
    data, _ = await api.request(
        "POST",
        token_uri,
        form={"grant_type": JWT_BEARER, "assertion": assertion},
        step="authenticate",
    )
    token = data.get("access_token") if isinstance(data, dict) else None
    if not isinstance(token, str) or not token:
        raise AuthenticationError("Google OAuth answered without an access token", "authenticate")
    register_secrets(token)
    try:
        lifetime = float(data.get("expires_in") or 3600)
    except (TypeError, ValueError):
        lifetime = 3600.0
    cache[cache_key] = (token, time.time() + lifetime)
    return token
