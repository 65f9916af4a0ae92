"""The decision record's three migration triggers, evaluated on measured usage.

(a) batch volume above a threshold in every block of the window (sustained, not on average);
(b) days of staging operation since the later of its start and its last critical incident;
(c) the projected managed cost above the self-hosted total cost of ownership by a margin,
    with the volume projected from the growth measured over the window.

Pure functions over rows and log entries; reading files is the caller's business.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from fulcrum.econ.cost import CostModel
from fulcrum.econ.scenario import Scenario
from fulcrum.econ.usage import HourlyVolume
from fulcrum.errors import UserError

SEVERITIES = ("start", "critical", "major", "minor", "note")


@dataclass(frozen=True)
class Incident:
    """One line of the staging log."""

    at: datetime
    kind: str
    text: str


def parse_staging_log(text: str, name: str) -> list[Incident]:
    """Lines ``<ISO date or time> <start|critical|major|minor|note> [text]``; ``#`` comments."""
    entries = []
    for number, line in enumerate(text.splitlines(), start=1):
        body = line.split("#", 1)[0].strip()
        if not body:
            continue
        parts = body.split(None, 2)
        if len(parts) < 2:
            raise UserError(f"{name}:{number}: expected '<date> <kind> [text]'")
        try:
            at = datetime.fromisoformat(parts[0].replace("Z", "+00:00"))
        except ValueError:
            raise UserError(f"{name}:{number}: not an ISO 8601 date: {parts[0]!r}") from None
        if at.tzinfo is None:
            at = at.replace(tzinfo=UTC)
        kind = parts[1].lower()
        if kind not in SEVERITIES:
            raise UserError(f"{name}:{number}: kind must be one of {', '.join(SEVERITIES)}")
        entries.append(
            Incident(at=at.astimezone(UTC), kind=kind, text=parts[2] if len(parts) > 2 else "")
        )
    return entries


def read_staging_log(path: str | Path) -> list[Incident]:
    """Read a staging incident log file."""
    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8")
    except OSError as exc:
        raise UserError(f"cannot read staging log {file}: {exc.strerror or exc}") from None
    return parse_staging_log(text, str(file))


def batch_trigger(
    rows: list[HourlyVolume],
    start: datetime,
    end: datetime,
    threshold: float,
    block_days: int,
    hours_per_month: float,
) -> dict[str, Any]:
    """(a): monthly-equivalent batch volume ``tokens · hours_per_month / block_hours`` per block.

    Blocks of ``block_days`` are laid back from the end of the window; a window shorter than
    one block is one block. Hours without measured batch traffic count as zero.
    """
    block = timedelta(days=block_days)
    edges = []
    cursor = end
    while cursor - block >= start - timedelta(seconds=1):
        edges.append((cursor - block, cursor))
        cursor -= block
    if not edges:
        edges.append((start, end))
    edges.reverse()
    blocks: list[dict[str, Any]] = []
    rates: list[float] = []
    for lo, hi in edges:
        tokens = sum(r.tokens for r in rows if r.workload == "batch" and lo <= r.hour < hi)
        hours = (hi - lo) / timedelta(hours=1)
        rates.append(tokens * hours_per_month / hours)
        blocks.append(
            {
                "from": lo.isoformat(),
                "to": hi.isoformat(),
                "batch_tokens": tokens,
                "monthly_rate": rates[-1],
            }
        )
    lowest = min(rates)
    return {
        "name": "batch_volume",
        "passed": lowest > threshold,
        "threshold_tokens_per_month": threshold,
        "lowest_monthly_rate": lowest,
        "blocks": blocks,
        "explanation": (
            f"lowest {block_days}-day block runs at {lowest:,.0f} batch tokens/month "
            f"({'above' if lowest > threshold else 'not above'} {threshold:,.0f})"
        ),
    }


def staging_trigger(incidents: list[Incident] | None, now: datetime, days: int) -> dict[str, Any]:
    """(b): days since the later of the staging start and its last critical incident."""
    base = {"name": "staging_operation", "required_days": days}
    if incidents is None:
        return {
            **base,
            "passed": False,
            "clean_days": None,
            "explanation": "no staging log given (--staging-log FILE)",
        }
    starts = [i.at for i in incidents if i.kind == "start" and i.at <= now]
    if not starts:
        return {
            **base,
            "passed": False,
            "clean_days": None,
            "explanation": "the staging log has no 'start' entry",
        }
    started = max(starts)
    critical = [i.at for i in incidents if i.kind == "critical" and started <= i.at <= now]
    since = max([started, *critical])
    clean = (now - since) / timedelta(days=1)
    what = f"last critical incident {since.date()}" if critical else f"start {since.date()}"
    return {
        **base,
        "passed": clean >= days,
        "clean_days": clean,
        "staging_started": started.isoformat(),
        "critical_incidents": len(critical),
        "explanation": f"{clean:.1f} days since {what} (need ≥ {days})",
    }


def growth(rows: list[HourlyVolume], start: datetime, end: datetime) -> tuple[float, float]:
    """Least-squares fit of ``ln(daily tokens) = a + b·day``: (tokens/day at the end, b).

    Days without traffic are left out of the fit (a log has no zero); with fewer than two
    days of traffic growth is 0 and the rate is the window's mean.
    """
    days = max(1, math.ceil((end - start) / timedelta(days=1)))
    totals = [0.0] * days
    for row in rows:
        index = int((row.hour - start) / timedelta(days=1))
        if 0 <= index < days:
            totals[index] += row.tokens
    points = [(i + 0.5, math.log(t)) for i, t in enumerate(totals) if t > 0]
    if len(points) < 2:
        return sum(totals) / days, 0.0
    mean_x = sum(x for x, _ in points) / len(points)
    mean_y = sum(y for _, y in points) / len(points)
    sxx = sum((x - mean_x) ** 2 for x, _ in points)
    beta = sum((x - mean_x) * (y - mean_y) for x, y in points) / sxx if sxx else 0.0
    alpha = mean_y - beta * mean_x
    return math.exp(alpha + beta * days), beta


def cost_trigger(
    rows: list[HourlyVolume],
    start: datetime,
    end: datetime,
    scenario: Scenario,
) -> dict[str, Any]:
    """(c): managed cost of the projected volume vs. self-hosted TCO x (1 + margin)."""
    settings = scenario.triggers
    chosen = [r for r in rows if settings.workload == "all" or r.workload == "batch"]
    per_day, beta = growth(chosen, start, end)
    days_per_month = scenario.hours_per_month / 24
    current = per_day * days_per_month
    monthly_growth = math.exp(beta * days_per_month) - 1
    projected = current * math.exp(beta * days_per_month * settings.horizon_months)
    model = CostModel.of(scenario)
    api = model.api(projected)
    tco = model.self_total(projected)
    bar = tco * (1 + settings.cost_margin)
    return {
        "name": "projected_cost",
        "passed": api > bar,
        "workload": settings.workload,
        "current_tokens_per_month": current,
        "monthly_growth": monthly_growth,
        "horizon_months": settings.horizon_months,
        "projected_tokens_per_month": projected,
        "api_monthly": api,
        "self_monthly": tco,
        "self_instances": model.instances(projected),
        "margin": settings.cost_margin,
        "explanation": (
            f"projected {projected:,.0f} tokens/month in {settings.horizon_months:g} months "
            f"({monthly_growth:+.1%}/month): API ${api:,.2f} vs self-hosted TCO ${tco:,.2f} "
            f"x {1 + settings.cost_margin:g} = ${bar:,.2f}"
        ),
    }


def evaluate(
    rows: list[HourlyVolume],
    start: datetime,
    end: datetime,
    scenario: Scenario,
    incidents: list[Incident] | None,
) -> dict[str, Any]:
    """All three triggers; migrate only when every one passes."""
    settings = scenario.triggers
    results = [
        batch_trigger(
            rows,
            start,
            end,
            settings.batch_tokens_per_month,
            settings.batch_block_days,
            scenario.hours_per_month,
        ),
        staging_trigger(incidents, end, settings.staging_days),
        cost_trigger(rows, start, end, scenario),
    ]
    return {
        "window": {"from": start.isoformat(), "to": end.isoformat()},
        "triggers": results,
        "migrate": all(t["passed"] for t in results),
    }
