"""Hand-written SVG charts: line charts and a tornado, self-contained, no dependencies."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from html import escape

PALETTE = ("#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b")
FONT = 'font-family="system-ui, sans-serif" font-size="11"'


@dataclass(frozen=True)
class Series:
    """A polyline: points in data units."""

    label: str
    points: Sequence[tuple[float, float]]
    color: str = PALETTE[0]
    dashed: bool = False


def nice_ticks(high: float, count: int = 5) -> list[float]:
    """Round tick values from 0 to at least ``high``."""
    if high <= 0:
        return [0.0, 1.0]
    raw = high / count
    power = 10 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 2.5, 5, 10) if m * power >= raw)
    return [i * step for i in range(math.ceil(high / step - 1e-9) + 1)]


def short(value: float) -> str:
    """1.5e9 → 1.5B; 12000 → 12k."""
    for limit, suffix in ((1e12, "T"), (1e9, "B"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= limit:
            return f"{value / limit:.3g}{suffix}"
    return f"{value:g}"


def line_chart(
    series: Sequence[Series],
    *,
    title: str,
    x_label: str,
    y_label: str,
    markers: Sequence[tuple[float, str]] = (),
    width: int = 760,
    height: int = 340,
) -> str:
    """An SVG line chart with axes, ticks, legend and vertical markers."""
    left, right, top, bottom = 70, 20, 30 + 16 * math.ceil(len(series) / 3), 50
    xs = [x for s in series for x, _ in s.points] + [x for x, _ in markers]
    ys = [y for s in series for _, y in s.points]
    x_ticks = nice_ticks(max(xs, default=1.0))
    y_ticks = nice_ticks(max(ys, default=1.0))
    x_max, y_max = x_ticks[-1], y_ticks[-1]
    plot_w, plot_h = width - left - right, height - top - bottom

    def px(x: float) -> float:
        return left + plot_w * x / x_max

    def py(y: float) -> float:
        return top + plot_h * (1 - y / y_max)

    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" role="img" aria-label="{escape(title)}">',
        f'<text x="{left}" y="18" {FONT} font-weight="bold">{escape(title)}</text>',
    ]
    for t in y_ticks:
        out.append(
            f'<line x1="{left}" x2="{width - right}" y1="{py(t):.1f}" y2="{py(t):.1f}" '
            'stroke="#eee"/>'
            f'<text x="{left - 6}" y="{py(t) + 4:.1f}" text-anchor="end" {FONT}>{short(t)}</text>'
        )
    for t in x_ticks:
        out.append(
            f'<text x="{px(t):.1f}" y="{height - bottom + 16}" text-anchor="middle" {FONT}>'
            f"{short(t)}</text>"
        )
    out.append(
        f'<line x1="{left}" x2="{left}" y1="{top}" y2="{height - bottom}" stroke="#333"/>'
        f'<line x1="{left}" x2="{width - right}" y1="{height - bottom}" '
        f'y2="{height - bottom}" stroke="#333"/>'
        f'<text x="{left + plot_w / 2}" y="{height - 12}" text-anchor="middle" {FONT}>'
        f"{escape(x_label)}</text>"
        f'<text x="14" y="{top + plot_h / 2}" text-anchor="middle" {FONT} '
        f'transform="rotate(-90 14 {top + plot_h / 2})">{escape(y_label)}</text>'
    )
    for i, (x, label) in enumerate(sorted(markers)):
        anchor = "end" if px(x) > left + plot_w * 0.7 else "start"
        dx = -3 if anchor == "end" else 3
        out.append(
            f'<line x1="{px(x):.1f}" x2="{px(x):.1f}" y1="{top}" y2="{height - bottom}" '
            'stroke="#555" stroke-dasharray="3 3"/>'
            f'<text x="{px(x) + dx:.1f}" y="{top + 12 + 13 * i}" text-anchor="{anchor}" '
            f"{FONT}>{escape(label)}</text>"
        )
    for i, s in enumerate(series):
        path = " ".join(f"{px(x):.1f},{py(y):.1f}" for x, y in s.points)
        dash = ' stroke-dasharray="6 3"' if s.dashed else ""
        out.append(
            f'<polyline fill="none" stroke="{s.color}" stroke-width="1.6"{dash} points="{path}"/>'
        )
        lx = left + 10 + 200 * (i % 3)
        ly = 36 + 16 * (i // 3)
        out.append(
            f'<rect x="{lx}" y="{ly - 8}" width="12" height="3" fill="{s.color}"/>'
            f'<text x="{lx + 16}" y="{ly - 3}" {FONT}>{escape(s.label)}</text>'
        )
    out.append("</svg>")
    return "".join(out)


def tornado(
    rows: Sequence[tuple[str, float | None, float | None]],
    base: float | None,
    *,
    title: str,
    axis_max: float,
    width: int = 760,
) -> str:
    """Horizontal bars from the value at the low end to the value at the high end.

    ``None`` means "never breaks even" and is drawn to the right edge, labelled "never".
    """
    left, right, top, row_h = 200, 150, 34, 26
    height = top + row_h * len(rows) + 40
    plot_w = width - left - right
    ticks = nice_ticks(axis_max)
    scale_max = ticks[-1]

    def px(v: float | None) -> float:
        return left + plot_w * (min(v, scale_max) if v is not None else scale_max) / scale_max

    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" role="img" aria-label="{escape(title)}">',
        f'<text x="10" y="18" {FONT} font-weight="bold">{escape(title)}</text>',
    ]
    for t in ticks:
        out.append(
            f'<line x1="{px(t):.1f}" x2="{px(t):.1f}" y1="{top - 4}" '
            f'y2="{height - 36}" stroke="#eee"/>'
            f'<text x="{px(t):.1f}" y="{height - 22}" text-anchor="middle" {FONT}>'
            f"{short(t)}</text>"
        )
    for i, (label, low, high) in enumerate(rows):
        y = top + i * row_h
        a, b = px(low), px(high)
        x0, x1 = min(a, b), max(a, b)
        out.append(
            f'<text x="{left - 8}" y="{y + 15}" text-anchor="end" {FONT}>{escape(label)}</text>'
            f'<rect x="{x0:.1f}" y="{y + 4}" width="{max(x1 - x0, 1.5):.1f}" height="16" '
            f'fill="{PALETTE[0]}" fill-opacity="0.7"/>'
            f'<text x="{width - right + 10}" y="{y + 15}" {FONT}>'
            f"{_end_label(low)} → {_end_label(high)}</text>"
        )
    if base is not None:
        out.append(
            f'<line x1="{px(base):.1f}" x2="{px(base):.1f}" y1="{top - 4}" '
            f'y2="{height - 36}" stroke="#d62728"/>'
        )
    out.append(
        f'<text x="{left + plot_w / 2}" y="{height - 6}" text-anchor="middle" {FONT}>'
        "first break-even, tokens/month (low end → high end of each range)</text></svg>"
    )
    return "".join(out)


def _end_label(value: float | None) -> str:
    return "never" if value is None else short(value)
