"""``make bench``: direct vs. pass-through proxy vs. Fulcrum (vs. LiteLLM with ``--peers``), and
the Bedrock path: the Bedrock emulator called directly vs. Fulcrum in front of it.

One run starts the upstreams once (the bench upstream, and the Bedrock emulator when a Bedrock
row is wanted), then, for each row in turn, starts the system under test pinned to core 0,
checks it answers correctly, warms it up, measures it, reads its memory and stops it — so no
two proxies ever compete for the CPU. This process (the load generator) and the upstreams run on
core 1. The report is printed and written to ``bench/results/latest.md`` (plus the raw numbers
in ``latest.json``).
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import datetime as dt
import importlib.metadata
import json
import os
import platform
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import uvloop

from bench import bedrock, candidates, loadgen, peers, procs, report, targets

REPO_ROOT = Path(__file__).resolve().parent.parent
RESULTS_DIR = REPO_ROOT / "bench" / "results"
MODEL = "bench-model"
PROXY_CORE, LOAD_CORE = 0, 1
WARMUP_REQUESTS = 200
WARMUP_MAX = 20.0  # seconds
OVERLOAD_MARGIN = 1.1  # the fixed-rate phase needs this much headroom over the rate
DEFAULT_DURATION, QUICK_DURATION = 4.0, 1.0
# --candidates measures three times as many rows: every row, references included, gets shorter
# phases so the run stays near 6 minutes and all rows are measured alike, and one more round,
# because on a shared machine the best of three short rounds is steadier than of two longer ones.
CANDIDATES_DURATION, CANDIDATES_ROUNDS = 1.5, 3
# The Bedrock rows measure each phase for half as long, so that they add about a minute to a
# default run (two rows, two rounds); both are measured alike, so their comparison is fair.
BEDROCK_PHASES = 0.5


@dataclass(frozen=True)
class Plan:
    """How long each phase runs, in seconds."""

    throughput: float  # per concurrency level
    open_loop: float
    streaming: float
    warmup: float
    rate: float
    rounds: int

    def describe(self) -> str:
        rounds = (
            f"; {self.rounds} interleaved rounds, best figure of each kept"
            if self.rounds > 1
            else "; 1 round"
        )
        return (
            f"per row and round: warm-up {self.warmup:g}s and {WARMUP_REQUESTS}+ requests, "
            f"throughput {self.throughput:g}s per "
            f"concurrency {'/'.join(map(str, report.CONCURRENCIES))}, open loop "
            f"{self.open_loop:g}s at {self.rate:g} req/s, streaming {self.streaming:g}s at "
            f"concurrency 1{rounds}"
        )


def make_plan(duration: float, rate: float, rounds: int) -> Plan:
    """Every phase scales with ``--duration`` (the throughput phase length)."""
    return Plan(
        throughput=duration,
        open_loop=2 * duration,
        streaming=duration,
        warmup=round(max(0.5, min(2.0, duration / 3)), 1),
        rate=rate,
        rounds=rounds,
    )


def plan_for(plan: Plan, target: targets.Target) -> Plan:
    """The phases of ``target``: Bedrock rows get BEDROCK_PHASES of each measured phase."""
    if target.upstream != targets.BEDROCK_UPSTREAM or BEDROCK_PHASES == 1.0:
        return plan
    return dataclasses.replace(
        plan,
        throughput=plan.throughput * BEDROCK_PHASES,
        open_loop=plan.open_loop * BEDROCK_PHASES,
        streaming=plan.streaming * BEDROCK_PHASES,
    )


def choose_rows(peers: bool, with_candidates: bool, only: str | None) -> list[targets.Target]:
    """The run's rows: the default ones (plus LiteLLM, plus the candidates), or ``--only``'s.

    ``--only`` keeps the rows it names and their baselines (``direct`` always,
    ``bedrock-direct`` for ``fulcrum-bedrock``); a name the run does not know is a ValueError.
    A ``--candidates`` run compares stacks on the OpenAI path, so it has the Bedrock rows only
    when ``--only`` names them.
    """
    rows = targets.selected(peers, bedrock_wanted=not with_candidates or bool(only))
    if with_candidates:
        rows += candidates.TARGETS
    if not only:
        return rows
    names = {n.strip() for n in only.split(",") if n.strip()}
    known = [t.name for t in rows]
    unknown = sorted(names.difference(known))
    if unknown:
        raise ValueError(f"unknown row(s) {', '.join(unknown)}; this run has {', '.join(known)}")
    names |= {report.BASELINE} | {report.baseline_name(n) for n in names}
    return [t for t in rows if t.name in names]


def default_duration(quick: bool, with_candidates: bool) -> float:
    """Seconds per throughput phase when ``--duration`` is not given."""
    if quick:
        return QUICK_DURATION
    return CANDIDATES_DURATION if with_candidates else DEFAULT_DURATION


def default_rounds(quick: bool, with_candidates: bool) -> int:
    """Interleaved rounds when ``--rounds`` is not given."""
    if quick:
        return 1
    return CANDIDATES_ROUNDS if with_candidates else 2


def _pinning() -> tuple[int | None, int | None, str]:
    """Pin this process (load generator) to core 1; the proxies go to core 0."""
    available = procs.cores()
    if PROXY_CORE in available and LOAD_CORE in available:
        os.sched_setaffinity(0, {LOAD_CORE})
        return (
            PROXY_CORE,
            LOAD_CORE,
            f"system under test on core {PROXY_CORE}; load generator and upstream on core "
            f"{LOAD_CORE} (taskset / sched_setaffinity)",
        )
    return None, None, f"not pinned: only CPUs {available} available, numbers are indicative"


async def _check(base: str, work: loadgen.Workload) -> str | None:
    """One plain and one streaming request must succeed before a row is measured."""
    plain = await loadgen.closed_loop(work.url(base), work.body, 1, 15.0, max_requests=1)
    if plain.ok != 1:
        return f"plain request failed: {plain.first_error}"
    stream = await loadgen.stream_phase(base, work, 15.0, max_requests=1)
    if stream.ok != 1:
        return f"streaming failed: {stream.first_error}"
    return None


async def _warm_up(base: str, work: loadgen.Workload, plan: Plan) -> None:
    """At least ``plan.warmup`` seconds *and* WARMUP_REQUESTS requests (capped in time).

    Time alone is not enough: a slow gateway that imports code lazily on its first requests
    (LiteLLM does) would still be warming up when the measurement starts.
    """
    url, body = work.url(base), work.body
    started = time.monotonic()
    done = 0
    while time.monotonic() - started < WARMUP_MAX:
        res = await loadgen.closed_loop(url, body, 16, plan.warmup, max_requests=WARMUP_REQUESTS)
        done += res.ok
        if done >= WARMUP_REQUESTS and time.monotonic() - started >= plan.warmup:
            break
    await loadgen.stream_phase(base, work, plan.warmup / 2, max_requests=WARMUP_REQUESTS // 4)


async def _measure(
    base: str,
    work: loadgen.Workload,
    plan: Plan,
    server: procs.Server | None,
    row: report.Row,
) -> None:
    """Warm up, then the throughput, fixed-rate and streaming phases, filling ``row``."""
    url, body = work.url(base), work.body
    await _warm_up(base, work, plan)
    phases: list[loadgen.PhaseResult] = []
    for concurrency in report.CONCURRENCIES:
        cpu_before = procs.cpu_seconds(server.pid) if server else 0.0
        res = await loadgen.closed_loop(url, body, concurrency, plan.throughput)
        if server and concurrency == 64 and res.ok:
            row.cpu_us_per_req = (procs.cpu_seconds(server.pid) - cpu_before) / res.ok * 1e6
        row.rps[concurrency] = res.rps
        phases.append(res)
        await asyncio.sleep(0.2)
    capacity = max(row.rps.values())
    if capacity < plan.rate * OVERLOAD_MARGIN:
        # Its queue would only grow: latency would measure the backlog, not the gateway.
        row.overloaded_at = capacity
    else:
        fixed = await loadgen.open_loop(url, body, plan.rate, plan.open_loop)
        summary = fixed.summary()
        row.open_p50, row.open_p99, row.late_sends = summary.p50, summary.p99, fixed.late_sends
        phases.append(fixed)
    stream = await loadgen.stream_phase(base, work, plan.streaming)
    row.ttft_p50 = stream.ttft_summary().p50
    row.tail_p50 = stream.streaming_tail().p50
    phases.append(stream)
    row.errors = sum(p.errors for p in phases)
    row.first_error = next((p.first_error for p in phases if p.first_error), None)


def _emulator_ready(emulator: procs.Server) -> procs.Server | str:
    """The Bedrock emulator once it answers, or (stopped) why it did not start."""
    try:
        procs.wait_ready(emulator, targets.EMULATOR_READY_PATH, 30.0)
    except procs.StartError as exc:
        emulator.stop()
        print(f"[bench] the Bedrock emulator did not start: {exc}", flush=True)
        return f"the Bedrock emulator did not start: {exc}"
    return emulator


def _run_row(
    target: targets.Target,
    ctx: targets.Context,
    upstreams: dict[str, procs.Server | str],
    plan: Plan,
) -> report.Row:
    """Start, check, measure and stop one target; failures become an "unavailable" row.

    ``upstreams`` maps each upstream kind to its running server, or to why it is not running.
    """
    row = report.Row(name=target.name)
    print(f"[bench] {target.name}: starting", flush=True)
    server: procs.Server | None = None
    try:
        upstream = upstreams.get(target.upstream, f"no {target.upstream} upstream")
        if isinstance(upstream, str):
            raise procs.StartError(upstream)
        server = target.start(ctx)
        if server is not None:
            procs.wait_ready(server, target.ready_path, target.ready_timeout)
        base = server.url if server else upstream.url
        work = target.workload(ctx)
        problem = uvloop.run(_check(base, work))
        if problem:
            tail = server.log_tail() if server else upstream.log_tail()
            raise procs.StartError(problem + (f" (log: {tail[:200]})" if tail else ""))
        started = time.monotonic()
        foreign = procs.ForeignLoad()
        uvloop.run(_measure(base, work, plan_for(plan, target), server, row))
        row.foreign_cpu = foreign.share()
        if server is not None:
            mem = procs.memory(server.pid)
            row.peak_mb, row.rss_mb = mem.peak_mb, mem.rss_mb
        print(
            f"[bench] {target.name}: measured in {time.monotonic() - started:.0f}s "
            f"({_round_summary(row)})",
            flush=True,
        )
    except procs.StartError as exc:
        row.unavailable = str(exc).replace("|", "/").replace("\n", " ")[:300]
        print(f"[bench] {target.name}: unavailable: {row.unavailable}", flush=True)
    finally:
        if server is not None:
            server.stop()
    return row


def _round_summary(row: report.Row) -> str:
    """This round's headline figures, so a noisy round can be spotted in the log."""
    cpu = f"{row.cpu_us_per_req:.0f} µs/req" if row.cpu_us_per_req is not None else "—"
    ttft = f"{row.ttft_p50 * 1e3:.2f} ms" if row.ttft_p50 is not None else "—"
    other = f"{row.foreign_cpu:.0%}" if row.foreign_cpu is not None else "—"
    return f"c=64 {row.rps.get(64, 0.0):,.0f} req/s, CPU {cpu}, TTFT {ttft}, other CPU {other}"


def _run_rounds(
    wanted: list[targets.Target],
    ctx: targets.Context,
    upstreams: dict[str, procs.Server | str],
    plan: Plan,
    notes: list[str],
) -> list[report.Row]:
    """Rows in turn, ``plan.rounds`` times over, then each target's rounds combined."""
    measured: dict[str, list[report.Row]] = {t.name: [] for t in wanted}
    for number in range(1, plan.rounds + 1):
        if plan.rounds > 1:
            print(f"[bench] round {number}/{plan.rounds}", flush=True)
        for target in wanted:
            previous = measured[target.name]
            if previous and previous[0].unavailable:
                continue  # it failed to start once; do not pay its start-up timeout again
            previous.append(_run_row(target, ctx, upstreams, plan))
    rows = []
    for name, rounds in measured.items():
        failed = [r for r in rounds if r.unavailable]
        if failed and len(failed) < len(rounds):
            notes.append(f"{name}: {len(failed)} round(s) failed: {failed[0].unavailable}")
        rows.append(report.combine(rounds))
    return rows


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _versions(with_peers: bool) -> dict[str, str]:
    found: dict[str, str] = {}
    for package in ("aiohttp", "uvloop", "orjson", "botocore", "fulcrum"):
        try:
            found[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            found[package] = "not installed"
    if with_peers:
        found["litellm"] = peers.litellm_version(REPO_ROOT) or "not installed"
    return found


def _loadavg() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "unknown"


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="smoke run (< 40 s)")
    parser.add_argument(
        "--duration",
        type=float,
        help=f"seconds per throughput phase (default {DEFAULT_DURATION:g}, quick "
        f"{QUICK_DURATION:g}, candidates {CANDIDATES_DURATION:g})",
    )
    parser.add_argument(
        "--rounds",
        type=int,
        help="interleaved rounds per row, best kept (default 2, quick 1, candidates "
        f"{CANDIDATES_ROUNDS})",
    )
    parser.add_argument("--rate", type=float, default=200.0, help="fixed rate, req/s")
    parser.add_argument("--peers", action="store_true", help="add LiteLLM (from .venv-peers)")
    parser.add_argument(
        "--candidates",
        action="store_true",
        help="add the stack candidates (pass-through variants from .venv-candidates, Fulcrum "
        f"on asyncio / stdlib json) and their table; defaults {CANDIDATES_DURATION:g}s phases, "
        f"{CANDIDATES_ROUNDS} rounds",
    )
    parser.add_argument(
        "--only",
        help="comma-separated rows to run, e.g. passthrough,fulcrum-bedrock (their baselines, "
        "direct and bedrock-direct, are implied)",
    )
    parser.add_argument("--output", type=Path, default=RESULTS_DIR / "latest.md")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = _parse(argv)
    duration = args.duration or default_duration(args.quick, args.candidates)
    rounds = args.rounds or default_rounds(args.quick, args.candidates)
    if not 0.2 <= duration <= 120 or not 1 <= rounds <= 10 or not 1 <= args.rate <= 5000:
        print("bench: need 0.2 <= --duration <= 120, 1 <= --rounds <= 10, 1 <= --rate <= 5000")
        return 2
    plan = make_plan(duration, args.rate, rounds)
    proxy_core, load_core, pinning = _pinning()
    try:
        rows_wanted = choose_rows(args.peers, args.candidates, args.only)
    except ValueError as exc:
        print(f"bench: {exc}")
        return 2
    with_bedrock = any(t.upstream == targets.BEDROCK_UPSTREAM for t in rows_wanted)
    durations = plan.describe()
    if with_bedrock and BEDROCK_PHASES != 1.0:
        durations += (
            f"; the Bedrock rows measure each phase {BEDROCK_PHASES:g}x as long (same warm-up)"
        )
    if args.quick:
        durations += " — quick smoke run"
    elif args.candidates and not (args.duration or args.rounds):
        durations += (
            f" — candidates run: shorter phases ({CANDIDATES_DURATION:g}s instead of "
            f"{DEFAULT_DURATION:g}s) and {CANDIDATES_ROUNDS} rounds for every row, the reference "
            "rows included, so that all rows are measured alike and the run stays near 6 minutes"
        )
    info = report.RunInfo(
        date=dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC"),
        machine=platform.machine(),
        cpu=f"{_cpu_model()} ({os.cpu_count()} CPUs)",
        python=platform.python_version(),
        versions=_versions(args.peers),
        durations=durations,
        pinning=pinning,
        load_before=_loadavg(),
        load_after="",
        rate=plan.rate,
        candidates_venv=candidates.describe_venv(REPO_ROOT) if args.candidates else "",
    )
    print(f"[bench] {plan.describe()}; {pinning}", flush=True)
    rows: list[report.Row] = []
    with tempfile.TemporaryDirectory(prefix="fulcrum-bench-") as tmp:
        log_dir = RESULTS_DIR / "logs"
        up_port = procs.free_port()
        upstream = procs.start(
            "upstream",
            [sys.executable, "-m", "bench.upstream", "--port", str(up_port), "--model", MODEL],
            up_port,
            log_dir,
            load_core,
        )
        emulator: procs.Server | None = None
        if with_bedrock:  # both upstreams start at once: their imports overlap
            em_port = procs.free_port()
            emulator = procs.start(
                "bedrock-emulator", targets.emulator_argv(em_port), em_port, log_dir, load_core
            )
        try:
            procs.wait_ready(upstream, "/health", 20.0)
            upstreams: dict[str, procs.Server | str] = {targets.OPENAI_UPSTREAM: upstream}
            if emulator is not None:
                ready = upstreams[targets.BEDROCK_UPSTREAM] = _emulator_ready(emulator)
                if isinstance(ready, str):
                    emulator = None  # already stopped; its rows will say why
            ctx = targets.Context(
                upstream_url=upstream.url,
                model=MODEL,
                work_dir=Path(tmp),
                log_dir=log_dir,
                proxy_core=proxy_core,
                repo_root=REPO_ROOT,
                bedrock_url=emulator.url if emulator else None,
            )
            rows = _run_rounds(rows_wanted, ctx, upstreams, plan, info.notes)
            if emulator is not None:
                info.bedrock_notes += bedrock.cost_notes(emulator.url)
        except procs.StartError as exc:
            print(f"bench: the upstream did not start: {exc}", file=sys.stderr)
            return 1
        finally:
            if emulator is not None:
                emulator.stop()
            upstream.stop()
    info.load_after = _loadavg()
    if proxy_core is None:
        info.notes.append("cores were not pinned; rows compete with the load generator")
    if args.candidates:
        info.notes += candidates.notes(REPO_ROOT)
        info.notes.append(candidates.json_note())
    stacks = candidates.stacks_of([r.name for r in rows]) if args.candidates else {}
    text = report.render(info, rows, stacks)
    print("\n" + text)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(text)
    raw = {
        "info": dataclasses.asdict(info),
        "rows": [dataclasses.asdict(r) for r in rows],
        "stacks": stacks,
    }
    args.output.with_suffix(".json").write_text(json.dumps(raw, indent=2, default=str))
    print(f"[bench] written to {args.output}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
