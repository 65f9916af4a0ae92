"""The HTML report: one self-contained page — charts (inline SVG), verdict, assumptions.

Takes results already computed by the other modules and only lays them out.
"""

from __future__ import annotations

from html import escape
from typing import Any

from fulcrum.econ import svg
from fulcrum.econ.breakeven import BreakEven
from fulcrum.econ.claims import num
from fulcrum.econ.cost import CostModel
from fulcrum.econ.simulate import Simulation, downsample
from fulcrum.econ.sweep import swing

CSS = """
body{font-family:system-ui,sans-serif;max-width:960px;margin:2em auto;color:#222;line-height:1.45}
h1{font-size:1.5em} h2{font-size:1.15em;margin-top:2em;border-bottom:1px solid #ddd}
table{border-collapse:collapse;font-size:.9em} td,th{padding:2px 8px;border-bottom:1px solid #eee;
text-align:left} td.n{text-align:right;font-variant-numeric:tabular-nums}
.verdict{background:#f6f8fa;padding:1em;border-left:4px solid #1f77b4}
.warn{color:#a33}
"""


def cost_curve(model: CostModel, x_max: float) -> tuple[list[tuple[float, float]], ...]:
    """API line, self-hosted total staircase and its compute part, up to ``x_max``."""
    cap = float(model.capacity)
    api = [(0.0, 0.0), (x_max, model.api(x_max))]
    total: list[tuple[float, float]] = []
    compute: list[tuple[float, float]] = []
    k = max(model.min_instances, 1)
    lo = 0.0
    while lo < x_max and k < 10_000:
        hi = min(k * cap, x_max)
        n_cost = k * model.instance_monthly
        for x in (lo, hi):
            total.append((x, n_cost + model.fixed + model.egress_per_token * x))
            compute.append((x, n_cost))
        lo, k = hi, k + 1
    return api, total, compute


def _flatten(prefix: str, value: Any, out: list[tuple[str, str]]) -> None:
    if isinstance(value, dict):
        for key, item in value.items():
            _flatten(f"{prefix}.{key}" if prefix else str(key), item, out)
    else:
        out.append((prefix, "—" if value is None else str(value)))


def render(
    *,
    assumptions: dict[str, Any],
    model: CostModel,
    result: BreakEven,
    volume: float,
    sweeps: list[dict[str, Any]],
    simulation: Simulation,
    demand_source: str,
) -> str:
    """The whole page."""
    row = model.row(volume)
    first, sustained = result.first, result.sustained
    x_max = max(volume * 2, float(model.capacity) * 3, (sustained or first or 0.0) * 1.3)
    api_pts, total_pts, compute_pts = cost_curve(model, x_max)
    markers = []
    if first is not None:
        markers.append((first, f"first break-even {svg.short(first)}"))
    if sustained is not None and sustained != first:
        markers.append((sustained, f"sustained {svg.short(sustained)}"))
    markers.append((volume, f"scenario volume {svg.short(volume)}"))
    cost_svg = svg.line_chart(
        [
            svg.Series("managed API", api_pts, svg.PALETTE[0]),
            svg.Series("self-hosted total", total_pts, svg.PALETTE[1]),
            svg.Series("self-hosted compute", compute_pts, svg.PALETTE[2], dashed=True),
        ],
        title="Monthly cost vs. volume",
        x_label="tokens per month",
        y_label="USD per month",
        markers=markers,
    )

    finite = [p["first_tokens"] for s in sweeps for p in s["points"] if p["first_tokens"]]
    axis_max = max(finite, default=x_max) * 1.1
    ranked = sorted(sweeps, key=lambda s: swing(s, axis_max), reverse=True)
    tornado_svg = svg.tornado(
        [
            (
                f"{s['name']} {num(s['low'])} → {num(s['high'])}",
                s["first_at_low"],
                s["first_at_high"],
            )
            for s in ranked
        ],
        first,
        title="Sensitivity of the first break-even (red line: the scenario)",
        axis_max=axis_max,
    )

    hybrid = next(o for o in simulation.outcomes if o.name.startswith("hybrid"))
    step, span = 5, min(simulation.demand.shape[0], 3 * 24 * 60)
    cap = simulation.node_capacity_per_minute
    assert hybrid.fleet is not None

    def pts(values: Any) -> list[tuple[float, float]]:
        sampled = downsample(values[:span], step)
        return [(i * step / 60, v) for i, v in enumerate(sampled)]

    sim_svg = svg.line_chart(
        [
            svg.Series("demand", pts(simulation.demand), svg.PALETTE[0]),
            svg.Series("ready GPU capacity", pts(hybrid.fleet.ready * cap), svg.PALETTE[2]),
            svg.Series("spilled to API", pts(hybrid.spilled), svg.PALETTE[1]),
        ],
        title=f"Simulation, {hybrid.name}: first {span // 1440} days ({demand_source})",
        x_label="hours",
        y_label="tokens per minute",
    )

    verdict = _verdict(model, row, result, volume, simulation)
    warnings = "".join(f'<li class="warn">{escape(w)}</li>' for w in assumptions["warnings"])
    flat: list[tuple[str, str]] = []
    _flatten("", {k: v for k, v in assumptions.items() if k != "warnings"}, flat)
    rows = "".join(f"<tr><td>{escape(k)}</td><td>{escape(v)}</td></tr>" for k, v in flat)
    strategies = "".join(
        "<tr><td>{}</td><td class=n>${}</td><td class=n>{}</td><td class=n>{}</td>"
        "<td class=n>{}</td><td class=n>{}</td></tr>".format(
            escape(o.name),
            num(o.metrics["cost_total"]),
            f"{o.metrics['gpu_utilization']:.1%}" if o.metrics["gpu_utilization"] else "—",
            f"{o.metrics['share_gpu']:.1%}",
            num(o.metrics["tokens_api"]),
            num(o.metrics["tokens_spilled_cold_start"]),
        )
        for o in simulation.outcomes
    )
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<title>Fulcrum economics — {escape(str(assumptions["name"]))}</title><style>{CSS}</style></head>
<body>
<h1>Managed API vs. self-hosted GPUs — {escape(str(assumptions["name"]))}</h1>
<div class="verdict">{verdict}</div>
{f"<h2>Warnings</h2><ul>{warnings}</ul>" if warnings else ""}
<h2>Monthly cost vs. volume</h2>
<p>Self-hosted cost is a staircase: every instance is paid whole. Markers show the break-even
volumes (self-hosted ≤ API) and the scenario's volume.</p>
{cost_svg}
<h2>Sensitivity</h2>
<p>Each bar moves one assumption across its range, all others at the scenario's value.</p>
{tornado_svg}
<h2>Capacity simulation</h2>
<p>One-minute steps; GPU nodes take the cold start to become ready; whatever the ready fleet
cannot serve spills to the API.</p>
{sim_svg}
<table><tr><th>strategy</th><th>cost</th><th>GPU utilization</th><th>tokens on GPUs</th>
<th>tokens spilled</th><th>spilled during cold starts</th></tr>{strategies}</table>
<h2>Every assumption</h2>
<table><tr><th>key</th><th>value</th></tr>{rows}</table>
</body></html>
"""


def _verdict(
    model: CostModel,
    row: dict[str, Any],
    result: BreakEven,
    volume: float,
    simulation: Simulation,
) -> str:
    cheaper = "self-hosted GPUs" if row["cheaper"] == "self_hosted" else "the managed API"
    parts = [
        f"<p><b>At {svg.short(volume)} tokens/month, {cheaper} is cheaper:</b> API "
        f"${num(row['api_monthly'])}/month vs. self-hosted ${num(row['self_monthly'])}/month "
        f"({row['self_instances']} instance(s): ${num(row['self_compute_monthly'])} compute + "
        f"${num(row['self_fixed_monthly'])} fixed + ${num(row['self_variable_monthly'])} "
        "egress).</p>"
    ]
    parity = model.parity_utilization()
    parity_text = (
        f"Self-hosted compute alone matches the API's price per token only at "
        f"{parity:.0%} average utilization"
        + (" — more than an instance can give, so it never pays." if parity > 1 else ".")
    )
    if result.never:
        parts.append(f"<p>Self-hosted never costs less than the API. {parity_text}</p>")
    else:
        sustained = result.sustained
        parts.append(
            f"<p>Self-hosted first breaks even at {svg.short(result.first or 0)} tokens/month"
            + (
                f" and stays cheaper from {svg.short(sustained)} tokens/month"
                if sustained is not None
                else " but never stays cheaper"
            )
            + f" ({len(result.intervals) + result.omitted} winning interval(s)). {parity_text}</p>"
        )
    best = min(simulation.outcomes, key=lambda o: o.metrics["cost_total"])
    parts.append(
        f"<p>In the simulated period the cheapest strategy is <b>{escape(best.name)}</b> "
        f"(${num(best.metrics['cost_total'])}, {best.metrics['share_gpu']:.0%} of tokens on "
        "GPUs).</p>"
    )
    return "".join(parts)
