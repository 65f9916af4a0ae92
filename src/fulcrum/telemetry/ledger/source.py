"""The ledger as the decision engine's ``UsageSource`` (``fulcrum econ … --from-ledger``).

The engine's interface is synchronous (it runs in the CLI, not in the gateway's event loop),
so each question opens the store, asks, and closes it in a short-lived event loop. Code that
already runs in an event loop awaits ``query.hourly_volume`` instead.
"""

from __future__ import annotations

import asyncio
from datetime import datetime
from pathlib import Path

from fulcrum.econ.usage import HourlyVolume
from fulcrum.errors import UserError
from fulcrum.store import SQLITE_PREFIX, open_store
from fulcrum.store.base import Store
from fulcrum.telemetry.ledger.query import hourly_volume


async def open_ledger(url: str) -> Store:
    """The store at ``url`` for reading the ledger; a missing SQLite file is an error, not a
    new empty database (a mistyped path would otherwise report "no usage")."""
    if url.startswith(SQLITE_PREFIX):
        path = Path(url[len(SQLITE_PREFIX) :])
        if url != SQLITE_PREFIX and not path.is_file():
            raise UserError(f"store {url}: no such file (is the gateway's store elsewhere?)")
    # Migrating brings an older schema up to date, so the ledger's tables exist (empty).
    return await open_store(url)


class LedgerUsageSource:
    """Hourly token volumes read from the usage ledger at ``url``."""

    def __init__(self, url: str) -> None:
        self.url = url

    def hourly_volume(self, since: datetime, until: datetime) -> list[HourlyVolume]:
        """Rows with ``since <= hour < until``, sorted by hour."""
        return asyncio.run(self._read(since, until))

    async def _read(self, since: datetime, until: datetime) -> list[HourlyVolume]:
        store = await open_ledger(self.url)
        try:
            return await hourly_volume(store, since, until)
        finally:
            await store.close()
