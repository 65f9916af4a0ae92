"""The gateway's database: API keys and tenant policies (later: the usage ledger).

``open_store(url)`` picks the backend by the URL's scheme, connects, and migrates;
``create_store(url)`` only builds it (no I/O, connects on first use) for code that is wired
synchronously. Only the chosen backend is imported, so the SQLite default never loads the
PostgreSQL driver.
"""

from __future__ import annotations

from fulcrum.errors import ConfigError
from fulcrum.store.base import KeyRecord, KeyStatus, Store, StoreError, utc_now

SQLITE_PREFIX = "sqlite:///"
POSTGRES_SCHEMES = ("postgres://", "postgresql://")
URL_HELP = "sqlite:///PATH or postgresql://[user[:password]@]host[:port]/database"


def create_store(url: str) -> Store:
    """The store for ``url``, not yet connected; ``ConfigError`` for an unusable URL."""
    if url.startswith(SQLITE_PREFIX):
        from fulcrum.store.sqlite import SqliteStore

        path = url[len(SQLITE_PREFIX) :]
        if not path:
            raise ConfigError(f"store URL sqlite:/// needs a path: {URL_HELP}")
        return SqliteStore(path)
    if url.startswith(POSTGRES_SCHEMES):
        from fulcrum.store.postgres import PostgresStore, url_parts

        if url_parts(url) is None:
            raise ConfigError(f"invalid PostgreSQL store URL: expected {URL_HELP}")
        return PostgresStore(url)
    scheme = url.split(":", 1)[0] if ":" in url else url
    raise ConfigError(f"unsupported store URL scheme {scheme!r}: use {URL_HELP}")


async def open_store(url: str, *, migrate: bool = True) -> Store:
    """Connect to the store at ``url`` and (by default) bring its schema up to date.

    An unusable URL or an unreachable database is a ``ConfigError`` with a one-line message
    that never contains a password.
    """
    store = create_store(url)
    try:
        await store.ping()
        if migrate:
            await store.migrate()
    except StoreError as exc:
        await store.close()
        raise ConfigError(f"store: {exc}") from None
    return store


__all__ = [
    "KeyRecord",
    "KeyStatus",
    "Store",
    "StoreError",
    "create_store",
    "open_store",
    "utc_now",
]
