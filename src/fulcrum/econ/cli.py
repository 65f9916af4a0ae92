"""``fulcrum econ …``: options, reading files, and printing results as tables or JSON.

All arithmetic lives in the other modules; this one parses flags, reads files, calls them,
and renders. JSON output is a documented contract (docs/economics.md).
"""

from __future__ import annotations

import argparse
import re
import sys
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson

from fulcrum.econ import simulate as sim
from fulcrum.econ.breakeven import break_even
from fulcrum.econ.claims import check, num, parse_claims
from fulcrum.econ.cost import CostModel
from fulcrum.econ.prices import catalog_rows, default_catalog
from fulcrum.econ.scenario import (
    Resolved,
    assumptions,
    parse_scenario,
    read_yaml,
    resolve_scenario,
)
from fulcrum.econ.svg import short
from fulcrum.econ.sweep import DEFAULT_VARY, parse_vary, sweep
from fulcrum.econ.usage import UsageSource, file_source, ledger_source, parse_since
from fulcrum.errors import UserError

DEFAULT_STORE = "sqlite:///fulcrum.db"
_VOLUME = re.compile(r"^\s*([0-9]*\.?[0-9]+(?:[eE][+-]?[0-9]+)?)\s*([kKmMbBtT]?)\s*$")
_SUFFIX = {"": 1.0, "k": 1e3, "m": 1e6, "b": 1e9, "t": 1e12}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Register `econ` sub-commands on the parser of `fulcrum econ`."""
    sub = parser.add_subparsers(dest="econ_command", required=True, metavar="SUBCOMMAND")

    def command(name: str, text: str, scenario: bool = True) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=text, description=text)
        if scenario:
            p.add_argument("--scenario", "-s", required=True, help="scenario YAML file")
        p.add_argument("--format", choices=("table", "json"), default="table")
        return p

    p = command("compare", "API vs. self-hosted monthly cost at given volumes")
    p.add_argument(
        "--volumes", default="5e8,2e9,5e9,1e10", help="tokens/month, comma-separated (5e8,2B)"
    )
    command("breakeven", "exact break-even volumes (first, sustained, every winning interval)")
    p = command("sweep", "sensitivity of the break-even to each assumption")
    p.add_argument(
        "--vary",
        nargs="+",
        action="extend",
        metavar="NAME=LOW:HIGH[:POINTS]",
        help="assumption and range (xF = F times the scenario's value); default: a standard set",
    )
    p = command("simulate", "minute-by-minute simulation of the hybrid fleet")
    _usage_options(p)
    p.add_argument("--days", type=int, default=30, help="simulated days (default 30)")
    p.add_argument("--warm", default=None, help="warm-node counts to compare, e.g. 0,1,2")
    p = command("check", "recompute stated figures from the scenario's inputs")
    p.add_argument("--claims", required=True, help="claims YAML file")
    p = command("triggers", "the decision record's three migration triggers, on measured usage")
    _usage_options(p)
    p.add_argument("--since", default="30d", help="look-back window (default 30d)")
    p.add_argument("--staging-log", help="staging incident log (see docs/economics.md)")
    p.add_argument("--now", help="end of the window, ISO 8601 (default: now, or end of --usage)")
    p = command("report", "self-contained HTML report with charts")
    p.add_argument("--out", required=True, help="output directory (index.html is written)")
    _usage_options(p)
    p.add_argument("--days", type=int, default=30, help="simulated days (default 30)")
    command("prices", "the price catalogue", scenario=False)


def _usage_options(p: argparse.ArgumentParser) -> None:
    group = p.add_mutually_exclusive_group()
    group.add_argument("--usage", help="measured hourly usage, CSV or JSON lines")
    group.add_argument("--from-ledger", action="store_true", help="read the gateway's ledger")
    p.add_argument("--store", default=DEFAULT_STORE, help=f"ledger URL (default {DEFAULT_STORE})")


def run(args: argparse.Namespace) -> int:
    """Run the chosen `econ` sub-command; returns the exit code."""
    handlers: dict[str, Callable[[argparse.Namespace], tuple[dict[str, Any], str]]] = {
        "compare": _compare,
        "breakeven": _breakeven,
        "sweep": _sweep,
        "simulate": _simulate,
        "check": _check,
        "triggers": _triggers,
        "report": _report,
        "prices": _prices,
    }
    data, text = handlers[args.econ_command](args)
    if args.format == "json":
        sys.stdout.buffer.write(
            orjson.dumps(data, option=orjson.OPT_INDENT_2 | orjson.OPT_NON_STR_KEYS) + b"\n"
        )
    else:
        sys.stdout.write(text)
    sys.stdout.flush()
    return 0


# ---------------------------------------------------------------- input


def _load(path: str) -> tuple[dict[str, Any], Resolved]:
    raw = read_yaml(path, "scenario")
    resolved = resolve_scenario(parse_scenario(raw, path))
    return (raw if isinstance(raw, dict) else {}), resolved


def parse_volumes(text: str) -> list[float]:
    """``5e8,2e9,5B,500M`` → token volumes; anything else is a one-line error."""
    out = []
    for item in text.split(","):
        match = _VOLUME.match(item)
        if not match:
            raise UserError(
                f"--volumes: {item.strip()!r} is not a volume (e.g. 5e8, 2e9, 500M, 2B)"
            )
        out.append(float(match.group(1)) * _SUFFIX[match.group(2).lower()])
    return out


def _source(args: argparse.Namespace) -> tuple[UsageSource, datetime | None] | None:
    if getattr(args, "usage", None):
        source = file_source(args.usage)
        latest = source.latest()
        return source, (latest + timedelta(hours=1)) if latest else None
    if getattr(args, "from_ledger", False):
        return ledger_source(args.store), None
    return None


# ---------------------------------------------------------------- rendering


def _table(headers: Sequence[str], rows: Sequence[Sequence[str]], right: bool = True) -> str:
    widths = [
        max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(headers)
    ]

    def line(cells: Sequence[str]) -> str:
        parts = [
            c.ljust(w) if i == 0 or not right else c.rjust(w)
            for i, (c, w) in enumerate(zip(cells, widths, strict=True))
        ]
        return "  ".join(parts).rstrip()

    return "\n".join([line(headers), line(["-" * w for w in widths]), *map(line, rows)]) + "\n"


def _usd(value: float | None) -> str:
    return "—" if value is None else f"${num(value)}"


def _hourly(value: float | None) -> str:
    return "—" if value is None else f"${value:,.4f}".rstrip("0").rstrip(".")


def _assumption_lines(resolved: Resolved) -> str:
    s = resolved.scenario
    h = s.self_hosted
    model = CostModel.of(s)
    lines = [
        f"scenario: {s.name}",
        f"  API {s.api.name}: {num(s.api.price_in_per_1k)} in / {num(s.api.price_out_per_1k)} "
        f"out USD/1K, input share {s.input_share:g} → {num(model.api_per_token * 1000)} USD/1K",
        f"  self-hosted {h.name}: {h.pricing} {_hourly(model.hourly)}/h "
        f"({_hourly(h.hourly_price)}/h on-demand), {num(h.throughput_tps)} tokens/s x "
        f"{h.average_utilization:g} utilization x 3600 x {num(s.hours_per_month)} h = "
        f"{short(float(model.capacity))} tokens/instance-month, min {h.min_instances}",
        f"  fixed {_usd(model.fixed)}/month ({s.fixed_monthly.fte:g} FTE x "
        f"{_usd(s.fixed_monthly.fte_annual_loaded_usd)}/year + observability + other), "
        f"egress {_usd(model.egress_per_token * 1e9)} per 1B tokens",
    ]
    lines += [f"  warning: {w}" for w in resolved.warnings]
    return "\n".join(lines) + "\n\n"


# ---------------------------------------------------------------- commands


def _compare(args: argparse.Namespace) -> tuple[dict[str, Any], str]:
    volumes = parse_volumes(args.volumes)
    _, resolved = _load(args.scenario)
    model = CostModel.of(resolved.scenario)
    rows = [model.row(v) for v in volumes]
    data = {"assumptions": assumptions(resolved), "rows": rows}
    table = _table(
        [
            "volume",
            "API/month",
            "inst",
            "compute",
            "fixed",
            "self/month",
            "API/1K",
            "self/1K",
            "cheaper",
        ],
        [
            [
                short(r["volume_tokens"]),
                _usd(r["api_monthly"]),
                str(r["self_instances"]),
                _usd(r["self_compute_monthly"]),
                _usd(r["self_fixed_monthly"]),
                _usd(r["self_monthly"]),
                num(r["api_per_1k"]),
                num(r["self_per_1k"]),
                r["cheaper"],
            ]
            for r in rows
        ],
    )
    return data, _assumption_lines(resolved) + table


def _breakeven_data(resolved: Resolved) -> dict[str, Any]:
    model = CostModel.of(resolved.scenario)
    result = break_even(model)
    return {
        "assumptions": assumptions(resolved),
        "api_per_1k": model.api_per_token * 1000,
        "capacity_tokens_per_instance": float(model.capacity),
        "parity_utilization": model.parity_utilization(),
        "break_even": result.as_json(),
    }


def _breakeven(args: argparse.Namespace) -> tuple[dict[str, Any], str]:
    _, resolved = _load(args.scenario)
    data = _breakeven_data(resolved)
    be = data["break_even"]
    lines = [
        f"API price:             {num(data['api_per_1k'])} USD/1K tokens",
        f"capacity per instance: {num(data['capacity_tokens_per_instance'])} tokens/month",
        f"parity utilization:    {data['parity_utilization']:.4f}"
        + (
            "  (> 1: compute alone never reaches the API's price)"
            if data["parity_utilization"] > 1
            else ""
        ),
    ]
    if be["never"]:
        lines.append("break-even:            never (self-hosted costs more at every volume)")
    else:
        lines.append(f"first break-even:      {num(be['first_tokens'])} tokens/month")
        sustained = be["sustained_tokens"]
        lines.append(
            f"sustained break-even:  {num(sustained) if sustained is not None else 'none'}"
            + (" tokens/month" if sustained is not None else "")
        )
        lines.append("self-hosted ≤ API on:")
        for lo, hi in be["intervals"]:
            lines.append(f"  [{num(lo)}, {num(hi) if hi is not None else '∞'}]")
        if be["intervals_omitted"]:
            lines.append(f"  (+ {be['intervals_omitted']} more intervals before the last)")
    return data, _assumption_lines(resolved) + "\n".join(lines) + "\n"


def _sweep_data(
    raw: dict[str, Any], resolved: Resolved, specs: Sequence[str]
) -> list[dict[str, Any]]:
    return [sweep(raw, resolved, parse_vary(spec, resolved.scenario)) for spec in specs]


def _sweep(args: argparse.Namespace) -> tuple[dict[str, Any], str]:
    raw, resolved = _load(args.scenario)
    rows = _sweep_data(raw, resolved, args.vary or DEFAULT_VARY)
    data = {"assumptions": assumptions(resolved), "sweeps": rows}
    parts = [_assumption_lines(resolved)]
    for row in rows:
        parts.append(f"{row['name']} ({row['path']}), scenario value {row['base_value']:g}:\n")
        parts.append(
            _table(
                ["value", "first break-even", "sustained"],
                [
                    [
                        f"{p['value']:g}",
                        num(p["first_tokens"]),
                        num(p["sustained_tokens"]) if not p["never"] else "never",
                    ]
                    for p in row["points"]
                ],
            )
            + "\n"
        )
    return data, "".join(parts)


def _demand(args: argparse.Namespace, resolved: Resolved) -> tuple[Any, str]:
    s = resolved.scenario
    if args.days < 1 or args.days > 366:
        raise UserError("--days: must be from 1 to 366")
    found = _source(args)
    if found is not None:
        source, end = found
        end = end or datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
        rows = source.hourly_volume(end - timedelta(days=args.days), end)
        if not rows:
            raise UserError("no measured usage in the simulated window")
        return sim.measured_demand(rows, args.days), "measured hourly profile"
    if s.load_shape is None:
        return sim.flat_demand(s.volume_tokens, s.hours_per_month, args.days), "flat demand"
    return (
        sim.synthetic_demand(s.load_shape, s.volume_tokens, s.hours_per_month, args.days),
        "synthetic diurnal demand from load_shape",
    )


def _warm(text: str | None) -> list[int] | None:
    if text is None:
        return None
    try:
        values = [int(x) for x in text.split(",")]
    except ValueError:
        values = [-1]
    if not values or min(values) < 0:
        raise UserError(f"--warm: expected counts ≥ 0 such as 0,1,2, not {text!r}")
    return values


def _simulate(args: argparse.Namespace) -> tuple[dict[str, Any], str]:
    _, resolved = _load(args.scenario)
    warm = _warm(args.warm)
    demand, where = _demand(args, resolved)
    started = time.perf_counter()
    result = sim.simulate(resolved.scenario, demand, warm)
    elapsed = time.perf_counter() - started
    strategies = [
        {"name": o.name, "warm_nodes": o.warm_nodes, **o.metrics} for o in result.outcomes
    ]
    data = {
        "assumptions": assumptions(resolved),
        "days": args.days,
        "steps": int(demand.shape[0]),
        "demand_source": where,
        "peak_sized_nodes": result.peak_sized_nodes,
        "elapsed_seconds": elapsed,
        "strategies": strategies,
    }
    table = _table(
        [
            "strategy",
            "cost",
            "$/1K",
            "GPU util",
            "on GPUs",
            "to API",
            "spilled in cold start",
            "node-h",
            "peak nodes",
        ],
        [
            [
                s["name"],
                _usd(s["cost_total"]),
                num(s["cost_per_1k"]),
                f"{s['gpu_utilization']:.1%}" if s["gpu_utilization"] is not None else "—",
                f"{s['share_gpu']:.1%}",
                short(s["tokens_api"]),
                short(s["tokens_spilled_cold_start"]),
                num(s["node_hours"]),
                str(s["peak_nodes"]),
            ]
            for s in strategies
        ],
    )
    head = (
        f"{args.days} days x 1440 one-minute steps, {where}, demand "
        f"{short(float(demand.sum()))} tokens; simulated in {elapsed * 1000:.0f} ms\n\n"
    )
    return data, _assumption_lines(resolved) + head + table


def _check(args: argparse.Namespace) -> tuple[dict[str, Any], str]:
    raw, resolved = _load(args.scenario)
    claims = parse_claims(read_yaml(args.claims, "claims"), args.claims)
    results = check(raw, claims, args.scenario)
    follows = sum(r["follows"] for r in results)
    data = {
        "assumptions": assumptions(resolved),
        "source": claims.source,
        "follows": follows,
        "does_not_follow": len(results) - follows,
        "claims": results,
    }
    lines = [f"{follows} of {len(results)} claims follow from the scenario's inputs\n"]
    for r in results:
        mark = "follows       " if r["follows"] else "DOES NOT FOLLOW"
        stated = r["stated"]
        stated_text = (
            f"[{num(stated[0])}, {num(stated[1]) if stated[1] is not None else '∞'}]"
            if isinstance(stated, list)
            else (stated if isinstance(stated, str) else num(stated))
        )
        lines.append(f"{mark}  {r['id']}: stated {stated_text}, computed {num(r['computed'])}")
        lines.append(f'    "{r["text"]}"')
        lines.append(f"    {r['arithmetic']}")
        if r["where"]:
            lines.append(f"    with {orjson.dumps(r['where']).decode()}")
        if r["note"]:
            lines.append(f"    note: {r['note']}")
    return data, _assumption_lines(resolved) + "\n".join(lines) + "\n"


def _triggers(args: argparse.Namespace) -> tuple[dict[str, Any], str]:
    from fulcrum.econ.triggers import evaluate, read_staging_log

    _, resolved = _load(args.scenario)
    found = _source(args)
    if found is None:
        raise UserError("triggers need measured usage: --from-ledger or --usage FILE")
    source, end = found
    if args.now:
        try:
            end = datetime.fromisoformat(args.now.replace("Z", "+00:00"))
        except ValueError:
            raise UserError(f"--now: not an ISO 8601 time: {args.now!r}") from None
        end = end if end.tzinfo else end.replace(tzinfo=UTC)
    end = end or datetime.now(UTC)
    start = end - parse_since(args.since)
    rows = source.hourly_volume(start, end)
    incidents = read_staging_log(args.staging_log) if args.staging_log else None
    result = evaluate(rows, start, end, resolved.scenario, incidents)
    data = {"assumptions": assumptions(resolved), **result}
    lines = [f"window {result['window']['from']} → {result['window']['to']}"]
    for t in result["triggers"]:
        lines.append(f"{'PASS' if t['passed'] else 'FAIL'}  {t['name']}: {t['explanation']}")
    lines.append(
        "migrate batch workloads: "
        + ("yes — all three triggers pass" if result["migrate"] else "not yet")
    )
    return data, _assumption_lines(resolved) + "\n".join(lines) + "\n"


def _report(args: argparse.Namespace) -> tuple[dict[str, Any], str]:
    from fulcrum.econ.report import render

    raw, resolved = _load(args.scenario)
    model = CostModel.of(resolved.scenario)
    result = break_even(model)
    sweeps = _sweep_data(raw, resolved, DEFAULT_VARY)
    demand, where = _demand(args, resolved)
    simulation = sim.simulate(resolved.scenario, demand)
    page = render(
        assumptions=assumptions(resolved),
        model=model,
        result=result,
        volume=resolved.scenario.volume_tokens,
        sweeps=sweeps,
        simulation=simulation,
        demand_source=where,
    )
    out = Path(args.out)
    try:
        out.mkdir(parents=True, exist_ok=True)
        (out / "index.html").write_text(page, encoding="utf-8")
    except OSError as exc:
        raise UserError(f"--out: cannot write {out}: {exc.strerror or exc}") from None
    path = str(out / "index.html")
    return {"report": path, "bytes": len(page.encode())}, f"wrote {path}\n"


def _prices(args: argparse.Namespace) -> tuple[dict[str, Any], str]:
    rows = catalog_rows(default_catalog())
    table = _table(
        ["kind", "name", "region", "price", "as of", "verified"],
        [
            [
                r["kind"],
                r["name"],
                r["region"],
                (
                    f"{num(r['price_in_per_1k'])} / {num(r['price_out_per_1k'])} USD per 1K in/out"
                    if r["kind"] == "bedrock"
                    else f"{_hourly(r['on_demand_hourly'])}/h on-demand, "
                    f"{_hourly(r['reserved_1y_hourly'])}/h 1y reserved"
                ),
                r["as_of"],
                "yes" if r["verified"] else "no",
            ]
            for r in rows
        ],
        right=False,
    )
    sources = sorted({r["source"] for r in rows})
    return {"prices": rows}, table + "\nsources: " + ", ".join(sources) + "\n"
