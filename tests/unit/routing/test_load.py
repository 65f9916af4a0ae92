"""vLLM load signals: metrics parsing, least-busy score, saturation, fail-back, real scrapes."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Awaitable, Callable

import aiohttp
import pytest
from aiohttp import web

from fulcrum.routing.load import Hysteresis, LoadTracker, VllmLoad, parse_vllm_metrics, scrape


class FakeClock:
    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


# A vLLM exposition with two engines (data parallel) and the series we do not read.
TWO_ENGINES = """\
# HELP vllm:num_requests_running Number of requests in model execution batches.
# TYPE vllm:num_requests_running gauge
vllm:num_requests_running{engine="0",model_name="llama"} 3.0
vllm:num_requests_running{engine="1",model_name="llama"} 4.0
# HELP vllm:num_requests_waiting Number of requests waiting to be processed.
# TYPE vllm:num_requests_waiting gauge
vllm:num_requests_waiting{engine="0",model_name="llama"} 5.0
vllm:num_requests_waiting{engine="1",model_name="llama"} 1.0
# HELP vllm:kv_cache_usage_perc KV-cache usage. 1 means 100 percent usage.
# TYPE vllm:kv_cache_usage_perc gauge
vllm:kv_cache_usage_perc{engine="0",model_name="llama"} 0.25
vllm:kv_cache_usage_perc{engine="1",model_name="llama"} 0.75
# HELP vllm:gpu_cache_usage_perc GPU KV-cache usage. DEPRECATED.
# TYPE vllm:gpu_cache_usage_perc gauge
vllm:gpu_cache_usage_perc{engine="0",model_name="llama"} 0.1
vllm:gpu_cache_usage_perc{engine="1",model_name="llama"} 0.2
# HELP vllm:prompt_tokens_total Number of prefill tokens processed.
# TYPE vllm:prompt_tokens_total counter
vllm:prompt_tokens_total{engine="0",model_name="llama"} 12345.0
# HELP vllm:e2e_request_latency_seconds Histogram of e2e request latency in seconds.
# TYPE vllm:e2e_request_latency_seconds histogram
vllm:e2e_request_latency_seconds_bucket{engine="0",le="1.0",model_name="llama"} 2.0
vllm:e2e_request_latency_seconds_bucket{engine="0",le="+Inf",model_name="llama"} 3.0
vllm:e2e_request_latency_seconds_count{engine="0",model_name="llama"} 3.0
vllm:e2e_request_latency_seconds_sum{engine="0",model_name="llama"} 4.5
"""


# ------------------------------------------------------------------ parse_vllm_metrics


def test_parse_sums_counts_over_engines_and_takes_the_fullest_kv_cache() -> None:
    assert parse_vllm_metrics(TWO_ENGINES) == VllmLoad(
        running=7.0, waiting=6.0, kv_cache_usage=0.75
    )


def test_parse_falls_back_to_the_legacy_kv_cache_gauge() -> None:
    text = (
        "# TYPE vllm:gpu_cache_usage_perc gauge\n"
        'vllm:gpu_cache_usage_perc{model_name="m"} 0.4\n'
        'vllm:num_requests_waiting{model_name="m"} 2\n'
    )
    assert parse_vllm_metrics(text) == VllmLoad(running=0.0, waiting=2.0, kv_cache_usage=0.4)


def test_parse_missing_series_read_as_zero() -> None:
    assert parse_vllm_metrics("# nothing here\nother_metric 7\n") == VllmLoad(0.0, 0.0, 0.0)


def test_parse_ignores_non_finite_samples() -> None:
    text = 'vllm:num_requests_waiting{engine="0"} NaN\nvllm:num_requests_waiting{engine="1"} 2\n'
    assert parse_vllm_metrics(text) == VllmLoad(0.0, 2.0, 0.0)


@pytest.mark.parametrize(
    "text",
    [
        "<html><body>Bad gateway</body></html>",
        'vllm:num_requests_waiting{model_name="m" 3\n',
        "vllm:num_requests_waiting notanumber\n",
    ],
)
def test_parse_unparsable_gives_none(text: str) -> None:
    assert parse_vllm_metrics(text) is None


# ------------------------------------------------------------------ LoadTracker


def test_in_flight_counts_begin_and_end_and_never_goes_negative() -> None:
    tracker = LoadTracker()
    tracker.begin("a")
    tracker.begin("a")
    tracker.end("a")
    assert tracker.in_flight("a") == 1
    tracker.end("a")
    tracker.end("a")  # an unmatched end must not make the next request look free
    assert tracker.in_flight("a") == 0
    tracker.begin("a")
    assert tracker.in_flight("a") == 1


def test_score_is_in_flight_plus_waiting_plus_weighted_running() -> None:
    tracker = LoadTracker(running_weight=0.5, clock=FakeClock())
    tracker.begin("a")
    tracker.begin("a")
    tracker.update("a", VllmLoad(running=4.0, waiting=3.0, kv_cache_usage=0.9))
    assert tracker.score("a") == 2 + 3.0 + 0.5 * 4.0
    assert tracker.score("unknown") == 0.0


def test_least_busy_prefers_the_replica_with_the_shorter_queue() -> None:
    tracker = LoadTracker(clock=FakeClock())
    tracker.update("a", VllmLoad(running=8.0, waiting=10.0, kv_cache_usage=0.9))
    tracker.update("b", VllmLoad(running=8.0, waiting=0.0, kv_cache_usage=0.5))
    assert min(["a", "b"], key=tracker.score) == "b"


def test_a_stale_scrape_is_ignored() -> None:
    clock = FakeClock()
    tracker = LoadTracker(stale_after=10.0, clock=clock)
    tracker.update("a", VllmLoad(running=2.0, waiting=50.0, kv_cache_usage=1.0))
    clock.advance(10.0)
    assert tracker.latest("a") is not None
    assert tracker.saturated("a", max_waiting=8)
    clock.advance(0.1)
    assert tracker.latest("a") is None
    assert tracker.score("a") == 0.0
    assert not tracker.saturated("a", max_waiting=8)


def test_a_new_scrape_replaces_the_old_one() -> None:
    clock = FakeClock()
    tracker = LoadTracker(stale_after=10.0, clock=clock)
    tracker.update("a", VllmLoad(running=0.0, waiting=50.0, kv_cache_usage=1.0))
    clock.advance(8.0)
    tracker.update("a", VllmLoad(running=0.0, waiting=1.0, kv_cache_usage=0.2))
    clock.advance(8.0)  # 16 s after the first scrape, 8 s after the second
    assert tracker.score("a") == 1.0


def test_saturated_only_above_the_bound() -> None:
    tracker = LoadTracker(clock=FakeClock())
    tracker.update("a", VllmLoad(running=16.0, waiting=8.0, kv_cache_usage=0.95))
    assert not tracker.saturated("a", max_waiting=8)
    assert tracker.saturated("a", max_waiting=7)
    assert not tracker.saturated("never-scraped", max_waiting=0)


# ------------------------------------------------------------------ Hysteresis


def test_unobserved_and_good_deployments_are_eligible() -> None:
    hysteresis = Hysteresis(clock=FakeClock())
    assert hysteresis.eligible("a")
    hysteresis.observe("a", True)
    assert hysteresis.eligible("a")


def test_one_bad_observation_makes_it_ineligible_at_once() -> None:
    hysteresis = Hysteresis(clock=FakeClock())
    hysteresis.observe("a", False)
    assert not hysteresis.eligible("a")
    assert hysteresis.eligible("b")


def test_recovery_needs_the_good_streak_even_after_the_hold() -> None:
    clock = FakeClock()
    hysteresis = Hysteresis(recover_after=3, min_hold=10.0, clock=clock)
    hysteresis.observe("a", False)
    clock.advance(60.0)
    hysteresis.observe("a", True)
    hysteresis.observe("a", True)
    assert not hysteresis.eligible("a")
    hysteresis.observe("a", True)
    assert hysteresis.eligible("a")


def test_recovery_needs_the_hold_even_after_the_good_streak() -> None:
    clock = FakeClock()
    hysteresis = Hysteresis(recover_after=3, min_hold=10.0, clock=clock)
    hysteresis.observe("a", False)
    for _ in range(5):
        clock.advance(1.0)
        hysteresis.observe("a", True)
    assert not hysteresis.eligible("a")
    clock.advance(4.9)
    assert not hysteresis.eligible("a")
    clock.advance(0.1)  # 10 s after the bad observation, no new observation needed
    assert hysteresis.eligible("a")


def test_a_bad_observation_restarts_streak_and_hold() -> None:
    clock = FakeClock()
    hysteresis = Hysteresis(recover_after=2, min_hold=10.0, clock=clock)
    hysteresis.observe("a", False)
    clock.advance(9.0)
    hysteresis.observe("a", True)
    hysteresis.observe("a", False)  # flapping: the clock starts again here
    hysteresis.observe("a", True)
    clock.advance(5.0)  # 14 s after the first bad one, 5 s after the last
    hysteresis.observe("a", True)
    assert not hysteresis.eligible("a")
    clock.advance(5.0)
    assert hysteresis.eligible("a")


def test_after_recovery_a_single_bad_observation_removes_it_again() -> None:
    clock = FakeClock()
    hysteresis = Hysteresis(recover_after=1, min_hold=1.0, clock=clock)
    hysteresis.observe("a", False)
    clock.advance(1.0)
    hysteresis.observe("a", True)
    assert hysteresis.eligible("a")
    hysteresis.observe("a", False)
    assert not hysteresis.eligible("a")


# ------------------------------------------------------------------ scrape (real HTTP)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
Serve = Callable[[Handler], Awaitable[str]]


@pytest.fixture
async def serve() -> AsyncIterator[Serve]:
    """Starts a one-route aiohttp server on 127.0.0.1 and returns its /metrics URL."""
    runners: list[web.AppRunner] = []

    async def start(handler: Handler) -> str:
        app = web.Application()
        app.router.add_get("/metrics", handler)
        runner = web.AppRunner(app, shutdown_timeout=0.5)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        runners.append(runner)
        port = runner.addresses[0][1]
        return f"http://127.0.0.1:{port}/metrics"

    yield start
    for runner in runners:
        await runner.cleanup()


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as client:
        yield client


async def test_scrape_reads_a_real_metrics_endpoint(
    serve: Serve, session: aiohttp.ClientSession
) -> None:
    async def metrics(_: web.Request) -> web.Response:
        return web.Response(text=TWO_ENGINES, content_type="text/plain")

    url = await serve(metrics)
    assert await scrape(session, url, timeout=2.0) == VllmLoad(7.0, 6.0, 0.75)


async def test_scrape_error_status_gives_none(serve: Serve, session: aiohttp.ClientSession) -> None:
    async def metrics(_: web.Request) -> web.Response:
        return web.Response(status=503, text=TWO_ENGINES)

    assert await scrape(session, await serve(metrics), timeout=2.0) is None


async def test_scrape_garbage_body_gives_none(serve: Serve, session: aiohttp.ClientSession) -> None:
    async def metrics(_: web.Request) -> web.Response:
        return web.Response(text="<html>not metrics</html>", content_type="text/html")

    assert await scrape(session, await serve(metrics), timeout=2.0) is None


async def test_scrape_timeout_gives_none(serve: Serve, session: aiohttp.ClientSession) -> None:
    release = asyncio.Event()

    async def metrics(_: web.Request) -> web.Response:
        await release.wait()
        return web.Response(text=TWO_ENGINES)

    url = await serve(metrics)
    try:
        assert await scrape(session, url, timeout=0.05) is None
    finally:
        release.set()


async def test_scrape_refused_connection_gives_none(session: aiohttp.ClientSession) -> None:
    with socket.socket() as sock:  # a port that was free a moment ago and has no listener
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    assert await scrape(session, f"http://127.0.0.1:{port}/metrics", timeout=2.0) is None
