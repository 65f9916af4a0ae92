"""Stack candidates: the orjson shim, the ASGI relay's helpers, the rows and their table."""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator
from typing import Any

import orjson
import pytest
from aiohttp.test_utils import TestClient, TestServer
from bench import candidates, jsonshim, run, stacks, upstream
from bench.report import Row, RunInfo, candidates_table, render, targets_table

# --- the orjson shim -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value",
    [
        {"model": "m", "messages": [{"role": "user", "content": "héllo ✓"}], "n": 1.5},
        [1, None, True, "a\nb", {"nested": []}],
        "plain",
    ],
)
def test_shim_dumps_like_orjson(value: Any) -> None:
    assert jsonshim.dumps(value) == orjson.dumps(value)
    assert jsonshim.loads(orjson.dumps(value)) == value


def test_shim_sorts_keys_and_uses_default() -> None:
    value = {"b": 1, "a": {"d": 2, "c": 3}}
    assert jsonshim.OPT_SORT_KEYS == orjson.OPT_SORT_KEYS
    expected = orjson.dumps(value, option=orjson.OPT_SORT_KEYS)
    assert jsonshim.dumps(value, option=jsonshim.OPT_SORT_KEYS) == expected
    assert jsonshim.dumps({"s": object()}, default=lambda _: "x") == b'{"s":"x"}'


@pytest.mark.parametrize("data", [b'{"a": [1, 2]}', bytearray(b'{"a":[1,2]}'), '{"a":[1,2]}'])
def test_shim_loads_bytes_and_text(data: bytes | bytearray | str) -> None:
    assert jsonshim.loads(data) == {"a": [1, 2]}
    assert jsonshim.loads(memoryview(b'{"a":[1,2]}')) == {"a": [1, 2]}


@pytest.mark.parametrize("bad", [b"{", b"\xff\xfe", b"", b"[1,]"])
def test_shim_raises_json_decode_error_like_orjson(bad: bytes) -> None:
    with pytest.raises(orjson.JSONDecodeError):
        orjson.loads(bad)
    with pytest.raises(jsonshim.JSONDecodeError) as caught:
        jsonshim.loads(bad)
    assert isinstance(caught.value, ValueError)


def test_shim_installs_only_over_an_unimported_orjson(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(RuntimeError):
        jsonshim.install()  # the real orjson is loaded in this process
    monkeypatch.delitem(sys.modules, "orjson")
    jsonshim.install()
    assert sys.modules["orjson"] is jsonshim


# --- the ASGI relay --------------------------------------------------------------------------


def test_request_headers_drop_hop_by_hop() -> None:
    raw = [
        (b"host", b"x"),
        (b"content-type", b"application/json"),
        (b"connection", b"keep-alive"),
        (b"content-length", b"2"),
        (b"x-a", b"1"),
        (b"x-a", b"2"),
    ]
    assert stacks.request_headers(raw) == [
        ("content-type", "application/json"),
        ("x-a", "1"),
        ("x-a", "2"),
    ]


def test_response_headers_keep_content_length_only() -> None:
    raw = ((b"Content-Length", b"5"), (b"Transfer-Encoding", b"chunked"), (b"X-Id", b"7"))
    assert stacks.response_headers(raw) == [(b"Content-Length", b"5"), (b"X-Id", b"7")]


def test_target_of_keeps_the_raw_path_and_query() -> None:
    assert stacks.target_of({"raw_path": b"/v1/a%2Fb", "path": "/v1/a/b"}) == "/v1/a%2Fb"
    scope = {"path": "/health", "query_string": b"x=1"}
    assert stacks.target_of(scope) == "/health?x=1"


@pytest.fixture
async def origin() -> AsyncIterator[str]:
    async with TestClient(TestServer(upstream.build_app("m", first_chunk_gap=0))) as client:
        yield str(client.make_url("/")).rstrip("/")


async def test_asgi_relay_streams_the_upstream_bytes(origin: str) -> None:
    relay = stacks.AsgiRelay(origin)
    await relay.open()
    body = orjson.dumps({"model": "m", "stream": True})
    incoming = [
        {"type": "http.request", "body": body[:5], "more_body": True},
        {"type": "http.request", "body": body[5:], "more_body": False},
    ]
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return incoming.pop(0)

    async def send(message: Any) -> None:
        sent.append(dict(message))

    scope = {
        "type": "http",
        "method": "POST",
        "path": "/v1/chat/completions",
        "raw_path": b"/v1/chat/completions",
        "query_string": b"",
        "headers": [(b"content-type", b"application/json"), (b"host", b"proxy")],
    }
    try:
        await relay(scope, receive, send)
    finally:
        await relay.close()
    assert sent[0]["type"] == "http.response.start"
    assert sent[0]["status"] == 200
    assert sent[-1] == {"type": "http.response.body", "body": b"", "more_body": False}
    streamed = b"".join(m["body"] for m in sent[1:])
    assert streamed.count(b"data:") == upstream.STREAM_CHUNKS + 1
    assert streamed.endswith(b"data: [DONE]\n\n")


async def test_asgi_relay_refuses_before_open() -> None:
    relay = stacks.AsgiRelay("http://127.0.0.1:9")

    async def receive() -> dict[str, Any]:
        raise AssertionError("not reached")

    async def send(_: Any) -> None:
        raise AssertionError("not reached")

    with pytest.raises(RuntimeError):
        await relay({"type": "http"}, receive, send)


# --- rows, run defaults and the table --------------------------------------------------------


def test_every_candidate_row_has_a_stack() -> None:
    names = [t.name for t in candidates.TARGETS]
    assert len(set(names)) == len(names)
    assert set(names) <= set(candidates.STACKS)
    assert {"passthrough", "fulcrum"} <= set(candidates.STACKS)
    assert list(candidates.stacks_of(["direct", "fulcrum", "passthrough"])) == [
        "fulcrum",
        "passthrough",
    ]


def test_granian_serves_the_asgi_factory() -> None:
    argv = candidates.granian_argv("/venv/bin/python", 8123)
    assert argv[:3] == ["/venv/bin/python", "-m", "granian"]
    assert argv[argv.index("--interface") + 1] == "asgi"
    assert argv[argv.index("--workers") + 1] == "1"
    assert argv[argv.index("--port") + 1] == "8123"
    assert argv[-2:] == ["--factory", "bench.stacks:asgi_app_from_env"]


def test_candidates_run_uses_shorter_phases_and_more_rounds() -> None:
    assert run.default_duration(quick=False, with_candidates=False) == run.DEFAULT_DURATION
    assert run.default_duration(quick=False, with_candidates=True) == run.CANDIDATES_DURATION
    assert run.default_duration(quick=True, with_candidates=True) == run.QUICK_DURATION
    assert run.default_rounds(quick=False, with_candidates=True) == run.CANDIDATES_ROUNDS
    assert run.default_rounds(quick=True, with_candidates=True) == 1


def _row(name: str, scale: float, **extra: object) -> Row:
    row = Row(
        name=name,
        rps={1: 1000 / scale, 16: 2000 / scale, 64: 2000 / scale},
        cpu_us_per_req=100.0 * scale,
        open_p50=0.001 * scale,
        open_p99=0.002 * scale,
        ttft_p50=0.001 * scale,
        tail_p50=0.006 * scale,
        peak_mb=50.0 * scale,
        rss_mb=45.0,
        foreign_cpu=0.02,
    )
    for key, value in extra.items():
        setattr(row, key, value)
    return row


def _rows() -> list[Row]:
    return [
        _row("direct", 1.0),
        _row("passthrough", 1.5),
        _row("pt-fast", 1.25),
        _row("fulcrum-x", 2.0),
        Row("pt-missing", unavailable="not installed"),
    ]


STACKS = {
    "passthrough": ("aiohttp", "aiohttp", "uvloop", "—"),
    "pt-fast": ("s", "c", "l", "—"),
    "fulcrum-x": ("aiohttp", "aiohttp", "asyncio", "orjson"),
    "pt-missing": ("g", "c", "l", "—"),
}


def test_candidates_table_is_relative_to_passthrough() -> None:
    lines = candidates_table(_rows(), STACKS)
    header = lines[0]
    assert not any(line.startswith("| direct") for line in lines)
    by_name = {line.split(" | ")[0].removeprefix("| "): line for line in lines[2:]}
    assert "1,333 (ref.)" in by_name["passthrough"]
    # pt-fast: 1600 req/s vs 1333; added p50 0.25 ms vs 0.5 ms; CPU 125 vs 150 µs.
    fast = by_name["pt-fast"]
    assert "| s | c | l | — |" in fast
    assert "1,600 (120%)" in fast
    assert "250 (0.50x)" in fast
    assert "125 (0.83x)" in fast
    assert "62.5 (0.83x)" in fast
    # fulcrum-x: per-chunk 95.2 µs vs passthrough's 47.6 µs, shown as a difference.
    assert "95.2 (+47.6)" in by_name["fulcrum-x"]
    assert "unavailable: not installed" in by_name["pt-missing"]
    for line in lines[1:]:
        assert line.count("|") == header.count("|")


def test_candidates_table_has_no_ratio_for_a_negative_overhead() -> None:
    rows = [_row("direct", 1.0), _row("passthrough", 1.5), _row("pt-odd", 0.8)]
    odd = next(
        line for line in candidates_table(rows, STACKS | {"pt-odd": ("a",) * 4}) if "odd" in line
    )
    assert "-200 (n/a)" in odd


def test_pass_through_candidates_are_not_held_to_gateway_targets() -> None:
    names = [line.split(" | ")[0] for line in targets_table(_rows())[2:]]
    assert names == ["| fulcrum-x"]


def test_render_adds_the_candidates_section_only_when_asked() -> None:
    info = RunInfo(
        date="d",
        machine="m",
        cpu="c",
        python="3.11",
        versions={},
        durations="short",
        pinning="pinned",
        load_before="0",
        load_after="0",
        rate=200,
        candidates_venv=".venv-candidates: httpx 1",
    )
    with_table = render(info, _rows(), STACKS)
    assert "## Stack candidates" in with_table
    assert "- stack candidates from .venv-candidates: httpx 1" in with_table
    info.candidates_venv = ""
    without = render(info, _rows())
    assert "## Stack candidates" not in without
    assert "stack candidates from" not in without


async def test_httpx_app_relays_when_httpx_is_installed(origin: str) -> None:
    pytest.importorskip("httpx")
    async with TestClient(TestServer(stacks.httpx_app(origin))) as proxy:
        resp = await proxy.post("/v1/chat/completions", data=b'{"model":"m"}')
        assert resp.status == 200
        assert (await resp.json())["object"] == "chat.completion"
