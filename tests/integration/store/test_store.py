"""The store on both backends: migrations, keys, tenants, the revision, reconnection."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import pytest

from fulcrum.auth.api_keys import generate_key
from fulcrum.errors import ConfigError
from fulcrum.store import KeyRecord, Store, StoreError, create_store, open_store
from fulcrum.store.migrations import MIGRATIONS
from tests.support.postgres import terminate_backend
from tests.support.servers import free_port

T0 = datetime(2030, 5, 6, 7, 8, 9, 123456, tzinfo=UTC)


@pytest.fixture
async def store(store_url: str) -> AsyncIterator[Store]:
    store = await open_store(store_url)
    yield store
    await store.close()


def key_record(key_id: str | None = None, **changes: object) -> KeyRecord:
    new = generate_key()
    record = KeyRecord(
        key_id=key_id or new.key_id,
        tenant="acme",
        name="billing",
        salt=new.salt,
        digest=new.digest,
        scopes=("chat", "embeddings"),
        created_at=T0,
    )
    return replace(record, **changes)  # type: ignore[arg-type]


def applied_versions(url: str) -> list[int]:
    """schema_migrations as another client sees it."""
    if url.startswith("sqlite:///"):
        with sqlite3.connect(url.removeprefix("sqlite:///")) as db:
            return [row[0] for row in db.execute("SELECT version FROM schema_migrations")]
    with psycopg.connect(url) as connection:
        rows = connection.execute("SELECT version FROM schema_migrations ORDER BY version")
        return [row[0] for row in rows]


def every_version() -> list[int]:
    return [migration.version for migration in MIGRATIONS]


# -- migrations -------------------------------------------------------------------------------


def test_migration_versions_only_ever_grow() -> None:
    versions = every_version()
    assert versions == sorted(set(versions))
    assert versions[0] == 1


async def test_migrations_are_idempotent(store_url: str) -> None:
    store = await open_store(store_url)
    try:
        await store.migrate()
        await store.migrate()
        assert await store.revision() == 0
    finally:
        await store.close()
    again = await open_store(store_url)
    await again.close()
    assert applied_versions(store_url) == every_version()


async def test_concurrent_migrations_apply_each_version_once(store_url: str) -> None:
    stores = [await open_store(store_url, migrate=False) for _ in range(4)]
    try:
        await asyncio.gather(*(store.migrate() for store in stores))
        assert [await store.revision() for store in stores] == [0, 0, 0, 0]
    finally:
        for store in stores:
            await store.close()
    assert applied_versions(store_url) == every_version()


async def test_a_database_newer_than_the_code_is_refused(store_url: str) -> None:
    store = await open_store(store_url)
    await store.close()
    if store_url.startswith("sqlite:///"):
        with sqlite3.connect(store_url.removeprefix("sqlite:///")) as db:
            db.execute("INSERT INTO schema_migrations VALUES (999, 'x')")
    else:
        with psycopg.connect(store_url) as connection:
            connection.execute("INSERT INTO schema_migrations (version) VALUES (999)")
    with pytest.raises(ConfigError, match="schema version 999, newer than this Fulcrum"):
        await open_store(store_url)


# -- keys -------------------------------------------------------------------------------------


async def test_a_key_round_trips_exactly(store: Store) -> None:
    record = key_record(expires_at=T0 + timedelta(days=30))
    await store.insert_key(record)
    loaded = await store.get_key(record.key_id)
    assert loaded == record
    assert loaded is not None and loaded.created_at.tzinfo is not None
    assert await store.get_key("nosuchkey000") is None


async def test_a_key_id_cannot_be_inserted_twice(store: Store) -> None:
    record = key_record()
    await store.insert_key(record)
    with pytest.raises(StoreError, match="already exists"):
        await store.insert_key(key_record(record.key_id))


async def test_keys_are_listed_by_tenant_and_revocation(store: Store) -> None:
    first = key_record(created_at=T0)
    second = key_record(created_at=T0 + timedelta(seconds=1), tenant="globex")
    revoked = key_record(created_at=T0 + timedelta(seconds=2), revoked_at=T0)
    for record in (second, revoked, first):
        await store.insert_key(record)
    assert [r.key_id for r in await store.list_keys()] == [first.key_id, second.key_id]
    assert [r.key_id for r in await store.list_keys(include_revoked=True)] == [
        first.key_id,
        second.key_id,
        revoked.key_id,
    ]
    assert [r.key_id for r in await store.list_keys(tenant="globex")] == [second.key_id]
    assert [r.key_id for r in await store.list_keys("acme", include_revoked=True)] == [
        first.key_id,
        revoked.key_id,
    ]


async def test_the_first_revocation_time_stands(store: Store) -> None:
    record = key_record()
    await store.insert_key(record)
    assert await store.revoke_key(record.key_id, T0)
    assert await store.revoke_key(record.key_id, T0 + timedelta(hours=1))
    loaded = await store.get_key(record.key_id)
    assert loaded is not None and loaded.revoked_at == T0
    assert loaded.status(T0) == "revoked"
    assert not await store.revoke_key("nosuchkey000", T0)


async def test_expiry_is_only_ever_brought_forward(store: Store) -> None:
    never = key_record()
    soon = key_record(expires_at=T0 + timedelta(minutes=5))
    await store.insert_key(never)
    await store.insert_key(soon)
    grace_end = T0 + timedelta(hours=1)
    assert await store.expire_key(never.key_id, grace_end)
    assert await store.expire_key(soon.key_id, grace_end)
    assert (await store.get_key(never.key_id)).expires_at == grace_end  # type: ignore[union-attr]
    assert (await store.get_key(soon.key_id)).expires_at == soon.expires_at  # type: ignore[union-attr]
    assert not await store.expire_key("nosuchkey000", grace_end)


# -- tenants ----------------------------------------------------------------------------------


async def test_tenant_policies_can_be_created_replaced_listed_and_deleted(store: Store) -> None:
    acme = {"models": ["llama"], "limits": {"rpm": 60, "per_key": {"tpm": 1000}}}
    assert await store.get_tenant("acme") is None
    await store.put_tenant("acme", acme)
    await store.put_tenant("globex", {})
    assert await store.get_tenant("acme") == acme
    assert await store.list_tenants() == {"acme": acme, "globex": {}}
    await store.put_tenant("acme", {"cache": {"allowed": False}})
    assert await store.get_tenant("acme") == {"cache": {"allowed": False}}
    assert await store.delete_tenant("acme")
    assert not await store.delete_tenant("acme")
    assert list(await store.list_tenants()) == ["globex"]


# -- revision ---------------------------------------------------------------------------------


async def test_every_write_increases_the_revision_and_reads_do_not(store: Store) -> None:
    record = key_record()
    writes: list[Callable[[], Awaitable[object]]] = [
        lambda: store.insert_key(record),
        lambda: store.expire_key(record.key_id, T0 + timedelta(days=1)),
        lambda: store.revoke_key(record.key_id, T0),
        lambda: store.put_tenant("acme", {}),
        lambda: store.put_tenant("acme", {"models": ["llama"]}),
        lambda: store.delete_tenant("acme"),
    ]
    seen = [await store.revision()]
    for write in writes:
        await write()
        seen.append(await store.revision())
        await store.list_keys(include_revoked=True)
        await store.list_tenants()
        await store.get_key(record.key_id)
        assert await store.revision() == seen[-1]
    assert seen == sorted(seen) and len(set(seen)) == len(seen), seen


async def test_another_handle_sees_the_writes_of_the_first(store_url: str, store: Store) -> None:
    other = await open_store(store_url)
    try:
        before = await other.revision()
        record = key_record()
        await store.insert_key(record)
        assert await other.revision() > before
        assert await other.get_key(record.key_id) == record
    finally:
        await other.close()


# -- PostgreSQL connection loss ----------------------------------------------------------------


async def test_postgres_reconnects_after_its_connection_was_killed(postgres_url: str) -> None:
    from fulcrum.store.postgres import PostgresStore

    store = await open_store(postgres_url)
    assert isinstance(store, PostgresStore)
    try:
        first_pid = await store.backend_pid()
        terminate_backend(first_pid)
        assert await store.revision() == 0  # retried on a fresh connection
        assert await store.backend_pid() != first_pid
        terminate_backend(await store.backend_pid())
        record = key_record()
        await store.insert_key(record)  # a write after a kill works too
        assert await store.get_key(record.key_id) == record
    finally:
        await store.close()


# -- opening ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("mysql://root@localhost/db", "unsupported store URL scheme 'mysql'"),
        ("sqlite:///", "needs a path"),
        ("postgresql://[broken", "invalid PostgreSQL store URL"),
    ],
)
async def test_an_unusable_url_is_a_one_line_config_error(url: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message) as info:
        await open_store(url)
    assert "\n" not in str(info.value)


async def test_an_unreachable_postgres_is_a_one_line_error_without_the_password() -> None:
    url = f"postgresql://fulcrum:s3cret-pw@127.0.0.1:{free_port()}/fulcrum"
    with pytest.raises(ConfigError) as info:
        await open_store(url)
    message = str(info.value)
    assert message.startswith("store: postgresql://fulcrum@127.0.0.1:")
    assert "s3cret-pw" not in message
    assert "\n" not in message


async def test_create_store_does_no_io_until_first_use(tmp_path: Path) -> None:
    path = tmp_path / "lazy.db"
    sqlite = create_store(f"sqlite:///{path}")
    postgres = create_store(f"postgresql://fulcrum@127.0.0.1:{free_port()}/fulcrum")
    assert not path.exists()
    with pytest.raises(StoreError, match=r"127\.0\.0\.1"):
        await postgres.ping()
    await sqlite.migrate()
    assert path.exists() and await sqlite.revision() == 0
    await sqlite.close()
    await postgres.close()


async def test_a_closed_store_refuses_work(store_url: str) -> None:
    store = await open_store(store_url)
    await store.close()
    with pytest.raises(StoreError, match="closed"):
        await store.revision()


async def test_an_sqlite_file_that_cannot_be_created_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot open SQLite database"):
        await open_store(f"sqlite:///{tmp_path / 'missing' / 'dir' / 'store.db'}")


async def test_a_file_that_is_not_a_database_is_a_config_error(tmp_path: Path) -> None:
    path = tmp_path / "not-a-db"
    path.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(ConfigError, match="not a database"):
        await open_store(f"sqlite:///{path}")
