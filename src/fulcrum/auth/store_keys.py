"""Authentication by the API keys kept in the store (``fulcrum keys create``).

Requests are checked against an in-memory snapshot (key id → record), so the hot path does
no I/O. ``StoreSync`` reloads the snapshot when the store's revision moves; in addition, an
unknown key id triggers one immediate reload — at most once per ``miss_reload_interval``, so
a flood of made-up ids cannot hammer the database — so that a key created a moment ago works
without waiting for the next poll.

The secret is checked before the key's state is revealed: only the holder of the key learns
that it was revoked or expired; anyone else gets the same ``invalid_api_key`` as for an
unknown key.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime

from fulcrum.api.errors import ApiError
from fulcrum.auth.api_keys import looks_like_key, parse_key, secret_matches
from fulcrum.auth.base import invalid_key, unauthorized
from fulcrum.auth.principal import Principal
from fulcrum.store.base import KeyRecord, Store, utc_now

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class _Entry:
    record: KeyRecord
    principal: Principal


def expired_key() -> ApiError:
    return unauthorized("This API key has expired.", "expired_api_key")


def revoked_key() -> ApiError:
    return unauthorized("This API key has been revoked.", "revoked_api_key")


def principal_of(record: KeyRecord) -> Principal:
    """The caller a key names (the tenant's policy is attached later by the chain)."""
    return Principal(
        tenant=record.tenant,
        subject=record.name or f"key:{record.key_id}",
        scopes=frozenset(record.scopes),
        key_id=record.key_id,
    )


class StoreKeyAuthenticator:
    """A ``TokenVerifier`` for ``fk_…`` keys, working from a snapshot of the store's keys."""

    def __init__(
        self,
        store: Store,
        *,
        miss_reload_interval: float = 1.0,
        clock: Callable[[], datetime] = utc_now,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._store = store
        self._entries: dict[str, _Entry] = {}
        self._reload_lock = asyncio.Lock()
        self._miss_reload_interval = miss_reload_interval
        self._last_miss_reload = -float("inf")
        self._miss_reload: asyncio.Future[None] | None = None
        self._clock = clock
        self._monotonic = monotonic
        self.reloads = 0  # loads from the store so far (observability and tests)

    def __len__(self) -> int:
        return len(self._entries)

    def owns(self, credential: str) -> bool:
        return looks_like_key(credential)

    async def verify(self, credential: str) -> Principal:
        presented = parse_key(credential)
        if presented is None:
            raise invalid_key()
        entry = self._entries.get(presented.key_id)
        if entry is None:
            await self._reload_after_miss()
            entry = self._entries.get(presented.key_id)
            if entry is None:
                raise invalid_key()
        record = entry.record
        if not secret_matches(presented.secret, record.salt, record.digest):
            raise invalid_key()
        status = record.status(self._clock())
        if status == "revoked":
            raise revoked_key()
        if status == "expired":
            raise expired_key()
        return entry.principal

    async def reload(self) -> None:
        """Replace the snapshot with the store's keys (revoked ones too: they get their 401).

        Loads are serialised, so a slow load that started earlier can never overwrite the
        result of one that started later.
        """
        async with self._reload_lock:
            records = await self._store.list_keys(include_revoked=True)
            self.replace(records)

    def replace(self, records: Iterable[KeyRecord]) -> None:
        """Swap in a new snapshot in one assignment (readers see the old or the new one)."""
        self._entries = {record.key_id: _Entry(record, principal_of(record)) for record in records}
        self.reloads += 1

    async def _reload_after_miss(self) -> None:
        """Reload once for an unknown key id; concurrent misses wait for that same reload."""
        if self._miss_reload is None or self._miss_reload.done():
            now = self._monotonic()
            if now - self._last_miss_reload < self._miss_reload_interval:
                return
            self._last_miss_reload = now
            self._miss_reload = asyncio.ensure_future(self.reload())
            self._miss_reload.add_done_callback(_consume_error)
        try:
            await asyncio.shield(self._miss_reload)
        except Exception as exc:  # the store is down: the snapshot stays, the key is unknown
            log.debug("reloading API keys after an unknown key id failed: %s", exc)


def _consume_error(future: asyncio.Future[None]) -> None:
    if not future.cancelled():
        future.exception()
