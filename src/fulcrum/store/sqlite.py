"""The SQLite store: one file, the default for a single gateway and for local use.

``sqlite3`` blocks, so every call runs in a worker thread (``asyncio.to_thread``) on one
connection guarded by a lock; the event loop never waits on the disk. WAL mode lets the CLI
write while a gateway reads. Times are stored as fixed-width ISO-8601 UTC text, so text
order is time order and the expiry rule can be written in SQL.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, TypeVar

from fulcrum.store.base import KeyRecord, StoreError
from fulcrum.store.migrations import SCHEMA_MIGRATIONS_TABLE, pending

T = TypeVar("T")

_KEY_COLUMNS = "key_id, tenant, name, salt, digest, scopes, created_at, expires_at, revoked_at"


def encode_time(value: datetime) -> str:
    """Fixed-width UTC text (naive datetimes are taken as UTC)."""
    utc = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    return utc.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def decode_time(text: str) -> datetime:
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)


def _optional_time(value: datetime | None) -> str | None:
    return None if value is None else encode_time(value)


def _key_from_row(row: tuple[Any, ...]) -> KeyRecord:
    key_id, tenant, name, salt, digest, scopes, created, expires, revoked = row
    return KeyRecord(
        key_id=key_id,
        tenant=tenant,
        name=name,
        salt=bytes(salt),
        digest=bytes(digest),
        scopes=tuple(json.loads(scopes)),
        created_at=decode_time(created),
        expires_at=None if expires is None else decode_time(expires),
        revoked_at=None if revoked is None else decode_time(revoked),
    )


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


class SqliteStore:
    """Keys and tenants in one SQLite file (see the ``Store`` protocol for the contract).

    Constructing one does no I/O; the file is opened (and created) on first use.
    """

    def __init__(self, path: str) -> None:
        self.path = path
        self._connection: sqlite3.Connection | None = None
        self._closed = False
        self._lock = threading.Lock()

    def _connect(self) -> sqlite3.Connection:
        """The connection, opened on first use (called with the lock held, in a thread)."""
        if self._connection is not None:
            return self._connection
        if self._closed:
            raise StoreError(f"SQLite {self.path}: the store is closed")
        try:
            connection = sqlite3.connect(
                self.path, timeout=10.0, isolation_level=None, check_same_thread=False
            )
        except sqlite3.Error as exc:
            raise StoreError(f"cannot open SQLite database {self.path}: {_one_line(exc)}") from None
        try:
            connection.execute("PRAGMA journal_mode=WAL")
            connection.execute("PRAGMA synchronous=NORMAL")
        except sqlite3.Error as exc:
            connection.close()
            raise StoreError(f"cannot open SQLite database {self.path}: {_one_line(exc)}") from None
        self._connection = connection
        return connection

    async def _run(self, work: Callable[[sqlite3.Connection], T]) -> T:
        def locked() -> T:
            with self._lock:
                connection = self._connect()
                try:
                    return work(connection)
                except sqlite3.Error as exc:
                    raise StoreError(f"SQLite {self.path}: {_one_line(exc)}") from None

        return await asyncio.to_thread(locked)

    async def run(self, work: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``work`` on the connection in a worker thread, alone (the lock is held).

        For features that keep their own SQL next to their own code (the usage ledger);
        ``work`` manages its transaction, and an ``sqlite3.Error`` becomes a ``StoreError``.
        """
        return await self._run(work)

    async def ping(self) -> None:
        await self._run(lambda db: db.execute("SELECT 1").fetchone())

    async def close(self) -> None:
        await asyncio.to_thread(self._close)

    def _close(self) -> None:
        with self._lock:
            self._closed = True
            if self._connection is not None:
                self._connection.close()
                self._connection = None

    async def migrate(self) -> None:
        await self._run(_migrate)

    async def insert_key(self, record: KeyRecord) -> None:
        def insert(db: sqlite3.Connection) -> None:
            try:
                db.execute(
                    f"INSERT INTO api_keys ({_KEY_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        record.key_id,
                        record.tenant,
                        record.name,
                        record.salt,
                        record.digest,
                        json.dumps(list(record.scopes)),
                        encode_time(record.created_at),
                        _optional_time(record.expires_at),
                        _optional_time(record.revoked_at),
                    ),
                )
            except sqlite3.IntegrityError:
                raise StoreError(f"key id {record.key_id} already exists") from None

        await self._run(insert)

    async def get_key(self, key_id: str) -> KeyRecord | None:
        def get(db: sqlite3.Connection) -> KeyRecord | None:
            row = db.execute(
                f"SELECT {_KEY_COLUMNS} FROM api_keys WHERE key_id = ?", (key_id,)
            ).fetchone()
            return None if row is None else _key_from_row(row)

        return await self._run(get)

    async def list_keys(
        self, tenant: str | None = None, include_revoked: bool = False
    ) -> list[KeyRecord]:
        conditions, parameters = [], []
        if tenant is not None:
            conditions.append("tenant = ?")
            parameters.append(tenant)
        if not include_revoked:
            conditions.append("revoked_at IS NULL")
        where = f" WHERE {' AND '.join(conditions)}" if conditions else ""
        query = f"SELECT {_KEY_COLUMNS} FROM api_keys{where} ORDER BY created_at, key_id"

        def select(db: sqlite3.Connection) -> list[KeyRecord]:
            return [_key_from_row(row) for row in db.execute(query, parameters)]

        return await self._run(select)

    async def revoke_key(self, key_id: str, at: datetime) -> bool:
        def revoke(db: sqlite3.Connection) -> bool:
            cursor = db.execute(
                "UPDATE api_keys SET revoked_at = COALESCE(revoked_at, ?) WHERE key_id = ?",
                (encode_time(at), key_id),
            )
            return cursor.rowcount > 0

        return await self._run(revoke)

    async def expire_key(self, key_id: str, at: datetime) -> bool:
        def expire(db: sqlite3.Connection) -> bool:
            when = encode_time(at)
            cursor = db.execute(
                "UPDATE api_keys SET expires_at = CASE"
                " WHEN expires_at IS NULL OR expires_at > ? THEN ? ELSE expires_at END"
                " WHERE key_id = ?",
                (when, when, key_id),
            )
            return cursor.rowcount > 0

        return await self._run(expire)

    async def put_tenant(self, name: str, policy: dict[str, Any]) -> None:
        document = json.dumps(policy, sort_keys=True, separators=(",", ":"))
        now = encode_time(datetime.now(UTC))

        def put(db: sqlite3.Connection) -> None:
            db.execute(
                "INSERT INTO tenants (name, policy, updated_at) VALUES (?, ?, ?)"
                " ON CONFLICT (name) DO UPDATE"
                " SET policy = excluded.policy, updated_at = excluded.updated_at",
                (name, document, now),
            )

        await self._run(put)

    async def get_tenant(self, name: str) -> dict[str, Any] | None:
        def get(db: sqlite3.Connection) -> dict[str, Any] | None:
            row = db.execute("SELECT policy FROM tenants WHERE name = ?", (name,)).fetchone()
            return None if row is None else dict(json.loads(row[0]))

        return await self._run(get)

    async def list_tenants(self) -> dict[str, dict[str, Any]]:
        def select(db: sqlite3.Connection) -> dict[str, dict[str, Any]]:
            rows = db.execute("SELECT name, policy FROM tenants ORDER BY name")
            return {name: dict(json.loads(policy)) for name, policy in rows}

        return await self._run(select)

    async def delete_tenant(self, name: str) -> bool:
        def delete(db: sqlite3.Connection) -> bool:
            return db.execute("DELETE FROM tenants WHERE name = ?", (name,)).rowcount > 0

        return await self._run(delete)

    async def revision(self) -> int:
        def read(db: sqlite3.Connection) -> int:
            row = db.execute("SELECT revision FROM store_revision WHERE id = 1").fetchone()
            if row is None:
                raise StoreError(f"SQLite {self.path}: the schema is not migrated")
            return int(row[0])

        return await self._run(read)


def _migrate(db: sqlite3.Connection) -> None:
    """Apply pending migrations in one write transaction (``BEGIN IMMEDIATE`` serialises)."""
    db.execute("BEGIN IMMEDIATE")
    try:
        db.execute(SCHEMA_MIGRATIONS_TABLE["sqlite"])
        applied = [row[0] for row in db.execute("SELECT version FROM schema_migrations")]
        for migration in pending(applied):
            for statement in migration.statements("sqlite"):
                db.execute(statement)
            db.execute(
                "INSERT INTO schema_migrations (version, applied_at) VALUES (?, ?)",
                (migration.version, encode_time(datetime.now(UTC))),
            )
        db.execute("COMMIT")
    except BaseException:
        if db.in_transaction:
            db.execute("ROLLBACK")
        raise
