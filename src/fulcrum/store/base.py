"""The store's records and its interface: what keys and tenant policies look like at rest.

The gateway never reads the store on the hot path: background snapshots (store/sync.py) poll
``revision()`` and reload when it moved. Every backend (SQLite, PostgreSQL) implements the
same async ``Store`` protocol, so nothing above this module knows which one is in use.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal, Protocol

from fulcrum.errors import UserError

KeyStatus = Literal["active", "expired", "revoked"]


class StoreError(UserError):
    """The store failed (unreachable, lost connection, unexpected state); one-line message."""


@dataclass(frozen=True, slots=True)
class KeyRecord:
    """One API key at rest: who it belongs to and how to check it, never the secret itself.

    ``salt`` and ``digest`` are left out of ``repr`` so a logged record reveals nothing
    an attacker could test guesses against.
    """

    key_id: str
    tenant: str
    name: str | None
    salt: bytes = field(repr=False)
    digest: bytes = field(repr=False)
    scopes: tuple[str, ...]
    created_at: datetime
    expires_at: datetime | None = None
    revoked_at: datetime | None = None

    def status(self, now: datetime) -> KeyStatus:
        """Revoked wins over expired; a key whose expiry is still ahead is active."""
        if self.revoked_at is not None:
            return "revoked"
        if self.expires_at is not None and self.expires_at <= now:
            return "expired"
        return "active"


def utc_now() -> datetime:
    """The current time, timezone-aware in UTC (the only kind of datetime the store holds)."""
    return datetime.now(UTC)


class Store(Protocol):
    """Keys and tenant policies, with a revision counter that moves on every write."""

    async def migrate(self) -> None:
        """Bring the schema up to date; safe to run concurrently from several replicas."""

    async def ping(self) -> None:
        """One round trip to the database (connecting first if needed)."""

    async def close(self) -> None:
        """Release the connection; the store cannot be used afterwards."""

    async def insert_key(self, record: KeyRecord) -> None:
        """Add a key; a ``key_id`` that is already taken raises ``StoreError``."""

    async def get_key(self, key_id: str) -> KeyRecord | None: ...

    async def list_keys(
        self, tenant: str | None = None, include_revoked: bool = False
    ) -> list[KeyRecord]:
        """Keys ordered by creation time (expired ones included: expiry depends on the clock)."""
        ...

    async def revoke_key(self, key_id: str, at: datetime) -> bool:
        """Mark the key revoked (the first revocation time stands); False if it does not exist."""
        ...

    async def expire_key(self, key_id: str, at: datetime) -> bool:
        """Bring the key's expiry forward to ``at`` (never later); False if it does not exist."""
        ...

    async def put_tenant(self, name: str, policy: dict[str, Any]) -> None:
        """Create or replace a tenant's policy (a JSON object; validated by the caller)."""

    async def get_tenant(self, name: str) -> dict[str, Any] | None: ...

    async def list_tenants(self) -> dict[str, dict[str, Any]]: ...

    async def delete_tenant(self, name: str) -> bool: ...

    async def revision(self) -> int:
        """A counter that increases with every write to keys or tenants (one cheap query)."""
        ...
