"""Turn measured rows into the markdown report: pure functions, no I/O, so they are unit-tested.

Two tables: absolute numbers per row, then each gateway against the pass-through proxy with the
project's targets marked met / not met; a run with ``--candidates`` adds a third, the stack
candidates against the pass-through proxy. Every "overhead" is relative to the row's baseline
measured in the same run against the same upstream: ``direct`` for the OpenAI path,
``bedrock-direct`` (the Bedrock emulator called directly) for ``fulcrum-bedrock``, which also
gets a short table of its own, next to the OpenAI path's overhead for context.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from bench.stats import difference, ratio

STREAM_CHUNKS = 64
CONCURRENCIES = (1, 16, 64)
BASELINE = "direct"
REFERENCE = "passthrough"
BEDROCK_BASELINE = "bedrock-direct"
BEDROCK_GATEWAY = "fulcrum-bedrock"
OPENAI_GATEWAY = "fulcrum"
BASELINE_OF = {BEDROCK_GATEWAY: BEDROCK_BASELINE}  # every other row is measured against direct
BASELINES = frozenset({BASELINE, BEDROCK_BASELINE})
NOISY = 0.10  # other processes' CPU share above which a row is flagged as noisy
PASS_THROUGH_PREFIX = "pt-"  # pass-through stack candidates: proxies, not gateways
STACK_COLUMNS = ("server", "client", "loop", "JSON")


@dataclass
class Row:
    """Everything measured for one target (times in seconds, memory in MB)."""

    name: str
    unavailable: str | None = None
    rps: dict[int, float] = field(default_factory=dict)
    cpu_us_per_req: float | None = None  # proxy CPU per request in the c=64 phase
    open_p50: float | None = None
    open_p99: float | None = None
    ttft_p50: float | None = None
    tail_p50: float | None = None  # median of (total - TTFT) for a 64-chunk stream
    peak_mb: float | None = None
    rss_mb: float | None = None
    errors: int = 0
    first_error: str | None = None
    late_sends: int = 0
    foreign_cpu: float | None = None  # share of the machine other processes used meanwhile
    overloaded_at: float | None = None  # max req/s when below the fixed rate (phase skipped)


def _pick(values: Sequence[float | None], best: Callable[[Sequence[float]], float]) -> float | None:
    present = [v for v in values if v is not None and not math.isnan(v)]
    return best(present) if present else None


def combine(rounds: Sequence[Row]) -> Row:
    """Merge one target's rounds: the best figure of each kind, the sum of errors.

    On a shared machine interference only ever slows a run down, so the best of several
    interleaved rounds is the steadiest estimate of what the target itself costs. Memory is
    the exception: the largest peak is kept.
    """
    if not rounds:
        raise ValueError("no rounds to combine")
    ok = [r for r in rounds if not r.unavailable]
    if not ok:
        return rounds[-1]
    concurrencies = sorted({c for r in ok for c in r.rps})
    first_error = next((r.first_error for r in ok if r.first_error), None)
    return Row(
        name=ok[0].name,
        rps={c: max(r.rps.get(c, 0.0) for r in ok) for c in concurrencies},
        cpu_us_per_req=_pick([r.cpu_us_per_req for r in ok], min),
        open_p50=_pick([r.open_p50 for r in ok], min),
        open_p99=_pick([r.open_p99 for r in ok], min),
        ttft_p50=_pick([r.ttft_p50 for r in ok], min),
        tail_p50=_pick([r.tail_p50 for r in ok], min),
        peak_mb=_pick([r.peak_mb for r in ok], max),
        rss_mb=_pick([r.rss_mb for r in ok], max),
        errors=sum(r.errors for r in ok),
        first_error=first_error,
        late_sends=sum(r.late_sends for r in ok),
        foreign_cpu=_pick([r.foreign_cpu for r in ok], max),
        overloaded_at=_pick([r.overloaded_at for r in ok], max),
    )


@dataclass
class RunInfo:
    """The report header: where, when and how the numbers were taken."""

    date: str
    machine: str
    cpu: str
    python: str
    versions: dict[str, str]
    durations: str
    pinning: str
    load_before: str
    load_after: str
    rate: float
    notes: list[str] = field(default_factory=list)
    candidates_venv: str = ""  # versions in .venv-candidates, for a --candidates run
    bedrock_notes: list[str] = field(default_factory=list)  # in-process costs of the path


def baseline_name(name: str) -> str:
    """The row ``name``'s overheads are measured against."""
    return BASELINE_OF.get(name, BASELINE)


@dataclass(frozen=True)
class Derived:
    """One row's numbers relative to ``direct``."""

    added_p50: float | None
    added_p99: float | None
    ttft_overhead: float | None
    per_chunk: float | None
    stream_overhead: float | None = None  # TTFT + tail: the whole stream's added time


def _stream_time(row: Row) -> float | None:
    if row.ttft_p50 is None or row.tail_p50 is None:
        return None
    return row.ttft_p50 + row.tail_p50


def derive(row: Row, direct: Row | None) -> Derived:
    """Overheads of ``row`` against its baseline ``direct`` (None where either side is missing)."""
    if direct is None or row.unavailable or direct.unavailable:
        return Derived(None, None, None, None)
    tail = difference(row.tail_p50, direct.tail_p50)
    return Derived(
        added_p50=difference(row.open_p50, direct.open_p50),
        added_p99=difference(row.open_p99, direct.open_p99),
        ttft_overhead=difference(row.ttft_p50, direct.ttft_p50),
        per_chunk=None if tail is None else tail / (STREAM_CHUNKS - 1),
        stream_overhead=difference(_stream_time(row), _stream_time(direct)),
    )


def derive_for(row: Row, rows: Sequence[Row]) -> Derived:
    """Overheads of ``row`` against its own baseline among ``rows``."""
    return derive(row, _find(rows, baseline_name(row.name)))


def _num(value: float | None, scale: float, digits: int) -> str:
    if value is None or math.isnan(value):
        return "—"
    return f"{value * scale:,.{digits}f}"


def _ms(value: float | None) -> str:
    return _num(value, 1e3, 2)


def _us(value: float | None, digits: int = 0) -> str:
    return _num(value, 1e6, digits)


def _mb(value: float | None) -> str:
    return _num(value, 1.0, 1)


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(cells) + " |" for cells in rows]
    return lines


def _find(rows: Sequence[Row], name: str) -> Row | None:
    return next((r for r in rows if r.name == name), None)


def results_table(rows: Sequence[Row], rate: float) -> list[str]:
    """Table 1: absolute numbers and overheads against ``direct``."""
    header = [
        "row",
        *(f"req/s c={c}" for c in CONCURRENCIES),
        "CPU µs/req c=64",
        f"p50 @{rate:g}/s (ms)",
        f"p99 @{rate:g}/s (ms)",
        "added p50 (µs)",
        "added p99 (µs)",
        "TTFT p50 (ms)",
        "TTFT overhead (µs)",
        "per-chunk overhead (µs)",
        "peak RSS (MB)",
        "RSS (MB)",
        "errors",
        "other CPU",
    ]
    body: list[list[str]] = []
    for row in rows:
        if row.unavailable:
            body.append([row.name, f"unavailable: {row.unavailable}"] + ["—"] * (len(header) - 2))
            continue
        d = derive_for(row, rows)
        is_base = row.name in BASELINES
        over = "overloaded" if row.overloaded_at is not None else None
        body.append(
            [
                row.name,
                *(_num(row.rps.get(c), 1.0, 0) for c in CONCURRENCIES),
                _num(row.cpu_us_per_req, 1.0, 0),
                over or _ms(row.open_p50),
                over or _ms(row.open_p99),
                "(baseline)" if is_base else _us(d.added_p50),
                "(baseline)" if is_base else _us(d.added_p99),
                _ms(row.ttft_p50),
                "(baseline)" if is_base else _us(d.ttft_overhead),
                "(baseline)" if is_base else _us(d.per_chunk, 1),
                _mb(row.peak_mb),
                _mb(row.rss_mb),
                str(row.errors),
                _num(row.foreign_cpu, 100.0, 0) + "%" if row.foreign_cpu is not None else "—",
            ]
        )
    return _table(header, body)


@dataclass(frozen=True)
class Check:
    """One target: a label, a value formatter and the verdict rule."""

    label: str
    value: Callable[[Row, Derived, Row | None, Derived | None], float | None]
    fmt: Callable[[float], str]
    met: Callable[[float], bool]
    open_loop: bool = False  # measured in the fixed-rate phase (skipped when overloaded)


def _vs(
    pick: Callable[[Derived], float | None],
) -> Callable[[Row, Derived, Row | None, Derived | None], float | None]:
    def value(_: Row, d: Derived, __: Row | None, ref: Derived | None) -> float | None:
        return None if ref is None else ratio(pick(d), pick(ref))

    return value


def _throughput(row: Row, _: Derived, ref: Row | None, __: Derived | None) -> float | None:
    return None if ref is None else ratio(row.rps.get(64), ref.rps.get(64))


CHECKS = (
    Check(
        "throughput c=64 vs passthrough (≥ 60%)", _throughput, "{:.0%}".format, lambda v: v >= 0.6
    ),
    Check(
        "added p50 vs passthrough (≤ 1.5x)",
        _vs(lambda d: d.added_p50),
        "{:.2f}x".format,
        lambda v: v <= 1.5,
        open_loop=True,
    ),
    Check(
        "added p99 vs passthrough (≤ 2x)",
        _vs(lambda d: d.added_p99),
        "{:.2f}x".format,
        lambda v: v <= 2.0,
        open_loop=True,
    ),
    Check(
        "TTFT overhead vs passthrough (≤ 1.5x)",
        _vs(lambda d: d.ttft_overhead),
        "{:.2f}x".format,
        lambda v: v <= 1.5,
    ),
    Check(
        "per forwarded chunk (≤ 20 µs)",
        lambda _, d, __, ___: d.per_chunk,
        lambda v: f"{v * 1e6:.1f} µs",
        lambda v: v <= 20e-6,
    ),
    Check(
        "peak RSS (≤ 120 MB)",
        lambda row, _, __, ___: row.peak_mb,
        lambda v: f"{v:.1f} MB",
        lambda v: v <= 120.0,
    ),
)


def verdict(check: Check, value: float | None, overloaded: bool = False) -> str:
    """``"<value> met"`` / ``"<value> **not met**"``, or ``"n/a"`` when it cannot be computed."""
    if overloaded and check.open_loop:
        return "overloaded **not met**"
    if value is None or math.isnan(value):
        return "n/a"
    return f"{check.fmt(value)} {'met' if check.met(value) else '**not met**'}"


def targets_table(rows: Sequence[Row]) -> list[str]:
    """Table 2: each gateway against the pass-through proxy, with the targets marked."""
    direct = _find(rows, BASELINE)
    ref = _find(rows, REFERENCE)
    ref_ok = ref if ref is not None and not ref.unavailable else None
    ref_derived = derive(ref_ok, direct) if ref_ok is not None else None
    body: list[list[str]] = []
    for row in rows:
        if row.name in (*BASELINES, REFERENCE) or row.name.startswith(PASS_THROUGH_PREFIX):
            continue  # the targets are for gateways; pass-through candidates have table 3
        if baseline_name(row.name) != BASELINE:
            continue  # another path (Bedrock): no targets, its own table
        if row.unavailable:
            body.append([row.name] + ["unavailable"] * len(CHECKS))
            continue
        d = derive(row, direct)
        over = row.overloaded_at is not None
        cells = [verdict(c, c.value(row, d, ref_ok, ref_derived), over) for c in CHECKS]
        body.append([row.name, *cells])
    return _table(["row", *(c.label for c in CHECKS)], body)


def _versus(
    value: float | None, ref: float | None, text: Callable[[float], str], is_ref: bool
) -> str:
    """``"<value> (<ratio>x)"``: a row's figure and its ratio to the reference row's."""
    if value is None or math.isnan(value):
        return "—"
    if is_ref:
        return f"{text(value)} (ref.)"
    # A negative overhead (the row beat `direct` in that phase) has no meaningful ratio.
    rel = ratio(value, ref) if value >= 0 else None
    return f"{text(value)} ({'n/a' if rel is None else f'{rel:.2f}x'})"


def candidates_table(rows: Sequence[Row], stacks: Mapping[str, Sequence[str]]) -> list[str]:
    """Table 3: every row named in ``stacks`` (server, client, loop, JSON) against passthrough.

    Ratios to the reference for throughput, latency overheads, CPU and memory; the per-chunk
    overhead is a few µs either side of zero, so it gets a difference instead of a ratio.
    """
    direct = _find(rows, BASELINE)
    ref = _find(rows, REFERENCE)
    ref_ok = ref if ref is not None and not ref.unavailable else None
    rd = derive(ref_ok, direct) if ref_ok is not None else Derived(None, None, None, None)
    header = [
        "row",
        *STACK_COLUMNS,
        "req/s c=64 (vs ref.)",
        "added p50 µs (vs ref.)",
        "TTFT overhead µs (vs ref.)",
        "per-chunk µs (Δ ref.)",
        "CPU µs/req (vs ref.)",
        "peak RSS MB (vs ref.)",
        "other CPU",
    ]
    body: list[list[str]] = []
    for row in rows:
        if row.name not in stacks:
            continue
        stack = list(stacks[row.name])
        if row.unavailable:
            cells = [f"unavailable: {row.unavailable}"] + ["—"] * (len(header) - 6)
            body.append([row.name, *stack, *cells])
            continue
        d = derive(row, direct)
        is_ref = row is ref_ok
        rps_ref = ref_ok.rps.get(64) if ref_ok else None
        chunk = _us(d.per_chunk, 1)
        delta = difference(d.per_chunk, rd.per_chunk)
        if is_ref and d.per_chunk is not None:
            chunk += " (ref.)"
        elif delta is not None:
            chunk += f" ({delta * 1e6:+.1f})"
        body.append(
            [
                row.name,
                *stack,
                _rps_versus(row.rps.get(64), rps_ref, is_ref),
                "overloaded"
                if row.overloaded_at is not None
                else _versus(d.added_p50, rd.added_p50, _us, is_ref),
                _versus(d.ttft_overhead, rd.ttft_overhead, _us, is_ref),
                chunk,
                _versus(
                    row.cpu_us_per_req,
                    ref_ok.cpu_us_per_req if ref_ok else None,
                    "{:,.0f}".format,
                    is_ref,
                ),
                _versus(row.peak_mb, ref_ok.peak_mb if ref_ok else None, _mb, is_ref),
                _num(row.foreign_cpu, 100.0, 0) + "%" if row.foreign_cpu is not None else "—",
            ]
        )
    return _table(header, body)


def _rps_versus(value: float | None, ref: float | None, is_ref: bool) -> str:
    """Throughput and its share of the reference's, as a percentage."""
    if value is None or math.isnan(value):
        return "—"
    if is_ref:
        return f"{value:,.0f} (ref.)"
    rel = ratio(value, ref)
    return f"{value:,.0f} ({'n/a' if rel is None else f'{rel:.0%}'})"


def _candidates_section(rows: Sequence[Row], stacks: Mapping[str, Sequence[str]]) -> list[str]:
    named = [r.name for r in rows if r.name in stacks]
    if not named:
        return []
    return [
        "",
        "## Stack candidates",
        "",
        *candidates_table(rows, stacks),
        "",
        "- Each figure of a row is followed by its ratio to `passthrough` of this run (ref.): "
        "req/s as a percentage (higher is better), the overheads, CPU and memory as a factor "
        "(lower is better); the per-chunk overhead, a few µs either side of zero, by its "
        "difference in µs. Overheads are against `direct`, as in the first table.",
        f"- `{PASS_THROUGH_PREFIX}*` rows relay bytes exactly like `passthrough` (parse nothing) "
        "on another server, client or loop; `fulcrum-*` rows are the gateway with one piece "
        "of its stack swapped. Rows marked *noisy* below were measured while other processes "
        "used the machine.",
    ]


def _share(value: float | None, base: float | None) -> str:
    """Throughput and its share of the baseline's, as a percentage."""
    if value is None or math.isnan(value):
        return "—"
    rel = ratio(value, base)
    return f"{value:,.0f} ({'n/a' if rel is None else f'{rel:.0%}'})"


def _signed_us(value: float | None, digits: int = 0) -> str:
    if value is None or math.isnan(value):
        return "—"
    return f"{value * 1e6:+,.{digits}f}"


BEDROCK_PATHS = (
    ("OpenAI (context)", OPENAI_GATEWAY, BASELINE),
    ("Bedrock", BEDROCK_GATEWAY, BEDROCK_BASELINE),
)


def bedrock_table(rows: Sequence[Row]) -> list[str]:
    """The Bedrock path's overheads next to the OpenAI path's, and their difference.

    Each path is a gateway row against its own baseline (``fulcrum`` vs ``direct``,
    ``fulcrum-bedrock`` vs ``bedrock-direct``); the last line is Bedrock minus OpenAI, what the
    Bedrock-specific work adds over the OpenAI path's own JSON and SSE handling.
    """
    header = [
        "path",
        "gateway vs baseline",
        "req/s c=1 (% of baseline)",
        "req/s c=64 (% of baseline)",
        "CPU µs/req c=64",
        "added p50 (µs)",
        "added p99 (µs)",
        "TTFT overhead (µs)",
        "per-chunk overhead (µs)",
        "stream overhead (µs)",
        "peak RSS (MB)",
    ]
    body: list[list[str]] = []
    measured: list[tuple[Row, Derived]] = []
    for label, gateway, baseline in BEDROCK_PATHS:
        row, base = _find(rows, gateway), _find(rows, baseline)
        pair = f"`{gateway}` vs `{baseline}`"
        if row is None or base is None:
            missing = gateway if row is None else baseline
            body.append([label, pair, f"not measured (`{missing}` not in this run)"] + ["—"] * 8)
            continue
        if row.unavailable or base.unavailable:
            down = row if row.unavailable else base
            body.append([label, pair, f"unavailable: `{down.name}`"] + ["—"] * 8)
            continue
        d = derive(row, base)
        measured.append((row, d))
        over = "overloaded" if row.overloaded_at is not None else None
        body.append(
            [
                label,
                pair,
                _share(row.rps.get(1), base.rps.get(1)),
                _share(row.rps.get(64), base.rps.get(64)),
                _num(row.cpu_us_per_req, 1.0, 0),
                over or _us(d.added_p50),
                over or _us(d.added_p99),
                _us(d.ttft_overhead),
                _us(d.per_chunk, 1),
                _us(d.stream_overhead),
                _mb(row.peak_mb),
            ]
        )
    if len(measured) == 2:
        (openai, od), (bedrock, bd) = measured
        cpu = difference(bedrock.cpu_us_per_req, openai.cpu_us_per_req)
        rss = difference(bedrock.peak_mb, openai.peak_mb)
        skipped = bedrock.overloaded_at is not None or openai.overloaded_at is not None
        body.append(
            [
                "Bedrock - OpenAI",
                "difference",
                "—",
                "—",
                "—" if cpu is None else f"{cpu:+,.0f}",
                "—" if skipped else _signed_us(difference(bd.added_p50, od.added_p50)),
                "—" if skipped else _signed_us(difference(bd.added_p99, od.added_p99)),
                _signed_us(difference(bd.ttft_overhead, od.ttft_overhead)),
                _signed_us(difference(bd.per_chunk, od.per_chunk), 1),
                _signed_us(difference(bd.stream_overhead, od.stream_overhead)),
                "—" if rss is None else f"{rss:+,.1f}",
            ]
        )
    return _table(header, body)


def _bedrock_section(info: RunInfo, rows: Sequence[Row]) -> list[str]:
    if not any(r.name in (BEDROCK_BASELINE, BEDROCK_GATEWAY) for r in rows):
        return []
    return [
        "",
        "## Bedrock path",
        "",
        *bedrock_table(rows),
        "",
        f"- `{BEDROCK_GATEWAY}` is the gateway with one Bedrock deployment: the load generator "
        "sends it the usual OpenAI chat requests and Fulcrum calls the Bedrock Runtime emulator "
        f"(`fulcrum sim bedrock --no-latency --no-auth`) with Converse / ConverseStream. "
        f"`{BEDROCK_BASELINE}` is the load generator sending the same requests as Converse / "
        "ConverseStream to the emulator itself; its numbers are the baseline of "
        f"`{BEDROCK_GATEWAY}`, so the emulator's own cost cancels. Same `maxTokens` on both "
        f"(16, and {STREAM_CHUNKS} when streaming: {STREAM_CHUNKS} content deltas per stream).",
        "- **What the Bedrock path adds** = request translation (OpenAI chat → Converse JSON; "
        "for non-streaming requests also the Converse response → `chat.completion`) + **SigV4 "
        "signing** of every request with botocore (canonical request, SHA-256 of the body, "
        "HMAC-SHA256 key derivation and signature) + **event-stream decoding** (prelude and "
        "message CRC-32s, headers, one JSON payload per event) + **SSE encoding** (one "
        "`chat.completion.chunk` per event). The emulator does not verify signatures "
        "(`--no-auth`), so that cost is not in the measurement.",
        "- With `--no-latency` the emulator writes each stream (68 events, ~13 KB) in one body, "
        "and Fulcrum translates what one read brings as one batch: for both Bedrock rows the "
        "first body bytes arrive with (nearly) the whole stream, so *TTFT overhead* is the "
        "whole stream's translation and *per-chunk overhead* stays near zero. *stream "
        "overhead* (median time to the end of the stream minus the baseline's = TTFT overhead "
        f"+ {STREAM_CHUNKS - 1} x per-chunk) is the figure that compares across the two paths.",
        "- The OpenAI row is `fulcrum` against `direct` from the first table, for context; the "
        "last line is Bedrock minus OpenAI. No targets apply to the Bedrock path: issue #3 asks "
        "for it to be recorded.",
        *(f"- {note}" for note in info.bedrock_notes),
    ]


def render(
    info: RunInfo, rows: Sequence[Row], stacks: Mapping[str, Sequence[str]] | None = None
) -> str:
    """The whole markdown report; ``stacks`` (row → server, client, loop, JSON) adds table 3."""
    lines = [
        "# Fulcrum benchmark",
        "",
        f"- date: {info.date}",
        f"- machine: `{info.machine}`, CPU: {info.cpu}",
        f"- Python {info.python}; " + ", ".join(f"{k} {v}" for k, v in info.versions.items()),
        *([f"- stack candidates from {info.candidates_venv}"] if info.candidates_venv else []),
        f"- durations: {info.durations}",
        f"- pinning: {info.pinning}",
        f"- load average before / after: {info.load_before} / {info.load_after}",
        "",
        "## Results",
        "",
        *results_table(rows, info.rate),
        "",
        "## Against the pass-through proxy",
        "",
        *targets_table(rows),
        *_bedrock_section(info, rows),
        *_candidates_section(rows, stacks or {}),
        "",
        "## Notes",
        "",
        "- `direct`: the load generator and the upstream share core 1, so its req/s is the "
        "ceiling of that pair, not of the upstream; rows behind a proxy are bounded by the same "
        "core 1 (plus their own core 0), so at high concurrency they can come close to it.",
        "- added latency = a row's p50/p99 at the fixed rate minus `direct`'s, measured from "
        "each request's scheduled send time (open loop, no coordinated omission).",
        "- TTFT overhead = median time to the first body chunk minus `direct`'s; per-chunk "
        f"overhead = (median(total - TTFT) - direct's) / {STREAM_CHUNKS - 1}, "
        f"for a {STREAM_CHUNKS}-chunk stream at concurrency 1. The upstream pauses 5 ms after "
        "the first chunk and sends the rest in a burst, so TTFT times one chunk's trip and the "
        "tail shows the per-chunk cost; a negative per-chunk figure means the proxy delivered "
        "the burst faster than direct (it coalesced chunks into fewer reads).",
        "- CPU µs/req = CPU time of the proxy process (user+system) during the c=64 phase "
        "divided by the requests it served.",
        "- peak RSS = VmHWM of the proxy process (and any workers) after the run; RSS = VmRSS.",
        "- other CPU = share of the machine's CPU used by processes outside this benchmark "
        f"while the row was measured; above {NOISY:.0%} the row's numbers are noisy.",
    ]
    for gateway, baseline in BASELINE_OF.items():
        if _find(rows, gateway) is not None:
            lines.append(
                f"- `{gateway}`: its added latency, TTFT and per-chunk overheads are against "
                f"`{baseline}`, not `direct` (see the Bedrock path table)."
            )
    for row in rows:
        if row.overloaded_at is not None:
            lines.append(
                f"- {row.name}: at most {row.overloaded_at:,.0f} req/s, below the fixed rate of "
                f"{info.rate:g} req/s, so its latency at that rate is unbounded (the queue only "
                "grows) and was not measured."
            )
        if row.first_error:
            lines.append(f"- {row.name}: {row.errors} failed requests; first: `{row.first_error}`")
        if row.late_sends:
            lines.append(
                f"- {row.name}: {row.late_sends} open-loop sends left > 1 ms after their "
                "scheduled time (the load generator or its core was busy); counted in the latency."
            )
    noisy = [r.name for r in rows if r.foreign_cpu is not None and r.foreign_cpu > NOISY]
    if noisy:
        lines.append(
            f"- **noisy**: other processes were busy while {', '.join(noisy)} ran; "
            "rerun on a quiet machine before drawing conclusions."
        )
    lines += [f"- {note}" for note in info.notes]
    return "\n".join(lines) + "\n"
