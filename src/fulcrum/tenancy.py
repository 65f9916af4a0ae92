"""Composition of who may call and how much: authentication, tenant policies, limits.

Built once by the composition root from the configuration (and the gateway's store); owns the
background pieces (the store poller, JWKS caches, the limiter's settlement task) and their
start and stop. With ``auth: none`` nothing here touches a database or the network.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from fulcrum.auth.base import Authenticator
from fulcrum.auth.chain import CredentialAuthenticator, TokenVerifier
from fulcrum.auth.static_keys import NoAuthentication, StaticKeyAuthenticator
from fulcrum.auth.tenants import TenantDirectory
from fulcrum.config import GatewayConfig
from fulcrum.limits.limiter import RateLimiter, build_limiter
from fulcrum.store import Store
from fulcrum.store.sync import Snapshot, StoreSync
from fulcrum.telemetry.metrics import GatewayMetrics

if TYPE_CHECKING:
    from fulcrum.auth.jwt import JwtVerifier


@dataclass
class Tenancy:
    """The authentication and admission stages, and what must start and stop with them."""

    authenticator: Authenticator
    limiter: RateLimiter | None = None
    sync: StoreSync | None = None
    jwt: JwtVerifier | None = None

    async def start(self) -> None:
        """Load keys and tenants (the store is migrated already) before serving."""
        if self.sync is not None:
            await self.sync.refresh()
            self.sync.start()
        if self.jwt is not None:
            await self.jwt.prefetch()  # a JWKS that does not answer yet is retried on use

    async def stop(self) -> None:
        if self.sync is not None:
            await self.sync.stop()
        if self.jwt is not None:
            await self.jwt.close()
        if self.limiter is not None:
            await self.limiter.aclose()


def build_tenancy(config: GatewayConfig, metrics: GatewayMetrics, store: Store | None) -> Tenancy:
    """No authentication at all, or every configured credential kind plus tenant limits."""
    auth = config.auth
    if not auth.enabled:
        return Tenancy(NoAuthentication())
    assert store is not None, "authentication needs the store"
    directory = TenantDirectory(config.tenants, store)
    verifiers: list[TokenVerifier] = []
    snapshots: list[Snapshot] = [directory]
    jwt = None
    if auth.jwt:
        from fulcrum.auth.jwt import JwtVerifier

        jwt = JwtVerifier(auth.jwt, tenant_known=directory.knows)
        verifiers.append(jwt)
    if auth.store_keys:
        from fulcrum.auth.store_keys import StoreKeyAuthenticator

        keys = StoreKeyAuthenticator(store)
        verifiers.append(keys)
        snapshots.append(keys)
    sync = StoreSync(
        store,
        snapshots,
        interval=auth.refresh_interval,
        on_error=metrics.store_refresh_errors.inc,
    )
    authenticator = CredentialAuthenticator(StaticKeyAuthenticator(auth.keys), verifiers, directory)
    limiter = build_limiter(config.limits, config.redis, metrics)
    return Tenancy(authenticator, limiter, sync, jwt)
