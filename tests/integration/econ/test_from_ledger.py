"""``fulcrum econ … --from-ledger --store URL`` reads the hourly volumes the gateway's writer
put in the ledger, and decides exactly as it does from the same volumes in a usage file."""

from __future__ import annotations

import asyncio
import json
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from fulcrum.store import open_store
from fulcrum.telemetry.ledger import Backend, LedgerWriter, UsageEvent
from tests.support.servers import fulcrum_command

ROOT = Path(__file__).resolve().parents[3]
ADR = str(ROOT / "examples/econ/adr.yaml")
MARCH = datetime(2026, 3, 1, tzinfo=UTC)


def econ_json(*args: str) -> dict[str, Any]:
    result = subprocess.run(
        fulcrum_command("econ", *args, "--format", "json"),
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
    )
    assert result.returncode == 0, result.stderr
    data: dict[str, Any] = json.loads(result.stdout)
    return data


def requests_in(hour: datetime, batch_tokens: int) -> list[UsageEvent]:
    """One hour of traffic: batch work on Bedrock split over two requests, a cache hit
    (no backend: it must not count as volume) and an interactive request on vLLM."""
    half = batch_tokens // 2

    def at(
        minute: int, deployment: str, backend: Backend, workload: str, **counts: Any
    ) -> UsageEvent:
        when = hour + timedelta(minutes=minute)
        return UsageEvent(when, "acme", "chat", deployment, backend, workload, **counts)

    return [
        at(5, "bedrock-b", "bedrock", "batch", input_tokens=half - 1000, output_tokens=1000),
        at(50, "bedrock-b", "bedrock", "batch", input_tokens=batch_tokens - half),
        at(20, "-", "none", "batch", cache_hit=True, saved_usd=0.01, latency_seconds=0.002),
        at(30, "vllm-a", "self_hosted", "interactive", input_tokens=300, output_tokens=200),
    ]


async def fill(url: str, hours: list[datetime], batch_tokens: int) -> None:
    store = await open_store(url)
    try:
        writer = LedgerWriter(store)
        for hour in hours:
            for item in requests_in(hour, batch_tokens):
                writer.record(item)
        assert await writer.flush()
    finally:
        await store.close()


@pytest.fixture(params=["sqlite", "postgres"])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'fulcrum.db'}"
    return str(request.getfixturevalue("postgres_url"))


def test_triggers_from_the_ledger_match_the_same_usage_file(url: str, tmp_path: Path) -> None:
    hours = [MARCH + timedelta(hours=h) for h in range(30 * 24)]
    asyncio.run(fill(url, hours, batch_tokens=5_000_000))
    usage = tmp_path / "usage.csv"
    lines = ["hour,workload,backend,tokens"]
    for hour in hours:
        stamp = hour.strftime("%Y-%m-%dT%H:%M:%SZ")
        lines += [f"{stamp},batch,bedrock,5000000", f"{stamp},interactive,self_hosted,500"]
    usage.write_text("\n".join(lines) + "\n")
    now = ["--now", "2026-03-31T00:00:00Z"]

    from_ledger = econ_json("triggers", "--scenario", ADR, "--from-ledger", "--store", url, *now)
    from_file = econ_json("triggers", "--scenario", ADR, "--usage", str(usage), *now)

    assert from_ledger == from_file
    batch = from_ledger["triggers"][0]
    assert batch["passed"] is True
    assert batch["lowest_monthly_rate"] == pytest.approx(5e6 * 730)


def test_simulate_reads_the_last_days_of_the_ledger(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'fulcrum.db'}"
    current = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    # 25 hours up to the current one: the last full day is covered even if the hour turns
    # between filling and simulating.
    asyncio.run(fill(url, [current - timedelta(hours=h) for h in range(25)], 1_000_000))
    data = econ_json("simulate", "--scenario", ADR, "--days", "1", "--from-ledger", "--store", url)
    assert data["demand_source"] == "measured hourly profile"
    assert data["strategies"][0]["tokens_demand"] == pytest.approx(24 * (1_000_000 + 500))
