"""Authentication by static API keys from configuration (or none, for local use).

Keys are held only as SHA-256 digests; a presented key is hashed and looked up by digest, so
the comparison never runs over the secret itself and timing reveals nothing about a stored key.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping

from fulcrum.auth.base import invalid_key, missing_credential, presented_credential
from fulcrum.auth.principal import ANONYMOUS, Principal
from fulcrum.config import StaticKey


class NoAuthentication:
    """``auth: none``: every caller is the default tenant."""

    async def authenticate(self, headers: Mapping[str, str]) -> Principal:
        return ANONYMOUS


class StaticKeyAuthenticator:
    """API keys listed in the configuration, each mapped to a tenant."""

    def __init__(self, keys: Iterable[StaticKey]) -> None:
        self._by_digest: dict[bytes, Principal] = {}
        for entry in keys:
            key_id = f"static:{entry.digest.hex()[:12]}"
            self._by_digest[entry.digest] = Principal(
                tenant=entry.tenant, subject=entry.name or key_id, key_id=key_id
            )

    def __len__(self) -> int:
        return len(self._by_digest)

    async def authenticate(self, headers: Mapping[str, str]) -> Principal:
        key = presented_credential(headers)
        if key is None:
            raise missing_credential()
        return self.check(key)

    def check(self, key: str) -> Principal:
        """The principal of a presented key, or a 401."""
        principal = self._by_digest.get(hashlib.sha256(key.encode()).digest())
        if principal is None:
            raise invalid_key()
        return principal
