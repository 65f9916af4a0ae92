"""Usage files, the ledger seam, and the three migration triggers."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from fulcrum.econ.scenario import parse_scenario, resolve_scenario
from fulcrum.econ.triggers import (
    batch_trigger,
    cost_trigger,
    growth,
    parse_staging_log,
    staging_trigger,
)
from fulcrum.econ.usage import (
    HourlyVolume,
    MemoryUsageSource,
    ledger_source,
    parse_since,
    parse_usage,
)
from fulcrum.errors import UserError

T0 = datetime(2026, 3, 1, tzinfo=UTC)


def test_csv_and_json_lines_give_the_same_rows() -> None:
    csv_text = "hour,workload,backend,tokens\n2026-03-01T09:30:00Z,batch,bedrock,100\n"
    json_text = (
        '{"hour": "2026-03-01T09:00:00", "workload": "batch", "backend": "bedrock", '
        '"tokens": 100}\n'
    )
    expected = [HourlyVolume(T0.replace(hour=9), "batch", "bedrock", 100)]
    assert parse_usage(csv_text, "u.csv") == expected
    assert parse_usage(json_text, "u.jsonl") == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("hour,workload,tokens\n", "CSV header"),
        ("hour,workload,backend,tokens\nnope,batch,b,1\n", "u:2: hour: not an ISO"),
        ("hour,workload,backend,tokens\n2026-03-01T00:00Z,chat,b,1\n", "u:2: workload"),
        ("hour,workload,backend,tokens\n2026-03-01T00:00Z,batch,b,-1\n", "u:2: tokens"),
        ('{"hour": "2026-03-01", "workload": "batch"}\n', "u:1: missing backend, tokens"),
    ],
)
def test_bad_usage_is_one_line(text: str, message: str) -> None:
    with pytest.raises(UserError, match=message):
        parse_usage(text, "u")


def test_ledger_source_reads_nothing_until_asked(tmp_path: Path) -> None:
    missing = f"sqlite:///{tmp_path / 'missing.db'}"
    source = ledger_source(missing)  # no I/O yet
    with pytest.raises(UserError, match="no such file"):
        source.hourly_volume(T0, T0 + timedelta(days=1))
    assert not (tmp_path / "missing.db").exists()


def test_memory_source_filters_the_window() -> None:
    rows = [HourlyVolume(T0 + timedelta(hours=h), "batch", "b", 1) for h in range(10)]
    source = MemoryUsageSource(rows)
    assert len(source.hourly_volume(T0 + timedelta(hours=2), T0 + timedelta(hours=5))) == 3


def test_since() -> None:
    assert parse_since("30d") == timedelta(days=30)
    assert parse_since("12h") == timedelta(hours=12)
    with pytest.raises(UserError, match="--since"):
        parse_since("soon")


def daily(tokens_by_day: list[float], workload: str = "batch") -> list[HourlyVolume]:
    return [
        HourlyVolume(T0 + timedelta(days=d, hours=12), workload, "bedrock", int(t))
        for d, t in enumerate(tokens_by_day)
    ]


def test_batch_volume_must_hold_in_every_block() -> None:
    # 14 days: first week 1e8/day, second 0.5e8/day. Blocks of 7 days = 168 h;
    # monthly rate = tokens x 730 / 168: week 1 = 7e8 x 730/168 = 3.04e9, week 2 = 1.52e9
    rows = daily([1e8] * 7 + [0.5e8] * 7)
    end = T0 + timedelta(days=14)
    result = batch_trigger(rows, T0, end, 2e9, 7, 730)
    rates = [b["monthly_rate"] for b in result["blocks"]]
    assert rates == pytest.approx([7e8 * 730 / 168, 3.5e8 * 730 / 168])
    assert result["passed"] is False  # the average (2.28e9) is above 2e9, one week is not
    assert batch_trigger(rows[:7], T0, T0 + timedelta(days=7), 2e9, 7, 730)["passed"] is True


def test_staging_days_since_the_last_critical_incident() -> None:
    log = parse_staging_log(
        "# staging\n2025-10-01 start cluster up\n2025-11-15 critical OOM\n2025-12-01 minor x\n",
        "log",
    )
    now = datetime(2026, 2, 13, tzinfo=UTC)
    result = staging_trigger(log, now, 90)
    # 2025-11-15 -> 2026-02-13 = 15 + 31 + 31 + 13 = 90 days
    assert result["clean_days"] == pytest.approx(90)
    assert result["passed"] is True
    assert staging_trigger(log, now - timedelta(days=1), 90)["passed"] is False
    assert staging_trigger(None, now, 90)["passed"] is False
    with pytest.raises(UserError, match="log:1: kind must be"):
        parse_staging_log("2025-10-01 oops\n", "log")


def test_growth_fit_recovers_an_exponential() -> None:
    # tokens/day = 1e8 x 1.02^day for 30 days: ln-slope = ln 1.02
    rows = daily([1e8 * 1.02**d for d in range(30)])
    rate, beta = growth(rows, T0, T0 + timedelta(days=30))
    assert beta == pytest.approx(math.log(1.02), rel=1e-3)
    # at the end of the window (day 30, the fit is at mid-day points i + 0.5): 1e8 x 1.02^29.5
    assert rate == pytest.approx(1e8 * 1.02**29.5, rel=1e-3)


def test_projected_cost_trigger() -> None:
    s = resolve_scenario(
        parse_scenario(
            {
                "triggers": {"horizon_months": 0, "cost_margin": 0.3},
                "fixed_monthly": {"fte": 0},
                "variable": {"egress_usd_per_gb": 0},
                "self_hosted": {"pricing": "reserved", "utilization": 0.9},
            }
        )
    ).scenario
    # flat 1e9 tokens/day -> 1e9 x 730/24 = 3.0417e10 tokens/month;
    # API 3.0417e10 x 5.5e-7 = 16,729; instances ceil(3.0417e10 / 4.7304e9) = 7,
    # TCO 7 x 3.402 x 730 = 17,384.22 -> API is not above TCO x 1.3
    rows = daily([1e9] * 30)
    result = cost_trigger(rows, T0, T0 + timedelta(days=30), s)
    assert result["projected_tokens_per_month"] == pytest.approx(1e9 * 730 / 24, rel=1e-9)
    assert result["self_instances"] == 7
    assert result["self_monthly"] == pytest.approx(7 * 3.402 * 730)
    assert result["passed"] is False
