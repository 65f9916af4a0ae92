"""The Bedrock rows: workloads, the emulator as an upstream, the gateway config, the report."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import orjson
import pytest
import yaml
from aiohttp.test_utils import TestServer
from bench import bedrock, loadgen, procs, run, targets
from bench.report import (
    Row,
    RunInfo,
    bedrock_table,
    derive,
    render,
    results_table,
    targets_table,
)

from fulcrum.config import load_config
from fulcrum.sim.bedrock.app import BedrockSim
from fulcrum.sim.bedrock.settings import Settings

MODEL_ID = targets.BEDROCK_MODEL

# --- what the load generator sends -----------------------------------------------------------


def test_bedrock_workload_is_converse_on_the_encoded_model_id() -> None:
    work = loadgen.bedrock_workload(MODEL_ID)
    assert work.path == "/model/anthropic.claude-3-haiku-20240307-v1%3A0/converse"
    assert work.stream_path == "/model/anthropic.claude-3-haiku-20240307-v1%3A0/converse-stream"
    assert orjson.loads(work.body) == {
        "messages": [{"role": "user", "content": [{"text": "hi"}]}],
        "inferenceConfig": {"maxTokens": 16},
    }
    assert orjson.loads(work.stream_body)["inferenceConfig"] == {"maxTokens": 64}
    assert (work.stream_marker, work.stream_min) == (b"contentBlockDelta", 64)
    # aiohttp must send the path as written: yarl would turn %3A back into ":".
    assert work.url("http://127.0.0.1:1", stream=True).raw_path == work.stream_path


def test_openai_workloads_differ_only_in_the_streaming_max_tokens() -> None:
    usual = loadgen.openai_workload("bench-model")
    bedrock_like = loadgen.openai_workload("bench-model", stream_max_tokens=64)
    assert usual.body == bedrock_like.body == loadgen.chat_body("bench-model")
    assert orjson.loads(usual.stream_body)["max_tokens"] == 16
    assert orjson.loads(bedrock_like.stream_body) == {
        "model": "bench-model",
        "messages": [{"role": "user", "content": "hi"}],
        "max_tokens": 64,
        "stream": True,
    }
    assert (usual.stream_marker, usual.stream_min) == (b"data:", loadgen.STREAM_DATA_LINES)


def _ctx(tmp_path: Path, bedrock_url: str | None = "http://127.0.0.1:9") -> targets.Context:
    return targets.Context(
        upstream_url="http://127.0.0.1:8",
        model="bench-model",
        work_dir=tmp_path,
        log_dir=tmp_path,
        proxy_core=None,
        repo_root=tmp_path,
        bedrock_url=bedrock_url,
    )


def test_rows_send_their_own_workloads(tmp_path: Path) -> None:
    ctx = _ctx(tmp_path)
    assert targets.FULCRUM.workload(ctx) == loadgen.openai_workload("bench-model")
    assert targets.BEDROCK_DIRECT.workload(ctx) == loadgen.bedrock_workload(MODEL_ID)
    gateway = targets.FULCRUM_BEDROCK.workload(ctx)
    assert orjson.loads(gateway.stream_body)["max_tokens"] == loadgen.BEDROCK_STREAM_TOKENS
    assert orjson.loads(gateway.body)["max_tokens"] == 16
    assert {t.upstream for t in targets.BEDROCK_ROWS} == {targets.BEDROCK_UPSTREAM}


def test_bedrock_rows_need_the_emulator(tmp_path: Path) -> None:
    ctx = _ctx(tmp_path, bedrock_url=None)
    with pytest.raises(procs.StartError, match="emulator is not running"):
        targets.BEDROCK_DIRECT.start(ctx)


# --- configuration -----------------------------------------------------------------------------


def test_fulcrum_bedrock_config_is_a_valid_gateway_config(tmp_path: Path) -> None:
    raw = targets.fulcrum_bedrock_config(8123, "http://127.0.0.1:9010", "bench-model")
    path = targets.write_yaml(tmp_path / "f.yaml", raw)
    deployment = yaml.safe_load(path.read_text())["deployments"]["bench-bedrock"]
    assert deployment["provider"] == "bedrock"
    assert deployment["region"] == "us-east-1"
    assert deployment["model"] == MODEL_ID
    assert deployment["endpoint_url"] == "http://127.0.0.1:9010"
    assert deployment["auth"] == {
        "access_key_id": "AKIDFULCRUMSIM",
        "secret_access_key": "fulcrum-sim-secret-access-key-not-a-secret",
    }
    config = load_config(path)  # Fulcrum's own loader accepts it
    route = config.models["bench-model"]  # a plain list, or a route object holding it
    assert getattr(route, "deployments", route) == ["bench-bedrock"]


def test_emulator_runs_without_latency_or_auth_and_with_64_token_replies() -> None:
    argv = targets.emulator_argv(9010)
    assert argv[1:5] == ["-m", "fulcrum.cli", "sim", "bedrock"]
    assert {"--no-latency", "--no-auth"} <= set(argv)
    assert argv[argv.index("--port") + 1] == "9010"
    assert argv[argv.index("--min-output-tokens") + 1] == "64"
    assert argv[argv.index("--max-output-tokens") + 1] == "64"


# --- the load generator against the emulator, in-process ---------------------------------------


@pytest.fixture
async def emulator() -> AsyncIterator[str]:
    settings = Settings(auth=False, no_latency=True, min_output_tokens=64, max_output_tokens=64)
    async with TestServer(BedrockSim(settings).main_app()) as server:
        yield str(server.make_url("")).rstrip("/")


async def test_loadgen_drives_converse_and_reads_converse_stream(emulator: str) -> None:
    work = loadgen.bedrock_workload(MODEL_ID)
    plain = await loadgen.closed_loop(work.url(emulator), work.body, 2, 5.0, max_requests=4)
    assert (plain.ok, plain.errors) == (4, 0)
    stream = await loadgen.stream_phase(emulator, work, 5.0, max_requests=2)
    assert (stream.ok, stream.errors) == (2, 0), stream.first_error
    assert all(0 < f <= t for f, t in zip(stream.ttfts, stream.latencies, strict=True))


async def test_a_short_bedrock_stream_is_an_error(emulator: str) -> None:
    work = loadgen.bedrock_workload(MODEL_ID)
    short = loadgen.Workload(
        work.path, work.body, work.stream_path, loadgen.converse_body(16), work.stream_marker, 64
    )
    res = await loadgen.stream_phase(emulator, short, 5.0, max_requests=1)
    assert (res.ok, res.errors) == (0, 1)
    assert res.first_error is not None and "16 'contentBlockDelta'" in res.first_error


async def test_the_path_pieces_can_be_timed(emulator: str) -> None:
    work = loadgen.bedrock_workload(MODEL_ID)
    converse = await loadgen.closed_loop(work.url(emulator), work.body, 1, 5.0, max_requests=1)
    assert converse.ok == 1
    samples = await _samples(emulator)
    costs = await asyncio.to_thread(bedrock.measure, samples, 5)  # it runs its own loop
    assert costs.events == 68  # messageStart, 64 deltas, contentBlockStop, messageStop, metadata
    assert min(costs.sign, costs.request, costs.response, costs.decode, costs.encode) > 0
    assert "RequestSigner.headers" in bedrock.note(costs)


async def _samples(base: str) -> bedrock.Samples:
    work = loadgen.bedrock_workload(MODEL_ID)
    async with aiohttp.ClientSession() as session:
        async with session.post(work.url(base), data=work.body) as resp:
            converse = await resp.read()
        async with session.post(work.url(base, stream=True), data=work.stream_body) as resp:
            stream = await resp.read()
    return bedrock.Samples(converse=converse, stream=stream)


def test_cost_notes_never_fail() -> None:
    (note,) = bedrock.cost_notes("http://127.0.0.1:1")
    assert note.startswith("the Bedrock path's pieces could not be timed")


# --- the run: which rows, how long --------------------------------------------------------------


def _names(rows: list[targets.Target]) -> list[str]:
    return [t.name for t in rows]


def test_default_run_has_the_bedrock_rows_after_the_openai_ones() -> None:
    assert _names(run.choose_rows(False, False, None)) == [
        "direct",
        "passthrough",
        "fulcrum",
        "fulcrum-routed",
        "fulcrum-tenancy",
        "fulcrum-audit",
        "fulcrum-cache",
        "bedrock-direct",
        "fulcrum-bedrock",
    ]
    assert "fulcrum-bedrock" not in _names(run.choose_rows(False, True, None))


def test_only_brings_each_rows_baseline() -> None:
    assert _names(run.choose_rows(False, False, "fulcrum-bedrock")) == [
        "direct",
        "bedrock-direct",
        "fulcrum-bedrock",
    ]
    assert _names(run.choose_rows(False, False, "bedrock-direct")) == ["direct", "bedrock-direct"]
    chosen = _names(run.choose_rows(False, True, "fulcrum-stdjson,fulcrum-bedrock"))
    assert chosen == ["direct", "bedrock-direct", "fulcrum-bedrock", "fulcrum-stdjson"]
    with pytest.raises(ValueError, match="unknown row"):
        run.choose_rows(False, False, "fulcrum-bedrok")


def test_bedrock_rows_measure_shorter_phases() -> None:
    plan = run.make_plan(4.0, 200.0, 2)
    assert run.plan_for(plan, targets.FULCRUM) == plan
    short = run.plan_for(plan, targets.FULCRUM_BEDROCK)
    assert short.throughput == plan.throughput * run.BEDROCK_PHASES
    assert short.open_loop == plan.open_loop * run.BEDROCK_PHASES
    assert short.streaming == plan.streaming * run.BEDROCK_PHASES
    assert (short.warmup, short.rate, short.rounds) == (plan.warmup, plan.rate, plan.rounds)


# --- the report ----------------------------------------------------------------------------------


def _row(name: str, scale: float = 1.0, **extra: object) -> Row:
    row = Row(
        name=name,
        rps={1: 1000 / scale, 16: 2000 / scale, 64: 2000 / scale},
        cpu_us_per_req=None if name.endswith("direct") else 500.0 * scale,
        open_p50=0.001 * scale,
        open_p99=0.002 * scale,
        ttft_p50=0.001 * scale,
        tail_p50=0.006 * scale,
        peak_mb=None if name.endswith("direct") else 60.0 * scale,
        rss_mb=None if name.endswith("direct") else 55.0,
    )
    for key, value in extra.items():
        setattr(row, key, value)
    return row


def _rows() -> list[Row]:
    return [
        _row("direct"),
        _row("passthrough", scale=1.5),
        _row("fulcrum", scale=2.0),
        _row("bedrock-direct", scale=0.5),
        _row("fulcrum-bedrock", scale=3.0),
    ]


def _info() -> RunInfo:
    return RunInfo(
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
        bedrock_notes=["signing 100 µs"],
    )


def test_derive_adds_the_whole_stream_overhead() -> None:
    d = derive(_row("x", scale=2.0), _row("direct"))
    assert d.stream_overhead == pytest.approx(0.007)


def test_fulcrum_bedrock_overheads_are_against_bedrock_direct() -> None:
    lines = results_table(_rows(), 200)
    row = next(line for line in lines if line.startswith("| fulcrum-bedrock"))
    cells = [c.strip() for c in row.strip("|").split("|")]
    # added p50 = 3 ms - 0.5 ms; TTFT overhead the same; per-chunk = (18 - 3) ms / 63.
    assert cells[7] == "2,500"
    assert cells[10] == "2,500"
    assert cells[11] == f"{0.015 / 63 * 1e6:,.1f}"
    base = next(line for line in lines if line.startswith("| bedrock-direct"))
    assert base.count("(baseline)") == 4


def test_bedrock_rows_have_no_targets() -> None:
    lines = targets_table(_rows())
    assert not any("bedrock" in line for line in lines)
    assert any(line.startswith("| fulcrum |") for line in lines)


def test_bedrock_table_sets_both_paths_side_by_side() -> None:
    lines = bedrock_table(_rows())
    openai = next(line for line in lines if line.startswith("| OpenAI"))
    bedrock_line = next(line for line in lines if line.startswith("| Bedrock |"))
    delta = next(line for line in lines if line.startswith("| Bedrock - OpenAI"))
    assert "`fulcrum` vs `direct`" in openai and "500 (50%)" in openai
    assert "`fulcrum-bedrock` vs `bedrock-direct`" in bedrock_line
    assert "333 (17%)" in bedrock_line  # c=1: 1000/3 against 1000/0.5
    # CPU 1,500 vs 1,000 µs/req; added p50 2,500 vs 1,000 µs; stream overhead 17,500 vs 7,000.
    assert "| +500 | +1,500 |" in delta
    assert "+10,500" in delta


def test_bedrock_table_says_what_is_missing() -> None:
    rows = [_row("direct"), Row("bedrock-direct", unavailable="boom"), _row("fulcrum-bedrock")]
    lines = bedrock_table(rows)
    assert any("not measured (`fulcrum` not in this run)" in line for line in lines)
    assert any("unavailable: `bedrock-direct`" in line for line in lines)
    assert not any(line.startswith("| Bedrock - OpenAI") for line in lines)


def test_render_has_the_bedrock_section_only_with_bedrock_rows() -> None:
    text = render(_info(), _rows())
    assert "## Bedrock path" in text
    assert "SigV4" in text and "event-stream decoding" in text and "SSE encoding" in text
    assert "- signing 100 µs" in text
    assert "against `bedrock-direct`, not `direct`" in text
    header = next(line for line in text.splitlines() if line.startswith("| path |"))
    delta = next(line for line in text.splitlines() if line.startswith("| Bedrock - OpenAI"))
    assert header.count("|") == delta.count("|")
    assert "## Bedrock path" not in render(_info(), _rows()[:3])
