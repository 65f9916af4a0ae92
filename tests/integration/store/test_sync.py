"""StoreSync: replicas pick up revocations and policies within a few intervals; outages
keep the last snapshot, are counted on every poll and logged once."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from fulcrum.api.errors import ApiError
from fulcrum.auth.api_keys import generate_key
from fulcrum.auth.principal import Principal
from fulcrum.auth.store_keys import StoreKeyAuthenticator
from fulcrum.auth.tenants import TenantDirectory
from fulcrum.store import KeyRecord, Store, StoreError, open_store, utc_now
from fulcrum.store.sync import StoreSync
from fulcrum.telemetry.metrics import GatewayMetrics

INTERVAL = 0.1


@dataclass
class Replica:
    """What one gateway process holds: its own store handle, snapshots and poller."""

    store: Store
    keys: StoreKeyAuthenticator
    tenants: TenantDirectory
    sync: StoreSync

    async def close(self) -> None:
        await self.sync.stop()
        await self.store.close()


async def start_replica(url: str) -> Replica:
    store = await open_store(url)
    keys = StoreKeyAuthenticator(store)
    tenants = TenantDirectory({}, store)
    sync = StoreSync(store, [keys, tenants], interval=INTERVAL)
    await sync.refresh()
    sync.start()
    return Replica(store, keys, tenants, sync)


async def create_key(store: Store, tenant: str = "acme") -> tuple[str, KeyRecord]:
    new = generate_key()
    record = KeyRecord(
        key_id=new.key_id,
        tenant=tenant,
        name=None,
        salt=new.salt,
        digest=new.digest,
        scopes=(),
        created_at=utc_now(),
    )
    await store.insert_key(record)
    return new.token, record


async def outcome(keys: StoreKeyAuthenticator, token: str) -> str:
    """``ok`` or the 401 code."""
    try:
        principal: Principal = await keys.verify(token)
    except ApiError as error:
        return str(error.code)
    return "ok" if principal.key_id else "no key id"


async def eventually(
    condition: Callable[[], Awaitable[bool]], timeout: float = 5.0, what: str = ""
) -> None:
    """Poll ``condition`` until it holds; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not await condition():
        if time.monotonic() >= deadline:
            raise AssertionError(f"not within {timeout}s: {what}")
        await asyncio.sleep(INTERVAL / 4)


@pytest.fixture
async def replicas(postgres_url: str) -> AsyncIterator[tuple[Replica, Replica, Store]]:
    first = await start_replica(postgres_url)
    second = await start_replica(postgres_url)
    admin = await open_store(postgres_url)
    yield first, second, admin
    await admin.close()
    await first.close()
    await second.close()


async def test_a_revocation_reaches_every_replica_within_a_few_intervals(
    replicas: tuple[Replica, Replica, Store],
) -> None:
    first, second, admin = replicas
    token, record = await create_key(admin)
    assert await outcome(first.keys, token) == "ok"
    assert await outcome(second.keys, token) == "ok"

    revoked_at = time.monotonic()
    assert await admin.revoke_key(record.key_id, utc_now())

    async def both_refuse() -> bool:
        results = {await outcome(r.keys, token) for r in (first, second)}
        return results == {"revoked_api_key"}

    await eventually(both_refuse, timeout=20 * INTERVAL, what="both replicas refuse the key")
    assert time.monotonic() - revoked_at < 20 * INTERVAL


async def test_a_tenant_policy_reaches_every_replica(
    replicas: tuple[Replica, Replica, Store],
) -> None:
    first, second, admin = replicas
    await admin.put_tenant("globex", {"limits": {"rpm": 7}})

    async def both_know() -> bool:
        policies = [r.tenants.policy("globex") for r in (first, second)]
        return all(p is not None and p.limits.rpm == 7 for p in policies)

    await eventually(both_know, timeout=20 * INTERVAL, what="both replicas see the policy")
    assert await admin.delete_tenant("globex")

    async def both_forget() -> bool:
        return not any(r.tenants.knows("globex") for r in (first, second))

    await eventually(both_forget, timeout=20 * INTERVAL, what="both replicas drop the policy")


# -- one poller, driven by hand (no background task) --------------------------------------------


class SwitchableStore:
    """A real store that can be made to fail, as a database that went away would."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.down = False

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self.store, name)
        if not callable(attribute):
            return attribute

        async def call(*args: Any, **kwargs: Any) -> Any:
            if self.down:
                raise StoreError("connection refused")
            return await attribute(*args, **kwargs)

        return call


@pytest.fixture
async def sqlite_store(tmp_path: Path) -> AsyncIterator[Store]:
    store = await open_store(f"sqlite:///{tmp_path / 'sync.db'}")
    yield store
    await store.close()


def refresh_errors(metrics: GatewayMetrics) -> float:
    value = metrics.registry.get_sample_value("fulcrum_store_refresh_errors_total")
    return value or 0.0


async def test_a_poll_reloads_only_when_the_revision_moved(sqlite_store: Store) -> None:
    keys = StoreKeyAuthenticator(sqlite_store)
    sync = StoreSync(sqlite_store, [keys], interval=INTERVAL)
    await sync.refresh()
    assert keys.reloads == 1
    assert not await sync.poll()
    assert keys.reloads == 1
    await create_key(sqlite_store)
    assert await sync.poll()
    assert keys.reloads == 2
    assert len(keys) == 1
    assert sync.revision == await sqlite_store.revision()


async def test_an_outage_keeps_the_snapshot_counts_each_poll_and_logs_once(
    sqlite_store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    flaky = SwitchableStore(sqlite_store)
    keys = StoreKeyAuthenticator(flaky)
    tenants = TenantDirectory({}, flaky)
    metrics = GatewayMetrics()
    sync = StoreSync(
        flaky,
        [keys, tenants],
        interval=INTERVAL,
        on_error=metrics.store_refresh_errors.inc,
    )
    token, record = await create_key(sqlite_store)
    await sqlite_store.put_tenant("acme", {"limits": {"rpm": 3}})
    await sync.refresh()

    flaky.down = True
    with caplog.at_level(logging.WARNING, logger="fulcrum.store.sync"):
        for _ in range(3):
            assert not await sync.poll()
        assert sync.failing
        assert refresh_errors(metrics) == 3
        assert await outcome(keys, token) == "ok"  # the last snapshot still serves
        assert tenants.knows("acme")
        outage_logs = [r for r in caplog.records if "poll failed" in r.getMessage()]
        assert len(outage_logs) == 1
        assert outage_logs[0].levelno == logging.ERROR

        # Changes made while this replica could not see them are loaded once it can.
        await sqlite_store.revoke_key(record.key_id, utc_now() - timedelta(seconds=1))
        flaky.down = False
        assert await sync.poll()
    assert not sync.failing
    assert await outcome(keys, token) == "revoked_api_key"
    assert len([r for r in caplog.records if "reachable again" in r.getMessage()]) == 1
    assert refresh_errors(metrics) == 3


async def test_a_failed_reload_is_retried_at_the_next_poll(sqlite_store: Store) -> None:
    class FailsOnce:
        def __init__(self) -> None:
            self.calls = 0

        async def reload(self) -> None:
            self.calls += 1
            if self.calls == 2:
                raise StoreError("lost connection mid-reload")

    snapshot = FailsOnce()
    sync = StoreSync(sqlite_store, [snapshot], interval=INTERVAL)
    await sync.refresh()
    await sqlite_store.put_tenant("acme", {})
    assert not await sync.poll()  # the reload failed: the revision is not taken as seen
    assert await sync.poll()
    assert snapshot.calls == 3


async def test_refresh_raises_when_the_store_is_down(sqlite_store: Store) -> None:
    flaky = SwitchableStore(sqlite_store)
    flaky.down = True
    sync = StoreSync(flaky, [], interval=INTERVAL)
    with pytest.raises(StoreError):
        await sync.refresh()


async def test_the_background_task_polls_and_stops(sqlite_store: Store) -> None:
    keys = StoreKeyAuthenticator(sqlite_store)
    sync = StoreSync(sqlite_store, [keys], interval=INTERVAL)
    await sync.refresh()
    sync.start()
    sync.start()  # idempotent
    try:
        await create_key(sqlite_store)

        async def loaded() -> bool:
            return len(keys) == 1

        await eventually(loaded, timeout=20 * INTERVAL, what="the poller loads the new key")
    finally:
        await sync.stop()
    await sync.stop()  # stopping twice is harmless
