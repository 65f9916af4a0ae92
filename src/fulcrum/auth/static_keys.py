"""Authentication by static API keys from configuration (or none, for local use).

Keys are held only as SHA-256 digests; a presented key is hashed and looked up by digest, so
the comparison never runs over the secret itself and timing reveals nothing about a stored key.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from typing import Protocol

from fulcrum.api.errors import ApiError
from fulcrum.auth.principal import ANONYMOUS, Principal
from fulcrum.config import StaticKey


class Authenticator(Protocol):
    """The authentication stage: request headers → Principal, or a 401 ApiError."""

    def authenticate(self, headers: Mapping[str, str]) -> Principal: ...


class NoAuthentication:
    """``auth: none``: every caller is the default tenant."""

    def authenticate(self, headers: Mapping[str, str]) -> Principal:
        return ANONYMOUS


class StaticKeyAuthenticator:
    """API keys listed in the configuration, each mapped to a tenant."""

    def __init__(self, keys: Iterable[StaticKey]) -> None:
        self._by_digest: dict[bytes, Principal] = {
            entry.digest: Principal(
                tenant=entry.tenant, subject=entry.name or f"key:{entry.digest.hex()[:12]}"
            )
            for entry in keys
        }

    def authenticate(self, headers: Mapping[str, str]) -> Principal:
        key = presented_key(headers)
        if key is None:
            raise ApiError(
                401,
                "You didn't provide an API key. Send it as 'Authorization: Bearer KEY'.",
                code="missing_api_key",
            )
        principal = self._by_digest.get(hashlib.sha256(key.encode()).digest())
        if principal is None:
            raise ApiError(401, "Incorrect API key provided.", code="invalid_api_key")
        return principal


def presented_key(headers: Mapping[str, str]) -> str | None:
    """The key from ``Authorization: Bearer …`` or ``x-api-key``; None when absent."""
    authorization = headers.get("Authorization")
    if authorization:
        scheme, _, credential = authorization.partition(" ")
        if scheme.lower() == "bearer" and credential.strip():
            return credential.strip()
        return None
    key = headers.get("x-api-key")
    return key.strip() or None if key else None


def build_authenticator(auth: str | list[StaticKey]) -> Authenticator:
    if isinstance(auth, str):
        return NoAuthentication()
    return StaticKeyAuthenticator(auth)
