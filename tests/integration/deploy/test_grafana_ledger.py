"""The cost dashboard's SQL panels run on a real PostgreSQL ledger and add up correctly.

Rows are written the way the gateway writes them (``LedgerWriter`` into a migrated store);
each panel's query is expanded the way Grafana's PostgreSQL datasource expands it
(``$__timeFilter``, ``${var:regex}``) and run; the figures must match what was recorded.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest

from fulcrum.store import open_store
from fulcrum.telemetry.ledger import LedgerWriter, UsageEvent
from tests.unit.deploy.test_grafana import GRAFANA, _load, sql_targets

H0 = datetime(2030, 5, 6, 10, 0, tzinfo=UTC)
H1 = H0 + timedelta(hours=1)
ALL = {"model": ".*", "deployment": ".*", "tenant": ".*"}
EVENTS = [
    UsageEvent(H0 + timedelta(minutes=5), "acme", "llama", "vllm-a", "self_hosted", "interactive",
               input_tokens=1000, output_tokens=200, cost_usd=0.5, latency_seconds=0.4),
    UsageEvent(H1 + timedelta(minutes=5), "acme", "claude", "bedrock-od", "bedrock", "batch",
               input_tokens=3000, output_tokens=500, cached_tokens=1000, cost_usd=1.25),
    UsageEvent(H0 + timedelta(minutes=30), "globex", "claude", "bedrock-od", "bedrock",
               "interactive", input_tokens=4000, output_tokens=100, cost_usd=2.0, error=True),
    UsageEvent(H0 + timedelta(minutes=31), "globex", "claude", "-", "none", "interactive",
               cache_hit=True, saved_usd=0.3),
    # Outside the dashboard's time range: never counted.
    UsageEvent(H0 - timedelta(days=2), "acme", "llama", "vllm-a", "self_hosted", "interactive",
               input_tokens=10, output_tokens=10, cost_usd=99.0),
]  # fmt: skip


@pytest.fixture
async def ledger(postgres_url: str) -> AsyncIterator[str]:
    store = await open_store(postgres_url)
    try:
        writer = LedgerWriter(store)
        for event in EVENTS:
            writer.record(event)
        assert await writer.flush()
    finally:
        await store.close()
    yield postgres_url


def expand(sql: str, selected: dict[str, str]) -> str:
    """What Grafana sends for a range of [H0, H1 + 1h) and these ``${var:regex}`` values."""
    start, end = (
        H0.strftime("%Y-%m-%dT%H:%M:%SZ"),
        (H1 + timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ"),
    )
    sql = sql.replace("$__timeFilter(hour)", f"hour BETWEEN '{start}' AND '{end}'")
    for name, value in selected.items():
        sql = sql.replace(f"${{{name}:regex}}", value)
    assert not re.search(r"\$[{\w]", sql), f"unexpanded Grafana macro in: {sql}"
    return sql


def run(url: str, sql: str, selected: dict[str, str] | None = None) -> list[dict[str, Any]]:
    with psycopg.connect(url) as connection, connection.cursor() as cursor:
        cursor.execute(expand(sql, selected or ALL).encode())
        assert cursor.description is not None
        names = [column.name for column in cursor.description]
        return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


def queries() -> dict[str, str]:
    return dict(sql_targets(_load(GRAFANA / "cost.json")))


def test_every_ledger_query_runs(ledger: str) -> None:
    for where, sql in queries().items():
        assert run(ledger, sql), f"{where} returned nothing"


def test_tenants_in_range(ledger: str) -> None:
    rows = run(ledger, queries()["panel 'Tenants in range'"])
    assert [row["tenant"] for row in rows] == ["globex", "acme"]
    assert [float(row["spend_usd"]) for row in rows] == pytest.approx([2.0, 1.75])
    globex, acme = rows
    assert (globex["requests"], globex["errors"], globex["cache_hits"]) == (2, 1, 1)
    assert float(globex["saved_usd"]) == pytest.approx(0.3)
    assert (acme["input_tokens"], acme["output_tokens"], acme["cached_tokens"]) == (
        4000,
        700,
        1000,
    )


def test_spend_by_tenant_over_time(ledger: str) -> None:
    rows = run(ledger, queries()["panel 'Spend by tenant (USD / h), top 10'"])
    series = {(row["time"], row["metric"]): float(row["spend_usd"]) for row in rows}
    assert series == {
        (H0, "acme"): pytest.approx(0.5),
        (H0, "globex"): pytest.approx(2.0),
        (H1, "acme"): pytest.approx(1.25),
    }


def test_spend_by_backend_over_time(ledger: str) -> None:
    rows = run(ledger, queries()["panel 'Spend by backend (USD / h)'"])
    series = {(row["time"], row["metric"]): float(row["spend_usd"]) for row in rows}
    assert series == {
        (H0, "bedrock"): pytest.approx(2.0),
        (H0, "none"): 0.0,
        (H0, "self_hosted"): pytest.approx(0.5),
        (H1, "bedrock"): pytest.approx(1.25),
    }


def test_variables_filter_the_ledger(ledger: str) -> None:
    sql = queries()["panel 'Spend by tenant, model and backend in range'"]
    rows = run(ledger, sql, {**ALL, "tenant": "(acme)", "model": "claude"})
    assert [(r["tenant"], r["model"], r["backend"], r["deployment"]) for r in rows] == [
        ("acme", "claude", "bedrock", "bedrock-od")
    ]
    assert rows[0]["tokens"] == 3500
    tenants = run(ledger, queries()["variable $tenant"])
    assert [row["tenant"] for row in tenants] == ["acme", "globex"]
