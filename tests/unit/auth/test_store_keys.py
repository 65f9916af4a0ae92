"""Keys from the store: verified from a snapshot, distinct 401s, one reload for an unknown id."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from fulcrum.api.errors import ApiError
from fulcrum.auth.api_keys import generate_key
from fulcrum.auth.principal import UNRESTRICTED
from fulcrum.auth.store_keys import StoreKeyAuthenticator
from fulcrum.store import KeyRecord, Store, open_store

NOW = datetime(2030, 1, 1, 12, 0, tzinfo=UTC)


class FakeMonotonic:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    store = await open_store(f"sqlite:///{tmp_path / 'keys.db'}")
    yield store
    await store.close()


async def add_key(
    store: Store,
    *,
    tenant: str = "acme",
    name: str | None = "billing",
    scopes: tuple[str, ...] = ("chat",),
    expires_at: datetime | None = None,
    revoked_at: datetime | None = None,
) -> tuple[str, KeyRecord]:
    new = generate_key()
    record = KeyRecord(
        key_id=new.key_id,
        tenant=tenant,
        name=name,
        salt=new.salt,
        digest=new.digest,
        scopes=scopes,
        created_at=NOW - timedelta(days=1),
        expires_at=expires_at,
        revoked_at=revoked_at,
    )
    await store.insert_key(record)
    return new.token, record


def authenticator(
    store: Store, monotonic: FakeMonotonic | None = None, now: datetime = NOW
) -> StoreKeyAuthenticator:
    return StoreKeyAuthenticator(store, clock=lambda: now, monotonic=monotonic or FakeMonotonic())


async def rejection(auth: StoreKeyAuthenticator, credential: str) -> ApiError:
    with pytest.raises(ApiError) as info:
        await auth.verify(credential)
    assert info.value.status == 401
    return info.value


async def test_a_valid_key_names_its_tenant_subject_scopes_and_id(store: Store) -> None:
    token, record = await add_key(store, scopes=("chat", "embeddings"))
    auth = authenticator(store)
    await auth.reload()
    principal = await auth.verify(token)
    assert principal.tenant == "acme"
    assert principal.subject == "billing"
    assert principal.scopes == frozenset({"chat", "embeddings"})
    assert principal.key_id == record.key_id
    assert principal.policy is UNRESTRICTED  # the chain attaches the tenant's policy


async def test_a_key_without_a_name_is_called_by_its_id(store: Store) -> None:
    token, record = await add_key(store, name=None)
    auth = authenticator(store)
    await auth.reload()
    assert (await auth.verify(token)).subject == f"key:{record.key_id}"


async def test_owns_exactly_the_fk_shape(store: Store) -> None:
    auth = authenticator(store)
    assert auth.owns("fk_anything")
    assert not auth.owns("sk-static-key")
    assert not auth.owns("eyJ.eyJ.sig")


async def test_a_wrong_secret_is_rejected_like_an_unknown_key(store: Store) -> None:
    _, record = await add_key(store)
    auth = authenticator(store)
    await auth.reload()
    wrong = f"fk_{record.key_id}_{generate_key().secret}"
    unknown = f"fk_{generate_key().key_id}_{generate_key().secret}"
    wrong_error = await rejection(auth, wrong)
    unknown_error = await rejection(auth, unknown)
    assert wrong_error.code == unknown_error.code == "invalid_api_key"
    assert wrong_error.message == unknown_error.message
    for error, credential in ((wrong_error, wrong), (unknown_error, unknown)):
        assert credential not in error.message
        assert credential.split("_", 2)[2] not in error.message


async def test_a_revoked_key_gets_its_own_401(store: Store) -> None:
    token, _ = await add_key(store, revoked_at=NOW - timedelta(minutes=1))
    auth = authenticator(store)
    await auth.reload()
    error = await rejection(auth, token)
    assert error.code == "revoked_api_key"
    assert token not in error.message


async def test_an_expired_key_gets_its_own_401_and_works_until_then(store: Store) -> None:
    token, _ = await add_key(store, expires_at=NOW + timedelta(hours=1))
    before = authenticator(store, now=NOW + timedelta(minutes=59))
    await before.reload()
    assert (await before.verify(token)).tenant == "acme"
    after = authenticator(store, now=NOW + timedelta(hours=1))
    await after.reload()
    assert (await rejection(after, token)).code == "expired_api_key"


async def test_a_revoked_or_expired_key_with_a_wrong_secret_reveals_nothing(store: Store) -> None:
    _, revoked = await add_key(store, revoked_at=NOW - timedelta(minutes=1))
    _, expired = await add_key(store, expires_at=NOW - timedelta(minutes=1))
    auth = authenticator(store)
    await auth.reload()
    for record in (revoked, expired):
        guess = f"fk_{record.key_id}_{generate_key().secret}"
        assert (await rejection(auth, guess)).code == "invalid_api_key"


async def test_a_revocation_takes_effect_at_the_next_reload(store: Store) -> None:
    token, record = await add_key(store)
    auth = authenticator(store)
    await auth.reload()
    assert (await auth.verify(token)).key_id == record.key_id
    assert await store.revoke_key(record.key_id, NOW - timedelta(seconds=1))
    assert (await auth.verify(token)).key_id == record.key_id  # the snapshot, no I/O
    await auth.reload()
    assert (await rejection(auth, token)).code == "revoked_api_key"


async def test_a_key_created_after_start_works_without_waiting_for_a_poll(store: Store) -> None:
    auth = authenticator(store)
    await auth.reload()
    token, _ = await add_key(store)
    assert (await auth.verify(token)).tenant == "acme"
    assert auth.reloads == 2


async def test_an_unknown_id_reloads_once_then_is_refused(store: Store) -> None:
    clock = FakeMonotonic()
    auth = authenticator(store, clock)
    await auth.reload()
    unknown = f"fk_{generate_key().key_id}_{generate_key().secret}"
    assert (await rejection(auth, unknown)).code == "invalid_api_key"
    assert auth.reloads == 2
    # Within the same second, a second unknown id is refused without touching the store…
    clock.now += 0.5
    token, _ = await add_key(store)
    assert (await rejection(auth, token)).code == "invalid_api_key"
    assert auth.reloads == 2
    # …and once the second has passed, an unknown id may reload again (and finds the key).
    clock.now += 0.5
    assert (await auth.verify(token)).tenant == "acme"
    assert auth.reloads == 3


async def test_concurrent_misses_share_one_reload(store: Store) -> None:
    auth = authenticator(store)
    await auth.reload()
    token, _ = await add_key(store)
    principals = await asyncio.gather(*(auth.verify(token) for _ in range(10)))
    assert {principal.tenant for principal in principals} == {"acme"}
    assert auth.reloads == 2


async def test_a_malformed_key_is_refused_without_a_reload(store: Store) -> None:
    auth = authenticator(store)
    await auth.reload()
    assert (await rejection(auth, "fk_not-a-real-key")).code == "invalid_api_key"
    assert auth.reloads == 1


async def test_an_unreachable_store_on_a_miss_is_a_401_not_a_crash(
    store: Store, tmp_path: Path
) -> None:
    token, _ = await add_key(store)
    auth = authenticator(store)
    await store.close()
    assert (await rejection(auth, token)).code == "invalid_api_key"
    assert auth.reloads == 0


async def test_the_snapshot_holds_no_secret(store: Store) -> None:
    token, _ = await add_key(store)
    auth = authenticator(store)
    await auth.reload()
    assert token.split("_", 2)[2] not in repr(vars(auth))
