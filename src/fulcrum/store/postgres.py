"""The PostgreSQL store: shared by every replica of the gateway.

One autocommit connection, used by one operation at a time (an ``asyncio.Lock``): the store
is polled every few seconds and written by an operator, so a pool would buy nothing. A lost
connection (server restart, failover, ``pg_terminate_backend``) is dropped and the operation
retried once on a fresh one; every write here is safe to repeat. Each operation has a
deadline, after which the connection is discarded so a half-finished exchange never leaks
into the next call.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any, TypeVar

import psycopg
from psycopg.conninfo import conninfo_to_dict
from psycopg.rows import TupleRow
from psycopg.types.json import Jsonb

from fulcrum.store.base import KeyRecord, StoreError
from fulcrum.store.migrations import ADVISORY_LOCK_KEY, SCHEMA_MIGRATIONS_TABLE, pending

T = TypeVar("T")
Connection = psycopg.AsyncConnection[TupleRow]

_KEY_COLUMNS = "key_id, tenant, name, salt, digest, scopes, created_at, expires_at, revoked_at"


def url_parts(url: str) -> dict[str, Any] | None:
    """The connection parameters of a URL, or None when libpq cannot parse it."""
    try:
        return dict(conninfo_to_dict(url))
    except psycopg.Error:
        return None


def describe_url(url: str) -> str:
    """The URL without its password, for messages (``postgresql://user@host:port/db``)."""
    parts = url_parts(url)
    if parts is None:
        return "postgresql://(invalid URL)"
    user = f"{parts['user']}@" if parts.get("user") else ""
    host = str(parts.get("host") or "localhost")
    port = f":{parts['port']}" if parts.get("port") else ""
    return f"postgresql://{user}{host}{port}/{parts.get('dbname') or ''}"


def _utc(value: datetime | None) -> datetime | None:
    return None if value is None else value.astimezone(UTC)


def _key_from_row(row: TupleRow) -> KeyRecord:
    key_id, tenant, name, salt, digest, scopes, created, expires, revoked = row
    return KeyRecord(
        key_id=key_id,
        tenant=tenant,
        name=name,
        salt=bytes(salt),
        digest=bytes(digest),
        scopes=tuple(scopes),
        created_at=created.astimezone(UTC),
        expires_at=_utc(expires),
        revoked_at=_utc(revoked),
    )


class PostgresStore:
    """Keys and tenants in PostgreSQL (see the ``Store`` protocol for the contract).

    Constructing one does no I/O; it connects on first use.
    """

    def __init__(
        self, url: str, *, connect_timeout: float = 5.0, operation_timeout: float = 10.0
    ) -> None:
        self._url = url
        self._password = str((url_parts(url) or {}).get("password") or "")
        self._connect_timeout = connect_timeout
        self._operation_timeout = operation_timeout
        self._connection: Connection | None = None
        self._closed = False
        self._lock = asyncio.Lock()
        self.description = describe_url(url)

    async def ping(self) -> None:
        """One round trip (connecting first if needed)."""

        async def select_one(connection: Connection) -> None:
            await connection.execute("SELECT 1")

        await self._run(select_one, timeout=self._connect_timeout + self._operation_timeout)

    # -- connection handling ------------------------------------------------------------------

    async def _connect(self) -> Connection:
        if self._connection is not None and not (
            self._connection.closed or self._connection.broken
        ):
            return self._connection
        await self._discard()
        if self._closed:
            raise StoreError(f"{self.description}: the store is closed")
        self._connection = await psycopg.AsyncConnection.connect(
            self._url,
            autocommit=True,
            connect_timeout=max(1, round(self._connect_timeout)),
            application_name="fulcrum",
        )
        return self._connection

    async def _discard(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            with contextlib.suppress(Exception):  # unusable anyway: dropping it is the point
                await connection.close()

    async def _run(
        self, work: Callable[[Connection], Awaitable[T]], timeout: float | None = None
    ) -> T:
        """Run ``work`` on the connection; if an established connection died, retry once on a
        fresh one (a failure to connect is not retried: the server is simply not there)."""
        async with self._lock:
            for attempt in (1, 2):
                established = self._connection is not None
                try:
                    async with asyncio.timeout(timeout or self._operation_timeout):
                        return await work(await self._connect())
                except psycopg.OperationalError as exc:
                    await self._discard()
                    if attempt == 2 or not established:
                        raise self._error(exc) from None
                except TimeoutError:
                    await self._discard()
                    raise StoreError(f"{self.description}: no answer in time") from None
                except asyncio.CancelledError:
                    await self._discard()
                    raise
                except psycopg.Error as exc:
                    raise self._error(exc) from None
        raise AssertionError("unreachable")

    def _error(self, exc: BaseException) -> StoreError:
        message = " ".join(str(exc).split()) or type(exc).__name__
        if self._password:
            message = message.replace(self._password, "***")
        return StoreError(f"{self.description}: {message}")

    async def run(
        self, work: Callable[[Connection], Awaitable[T]], timeout: float | None = None
    ) -> T:
        """Run ``work`` on the connection, alone, with the store's deadline and reconnection.

        For features that keep their own SQL next to their own code (the usage ledger).
        ``work`` may run twice (once more on a fresh connection if the established one died),
        so it must be safe to repeat; it opens its own transaction on the autocommit
        connection.
        """
        return await self._run(work, timeout)

    async def close(self) -> None:
        async with self._lock:
            self._closed = True
            await self._discard()

    async def backend_pid(self) -> int:
        """The server process of the current connection (tests terminate it on purpose)."""

        async def pid(connection: Connection) -> int:
            return int(connection.info.backend_pid)

        return await self._run(pid)

    # -- schema ---------------------------------------------------------------------------

    async def migrate(self) -> None:
        async def apply(connection: Connection) -> None:
            async with connection.transaction():
                # Held until commit: a replica starting at the same time waits here, then
                # finds every migration applied.
                await connection.execute("SELECT pg_advisory_xact_lock(%s)", (ADVISORY_LOCK_KEY,))
                await connection.execute(SCHEMA_MIGRATIONS_TABLE["postgres"])
                cursor = await connection.execute("SELECT version FROM schema_migrations")
                applied = [row[0] for row in await cursor.fetchall()]
                for migration in pending(applied):
                    for statement in migration.statements("postgres"):
                        await connection.execute(statement)
                    await connection.execute(
                        "INSERT INTO schema_migrations (version) VALUES (%s)",
                        (migration.version,),
                    )

        await self._run(apply, timeout=max(60.0, self._operation_timeout))

    # -- keys -----------------------------------------------------------------------------

    async def insert_key(self, record: KeyRecord) -> None:
        async def insert(connection: Connection) -> None:
            cursor = await connection.execute(
                f"INSERT INTO api_keys ({_KEY_COLUMNS})"
                " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)"
                " ON CONFLICT (key_id) DO NOTHING RETURNING key_id",
                (
                    record.key_id,
                    record.tenant,
                    record.name,
                    record.salt,
                    record.digest,
                    list(record.scopes),
                    record.created_at,
                    record.expires_at,
                    record.revoked_at,
                ),
            )
            if await cursor.fetchone() is not None:
                return
            # Taken: by this very insert if a retry after a lost connection repeated it.
            existing = await connection.execute(
                "SELECT digest FROM api_keys WHERE key_id = %s", (record.key_id,)
            )
            row = await existing.fetchone()
            if row is None or bytes(row[0]) != record.digest:
                raise StoreError(f"key id {record.key_id} already exists")

        await self._run(insert)

    async def get_key(self, key_id: str) -> KeyRecord | None:
        async def get(connection: Connection) -> KeyRecord | None:
            cursor = await connection.execute(
                f"SELECT {_KEY_COLUMNS} FROM api_keys WHERE key_id = %s", (key_id,)
            )
            row = await cursor.fetchone()
            return None if row is None else _key_from_row(row)

        return await self._run(get)

    async def list_keys(
        self, tenant: str | None = None, include_revoked: bool = False
    ) -> list[KeyRecord]:
        async def select(connection: Connection) -> list[KeyRecord]:
            cursor = await connection.execute(
                f"SELECT {_KEY_COLUMNS} FROM api_keys"
                " WHERE (%(tenant)s::text IS NULL OR tenant = %(tenant)s)"
                " AND (%(all)s OR revoked_at IS NULL)"
                " ORDER BY created_at, key_id",
                {"tenant": tenant, "all": include_revoked},
            )
            return [_key_from_row(row) for row in await cursor.fetchall()]

        return await self._run(select)

    async def revoke_key(self, key_id: str, at: datetime) -> bool:
        async def revoke(connection: Connection) -> bool:
            cursor = await connection.execute(
                "UPDATE api_keys SET revoked_at = COALESCE(revoked_at, %s) WHERE key_id = %s",
                (at, key_id),
            )
            return cursor.rowcount > 0

        return await self._run(revoke)

    async def expire_key(self, key_id: str, at: datetime) -> bool:
        async def expire(connection: Connection) -> bool:
            # LEAST ignores NULL: a key without expiry gets ``at``; an earlier one stays.
            cursor = await connection.execute(
                "UPDATE api_keys SET expires_at = LEAST(expires_at, %s) WHERE key_id = %s",
                (at, key_id),
            )
            return cursor.rowcount > 0

        return await self._run(expire)

    # -- tenants --------------------------------------------------------------------------

    async def put_tenant(self, name: str, policy: dict[str, Any]) -> None:
        async def put(connection: Connection) -> None:
            await connection.execute(
                "INSERT INTO tenants (name, policy, updated_at) VALUES (%s, %s, now())"
                " ON CONFLICT (name) DO UPDATE"
                " SET policy = EXCLUDED.policy, updated_at = EXCLUDED.updated_at",
                (name, Jsonb(policy)),
            )

        await self._run(put)

    async def get_tenant(self, name: str) -> dict[str, Any] | None:
        async def get(connection: Connection) -> dict[str, Any] | None:
            cursor = await connection.execute("SELECT policy FROM tenants WHERE name = %s", (name,))
            row = await cursor.fetchone()
            return None if row is None else dict(row[0])

        return await self._run(get)

    async def list_tenants(self) -> dict[str, dict[str, Any]]:
        async def select(connection: Connection) -> dict[str, dict[str, Any]]:
            cursor = await connection.execute("SELECT name, policy FROM tenants ORDER BY name")
            return {name: dict(policy) for name, policy in await cursor.fetchall()}

        return await self._run(select)

    async def delete_tenant(self, name: str) -> bool:
        async def delete(connection: Connection) -> bool:
            cursor = await connection.execute("DELETE FROM tenants WHERE name = %s", (name,))
            return cursor.rowcount > 0

        return await self._run(delete)

    async def revision(self) -> int:
        async def read(connection: Connection) -> int:
            cursor = await connection.execute("SELECT revision FROM store_revision WHERE id = 1")
            row = await cursor.fetchone()
            if row is None:
                raise StoreError(f"{self.description}: the schema is not migrated")
            return int(row[0])

        return await self._run(read)
