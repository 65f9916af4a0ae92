"""Fixtures for a real postgres (see tests/support/services.py for skip/fail rules).

``postgres_url`` is a throwaway database created for one test and dropped (``WITH (FORCE)``,
so connections a test left open cannot keep it alive) when the test ends; runs in parallel
never see each other's data. The server is ``FULCRUM_TEST_POSTGRES`` (an admin URL) or
``postgresql://postgres@127.0.0.1:5432/postgres``.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator

import psycopg
import pytest
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict
from psycopg.rows import TupleRow

from tests.support.services import service_missing

ADMIN_URL = os.environ.get("FULCRUM_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/postgres")


def _admin_connection() -> psycopg.Connection[TupleRow]:
    try:
        return psycopg.connect(ADMIN_URL, autocommit=True, connect_timeout=3)
    except psycopg.OperationalError as exc:
        reason = " ".join(str(exc).split())
        service_missing(f"PostgreSQL at 127.0.0.1:5432 is not reachable: {reason}")
        raise  # service_missing skips or fails; this is never reached


def database_url(name: str) -> str:
    """The admin URL pointed at database ``name`` (as a URL, the way operators write it)."""
    parts = conninfo_to_dict(ADMIN_URL)
    user = parts.get("user") or "postgres"
    password = f":{parts['password']}" if parts.get("password") else ""
    host = parts.get("host") or "127.0.0.1"
    port = parts.get("port") or "5432"
    return f"postgresql://{user}{password}@{host}:{port}/{name}"


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A fresh, empty database on the test server; dropped after the test."""
    name = f"fulcrum_t_{secrets.token_hex(6)}"
    with _admin_connection() as admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield database_url(name)
    finally:
        with _admin_connection() as admin:
            admin.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )


def terminate_backend(pid: int) -> None:
    """Kill one server process (a store's connection) as a failover or restart would."""
    with _admin_connection() as admin:
        admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
