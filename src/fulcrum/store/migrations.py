"""Versioned schema migrations, one ordered list for both SQL dialects.

Each migration has a version and the statements that apply it on SQLite and on PostgreSQL;
``schema_migrations(version, applied_at)`` records which ones ran. A backend applies the
pending ones inside one transaction that also holds a lock (PostgreSQL: a transaction-level
advisory lock; SQLite: ``BEGIN IMMEDIATE``), so two replicas starting at once apply each
migration exactly once and the second simply finds nothing left to do.

Later features (the usage ledger) add their tables by appending migrations here; a released
migration is never edited.

``store_revision`` is one row whose counter triggers bump on every write to ``api_keys`` or
``tenants``, in the writer's own transaction: a replica that reads a new revision is
guaranteed to see the write that produced it (a sequence would not be: ``nextval`` is visible
before the commit).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

from fulcrum.store.base import StoreError

Dialect = Literal["sqlite", "postgres"]

ADVISORY_LOCK_KEY = 0x46554C4352554D  # "FULCRUM": serialises migrate() across replicas

SCHEMA_MIGRATIONS_TABLE: dict[Dialect, str] = {
    "sqlite": (
        "CREATE TABLE IF NOT EXISTS schema_migrations ("
        " version INTEGER PRIMARY KEY, applied_at TEXT NOT NULL)"
    ),
    "postgres": (
        "CREATE TABLE IF NOT EXISTS schema_migrations ("
        " version INTEGER PRIMARY KEY, applied_at TIMESTAMPTZ NOT NULL DEFAULT now())"
    ),
}


@dataclass(frozen=True)
class Migration:
    """One schema change, written once per dialect."""

    version: int
    description: str
    sqlite: tuple[str, ...]
    postgres: tuple[str, ...]

    def statements(self, dialect: Dialect) -> tuple[str, ...]:
        return self.sqlite if dialect == "sqlite" else self.postgres


def _sqlite_revision_triggers(table: str) -> tuple[str, ...]:
    return tuple(
        f"CREATE TRIGGER {table}_{event.lower()}_revision AFTER {event} ON {table} "
        "BEGIN UPDATE store_revision SET revision = revision + 1 WHERE id = 1; END"
        for event in ("INSERT", "UPDATE", "DELETE")
    )


def _postgres_revision_trigger(table: str) -> str:
    return (
        f"CREATE TRIGGER {table}_revision AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE"
        f" ON {table} FOR EACH STATEMENT EXECUTE FUNCTION fulcrum_bump_revision()"
    )


KEYS_AND_TENANTS = Migration(
    version=1,
    description="api keys, tenant policies, store revision",
    sqlite=(
        "CREATE TABLE store_revision ("
        " id INTEGER PRIMARY KEY CHECK (id = 1), revision INTEGER NOT NULL)",
        "INSERT INTO store_revision (id, revision) VALUES (1, 0)",
        "CREATE TABLE api_keys ("
        " key_id TEXT PRIMARY KEY, tenant TEXT NOT NULL, name TEXT,"
        " salt BLOB NOT NULL, digest BLOB NOT NULL,"
        " scopes TEXT NOT NULL,"  # JSON array
        " created_at TEXT NOT NULL, expires_at TEXT, revoked_at TEXT)",  # fixed-width ISO UTC
        "CREATE INDEX api_keys_tenant ON api_keys (tenant)",
        "CREATE TABLE tenants ("
        " name TEXT PRIMARY KEY, policy TEXT NOT NULL, updated_at TEXT NOT NULL)",
        *_sqlite_revision_triggers("api_keys"),
        *_sqlite_revision_triggers("tenants"),
    ),
    postgres=(
        "CREATE TABLE store_revision ("
        " id SMALLINT PRIMARY KEY CHECK (id = 1), revision BIGINT NOT NULL)",
        "INSERT INTO store_revision (id, revision) VALUES (1, 0)",
        "CREATE TABLE api_keys ("
        " key_id TEXT PRIMARY KEY, tenant TEXT NOT NULL, name TEXT,"
        " salt BYTEA NOT NULL, digest BYTEA NOT NULL, scopes TEXT[] NOT NULL,"
        " created_at TIMESTAMPTZ NOT NULL, expires_at TIMESTAMPTZ, revoked_at TIMESTAMPTZ)",
        "CREATE INDEX api_keys_tenant ON api_keys (tenant)",
        "CREATE TABLE tenants ("
        " name TEXT PRIMARY KEY, policy JSONB NOT NULL, updated_at TIMESTAMPTZ NOT NULL)",
        "CREATE FUNCTION fulcrum_bump_revision() RETURNS trigger LANGUAGE plpgsql AS $$"
        " BEGIN UPDATE store_revision SET revision = revision + 1 WHERE id = 1;"
        " RETURN NULL; END $$",
        _postgres_revision_trigger("api_keys"),
        _postgres_revision_trigger("tenants"),
    ),
)


def _ledger_table(hour: str, integer: str, histogram: str, written_at: str) -> tuple[str, ...]:
    """The usage ledger in one dialect: the same columns, the dialect's types."""
    return (
        "CREATE TABLE usage_ledger ("
        f" hour {hour} NOT NULL, tenant TEXT NOT NULL, model TEXT NOT NULL,"
        " deployment TEXT NOT NULL, backend TEXT NOT NULL, workload TEXT NOT NULL,"
        f" requests {integer} NOT NULL, input_tokens {integer} NOT NULL,"
        f" output_tokens {integer} NOT NULL, cached_tokens {integer} NOT NULL,"
        f" cost_nanousd {integer} NOT NULL, errors {integer} NOT NULL,"
        f" cache_hits {integer} NOT NULL, saved_nanousd {integer} NOT NULL,"
        f" latency {histogram} NOT NULL,"  # sparse log-bucket counts (telemetry/ledger/latency.py)
        " PRIMARY KEY (hour, tenant, model, deployment, backend, workload))",
        # Batch ids a writer has committed: a flush retried after an unknown outcome (the
        # connection died during COMMIT) finds its id here and is not counted twice.
        f"CREATE TABLE usage_ledger_batches (batch_id TEXT PRIMARY KEY, written_at {written_at}"
        " NOT NULL)",
        "CREATE INDEX usage_ledger_batches_written_at ON usage_ledger_batches (written_at)",
    )


USAGE_LEDGER = Migration(
    version=2,
    description="usage ledger: hourly aggregates and the batches written into them",
    sqlite=_ledger_table("TEXT", "INTEGER", "TEXT", "TEXT"),  # hour: fixed-width ISO UTC
    postgres=_ledger_table("TIMESTAMPTZ", "BIGINT", "JSONB", "TIMESTAMPTZ"),
)

MIGRATIONS: tuple[Migration, ...] = (KEYS_AND_TENANTS, USAGE_LEDGER)
"""Every migration, oldest first. Append only."""


def pending(
    applied: Iterable[int], migrations: tuple[Migration, ...] = MIGRATIONS
) -> list[Migration]:
    """The migrations still to apply, in order; refuses a database newer than this code."""
    done = set(applied)
    known = {migration.version for migration in migrations}
    newer = sorted(done - known)
    if newer:
        latest = max(known, default=0)
        raise StoreError(
            f"the database has schema version {newer[-1]}, newer than this Fulcrum "
            f"supports ({latest}); upgrade Fulcrum"
        )
    return [migration for migration in migrations if migration.version not in done]
