"""``fulcrum usage``: what the gateway served, from the usage ledger, grouped as asked.

Reads only: a SQLite path that does not exist is an error rather than a new empty database.
An hour is shown when it overlaps the window (the ledger counts whole hours), so
``--since 24h`` covers 24 or 25 hourly rows.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import io
import json
from collections.abc import Sequence
from datetime import datetime

from fulcrum.admin.common import add_store_arguments, render_table, store_url
from fulcrum.admin.durations import format_time, parse_duration
from fulcrum.errors import UserError
from fulcrum.store.base import utc_now
from fulcrum.telemetry.ledger.query import GROUPS, UsageReport, UsageRow, check_by, usage_report
from fulcrum.telemetry.ledger.source import open_ledger

FORMATS = ("table", "json", "csv")
TIME_HELP = "a duration back from now (24h, 7d), a date (2026-11-01) or an ISO-8601 time"
FIGURES = (
    "requests",
    "input_tokens",
    "output_tokens",
    "cached_tokens",
    "cost_usd",
    "errors",
    "cache_hits",
    "saved_usd",
    "p50_seconds",
    "p95_seconds",
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``fulcrum usage``."""
    parser.add_argument("--since", default="24h", help=f"start: {TIME_HELP} (default 24h)")
    parser.add_argument("--until", help=f"end: {TIME_HELP} (default now)")
    parser.add_argument(
        "--by",
        default="tenant",
        help=f"group by one or more of {','.join(GROUPS)}, comma-separated (default tenant)",
    )
    parser.add_argument("--format", default="table", help="table, json or csv (default table)")
    add_store_arguments(parser)


def run(args: argparse.Namespace) -> int:
    """Check every option first (one-line errors), then read the ledger and print."""
    now = utc_now()
    since = parse_time(args.since, now, "--since")
    until = parse_time(args.until, now, "--until") if args.until else now
    if until <= since:
        raise UserError(
            f"--until ({format_time(until)}) must be after --since ({format_time(since)})"
        )
    by = parse_by(args.by)
    if args.format not in FORMATS:
        raise UserError(f"--format: must be one of {', '.join(FORMATS)}, not {args.format!r}")
    url = store_url(args)
    report = asyncio.run(_read(url, since, until, by))
    print(render(report, by, since, until, args.format), end="")
    return 0


async def _read(url: str, since: datetime, until: datetime, by: list[str]) -> UsageReport:
    store = await open_ledger(url)
    try:
        return await usage_report(store, since, until, by)
    finally:
        await store.close()


def parse_time(text: str, now: datetime, option: str) -> datetime:
    """A duration back from ``now``, a date (midnight UTC) or an ISO-8601 time, in UTC."""
    value = text.strip()
    if value[:1].isdigit() and value[-1:] in "smhdw" and value[:-1].isdigit():
        return now - parse_duration(value, option)
    try:
        when = datetime.fromisoformat(value)
    except ValueError:
        raise UserError(f"{option}: invalid time {text!r} (use {TIME_HELP})") from None
    return when.replace(tzinfo=now.tzinfo) if when.tzinfo is None else when.astimezone(now.tzinfo)


def parse_by(text: str) -> list[str]:
    """``tenant,model`` → the groupings, checked."""
    names = [name.strip() for name in text.split(",")]
    if any(not name for name in names):
        raise UserError(f"--by: expected names such as tenant,model, not {text!r}")
    return check_by(names)


def render(
    report: UsageReport, by: Sequence[str], since: datetime, until: datetime, output: str
) -> str:
    """The rows as a table (with a total when there are several), JSON or CSV."""
    rows = report.rows
    if output == "json":
        document = {
            "since": format_time(since),
            "until": format_time(until),
            "by": list(by),
            "rows": [row.as_json() for row in rows],
            "total": report.total.as_json(),
        }
        return json.dumps(document, indent=2) + "\n"
    if output == "csv":
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow([*by, *FIGURES])
        for row in rows:
            record = row.as_json()
            writer.writerow(["" if record[name] is None else record[name] for name in record])
        return buffer.getvalue()
    if not rows:
        return f"no usage recorded from {format_time(since)} to {format_time(until)}\n"
    headers = [*by, "requests", "input", "output", "cached", "cost", "errors", "cache hits",
               "saved", "p50", "p95"]  # fmt: skip
    cells = [[*(value for _, value in row.group), *_figures(row)] for row in rows]
    if len(rows) > 1:
        label = ["total", *[""] * (len(by) - 1)]
        cells.append([*label, *_figures(report.total)])
    return render_table(headers, cells) + "\n"


def _figures(row: UsageRow) -> list[str]:
    return [
        f"{row.requests:,}",
        f"{row.input_tokens:,}",
        f"{row.output_tokens:,}",
        f"{row.cached_tokens:,}",
        _usd(row.cost_usd),
        f"{row.errors:,}",
        f"{row.cache_hits:,}",
        _usd(row.saved_usd),
        _seconds(row.p50_seconds),
        _seconds(row.p95_seconds),
    ]


def _usd(value: float) -> str:
    return f"${value:,.4f}" if value >= 1 else f"${value:.6f}"


def _seconds(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value * 1000:.0f}ms" if value < 1 else f"{value:.2f}s"
