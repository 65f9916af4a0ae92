"""One authenticator for every kind of credential, chosen by the credential's shape.

A JWT (three base64url segments, header first) goes to the JWT verifier; a key made by
`fulcrum keys` (``fk_`` prefix) to the store's keys; anything else to the static keys. The
tenant's policy is attached last, so every Principal leaving here carries it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Protocol

from fulcrum.auth.base import invalid_key, missing_credential, presented_credential
from fulcrum.auth.principal import UNRESTRICTED, Principal
from fulcrum.auth.static_keys import StaticKeyAuthenticator
from fulcrum.config import TenantConfig

_ATTACHED_CACHE_SIZE = 4096


class TokenVerifier(Protocol):
    """Verifies one kind of bearer credential and names its principal (policy not yet set)."""

    def owns(self, credential: str) -> bool: ...

    async def verify(self, credential: str) -> Principal: ...


class PolicySource(Protocol):
    """Where tenants' policies come from (configuration, and the store)."""

    def policy(self, tenant: str) -> TenantConfig | None: ...


class StaticPolicies:
    """Policies from the configuration file only."""

    def __init__(self, tenants: Mapping[str, TenantConfig]) -> None:
        self._tenants = dict(tenants)

    def policy(self, tenant: str) -> TenantConfig | None:
        return self._tenants.get(tenant)


class CredentialAuthenticator:
    """Dispatch by credential shape, then attach the tenant's policy."""

    def __init__(
        self,
        static: StaticKeyAuthenticator,
        verifiers: list[TokenVerifier],
        policies: PolicySource,
    ) -> None:
        self._static = static
        self._verifiers = verifiers
        self._policies = policies
        # id(principal) -> (principal, policy, principal with that policy): static keys give
        # the same Principal every time, so its copy with the policy is made once, not per call.
        self._with_policy: dict[int, tuple[Principal, TenantConfig, Principal]] = {}

    async def authenticate(self, headers: Mapping[str, str]) -> Principal:
        credential = presented_credential(headers)
        if credential is None:
            raise missing_credential()
        principal = await self._verify(credential)
        policy = self._policies.policy(principal.tenant)
        if policy is None or policy is principal.policy:
            return principal
        cached = self._with_policy.get(id(principal))
        if cached is not None and cached[0] is principal and cached[1] is policy:
            return cached[2]
        attached = dataclasses.replace(principal, policy=policy)
        if len(self._with_policy) >= _ATTACHED_CACHE_SIZE:
            self._with_policy.clear()  # e.g. JWTs: a new Principal per token
        self._with_policy[id(principal)] = (principal, policy, attached)
        return attached

    async def _verify(self, credential: str) -> Principal:
        for verifier in self._verifiers:
            if verifier.owns(credential):
                return await verifier.verify(credential)
        if len(self._static) == 0:
            raise invalid_key()
        return self._static.check(credential)


__all__ = ["UNRESTRICTED", "CredentialAuthenticator", "StaticPolicies", "TokenVerifier"]
