"""The benchmark report: derived overheads, round merging and the markdown tables."""

from __future__ import annotations

import pytest
from bench.report import CHECKS, Row, RunInfo, combine, derive, render, targets_table, verdict


def _row(name: str, scale: float = 1.0, **extra: object) -> Row:
    row = Row(
        name=name,
        rps={1: 1000 / scale, 16: 2000 / scale, 64: 2000 / scale},
        open_p50=0.001 * scale,
        open_p99=0.002 * scale,
        ttft_p50=0.001 * scale,
        tail_p50=0.006 * scale,
        peak_mb=50.0,
        rss_mb=45.0,
    )
    for key, value in extra.items():
        setattr(row, key, value)
    return row


def test_derive_subtracts_direct() -> None:
    d = derive(_row("x", scale=2.0), _row("direct"))
    assert d.added_p50 == pytest.approx(0.001)
    assert d.added_p99 == pytest.approx(0.002)
    assert d.ttft_overhead == pytest.approx(0.001)
    assert d.per_chunk == pytest.approx(0.006 / 63)


def test_derive_without_direct_is_empty() -> None:
    assert derive(_row("x"), None).added_p50 is None
    assert derive(_row("x"), Row("direct", unavailable="boom")).per_chunk is None


def test_combine_keeps_best_figures_and_largest_memory() -> None:
    a = _row("fulcrum", errors=1, first_error="HTTP 502", peak_mb=60.0)
    b = _row("fulcrum", scale=2.0, peak_mb=70.0)
    merged = combine([a, b])
    assert merged.rps[64] == 2000
    assert merged.open_p99 == pytest.approx(0.002)
    assert merged.peak_mb == 70.0
    assert (merged.errors, merged.first_error) == (1, "HTTP 502")


def test_combine_of_failed_rounds_keeps_the_reason() -> None:
    merged = combine([Row("fulcrum", unavailable="exited with code 1")])
    assert merged.unavailable == "exited with code 1"


def test_verdicts() -> None:
    throughput, added_p50 = CHECKS[0], CHECKS[1]
    assert verdict(throughput, 0.75) == "75% met"
    assert verdict(throughput, 0.5) == "50% **not met**"
    assert verdict(added_p50, None) == "n/a"
    assert verdict(added_p50, 1.0, overloaded=True) == "overloaded **not met**"
    assert verdict(throughput, 0.75, overloaded=True) == "75% met"


def test_targets_table_compares_with_passthrough() -> None:
    rows = [
        _row("direct"),
        _row("passthrough", scale=1.5),
        _row("fulcrum", scale=2.0),
        Row("litellm", unavailable="not installed"),
    ]
    lines = targets_table(rows)
    fulcrum = next(line for line in lines if line.startswith("| fulcrum"))
    # throughput 1000 vs 1333 req/s; added p50 1.0 ms vs 0.5 ms.
    assert "75% met" in fulcrum
    assert "2.00x **not met**" in fulcrum
    assert "50.0 MB met" in fulcrum
    assert any(line.startswith("| litellm | unavailable") for line in lines)
    assert not any(line.startswith("| passthrough") for line in lines)


def test_render_marks_unavailable_rows_and_noise() -> None:
    info = RunInfo(
        date="2024-01-01",
        machine="x86_64",
        cpu="cpu",
        python="3.11",
        versions={"aiohttp": "3"},
        durations="short",
        pinning="pinned",
        load_before="0",
        load_after="0",
        rate=200,
    )
    rows = [_row("direct", foreign_cpu=0.5), Row("fulcrum", unavailable="exited with code 2")]
    text = render(info, rows)
    assert "| fulcrum | unavailable: exited with code 2 |" in text
    assert "**noisy**" in text
    header = next(line for line in text.splitlines() if line.startswith("| row | req/s"))
    direct = next(line for line in text.splitlines() if line.startswith("| direct"))
    assert header.count("|") == direct.count("|")
