"""The load generator: aiohttp client on uvloop, one keep-alive pool sized to the concurrency.

Three modes, each bounded in time *and* in request count so a run always ends by itself:

* closed loop  - ``concurrency`` workers send back-to-back requests: measures throughput;
* open loop    - requests are *scheduled* at a fixed rate and latency is measured from the
  scheduled send time, not the actual one, so a slow server cannot hide its queueing delay by
  slowing the sender down (coordinated omission);
* streaming    - one request at a time with ``"stream": true``: time to the first body chunk
  and time to the end of the stream, to isolate per-request and per-chunk costs.

What is sent is a :class:`Workload`: OpenAI chat completions (every gateway row), or Bedrock's
Converse / ConverseStream (the ``bedrock-direct`` row, straight to the emulator). A Bedrock
event stream is not decoded, only read to its end and its content deltas counted.

Run standalone: ``python -m bench.loadgen --url http://127.0.0.1:8080 --mode closed -c 16``
(``--api bedrock --model <model id>`` for the Bedrock emulator).
"""

from __future__ import annotations

import argparse
import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from urllib.parse import quote

import aiohttp
import orjson
from yarl import URL

from bench.stats import Summary

CHAT_PATH = "/v1/chat/completions"
MAX_REQUESTS = 500_000  # hard cap per phase, whatever the duration
REQUEST_TIMEOUT = 30.0
LATE_SEND = 0.001  # open loop: a send that starts later than this is counted as late
TIMER_LEAD = 0.0005  # open loop: aim timers this early (they have 1 ms resolution)
STREAM_DATA_LINES = 65  # 64 content chunks + [DONE]; the usage chunk only when asked for
MAX_TOKENS = 16  # non-streaming requests (and OpenAI-upstream streams, which ignore it)
BEDROCK_STREAM_TOKENS = 64  # Bedrock streams: the emulator sends one content delta per token
BEDROCK_DELTA = b"contentBlockDelta"  # the `:event-type` of a content delta, in each header


def chat_body(
    model: str, stream: bool = False, max_tokens: int = MAX_TOKENS, deterministic: bool = False
) -> bytes:
    """The request every target receives: a tiny prompt, so the proxies dominate the cost.

    ``deterministic`` adds ``temperature: 0``, which makes it cacheable (the cache row).
    """
    payload: dict[str, object] = {
        "model": model,
        "messages": [{"role": "user", "content": "hi"}],
        "max_tokens": max_tokens,
    }
    if stream:
        payload["stream"] = True
    if deterministic:
        payload["temperature"] = 0
    return orjson.dumps(payload)


def converse_body(max_tokens: int = MAX_TOKENS) -> bytes:
    """The same tiny prompt as a Bedrock Converse / ConverseStream request body."""
    return orjson.dumps(
        {
            "messages": [{"role": "user", "content": [{"text": "hi"}]}],
            "inferenceConfig": {"maxTokens": max_tokens},
        }
    )


def bedrock_path(model_id: str, operation: str) -> str:
    """``/model/{id}/{operation}`` with the id percent-encoded, as the AWS SDKs send it."""
    return f"/model/{quote(model_id, safe='')}/{operation}"


@dataclass(frozen=True)
class Workload:
    """What a row is sent: the plain and the streaming request, and what a full stream holds.

    A stream counts as complete when its body contains ``stream_marker`` at least
    ``stream_min`` times: ``data:`` lines for OpenAI SSE, content-delta events for Bedrock.
    """

    path: str
    body: bytes
    stream_path: str
    stream_body: bytes
    stream_marker: bytes = b"data:"
    stream_min: int = STREAM_DATA_LINES

    def url(self, base: str, stream: bool = False) -> URL:
        """The request URL, sent exactly as written (aiohttp would re-quote ``%3A``)."""
        return URL(base + (self.stream_path if stream else self.path), encoded=True)


def openai_workload(
    model: str, stream_max_tokens: int = MAX_TOKENS, deterministic: bool = False
) -> Workload:
    """OpenAI chat completions for ``model``, non-streaming and streaming."""
    return Workload(
        path=CHAT_PATH,
        body=chat_body(model, deterministic=deterministic),
        stream_path=CHAT_PATH,
        stream_body=chat_body(
            model, stream=True, max_tokens=stream_max_tokens, deterministic=deterministic
        ),
    )


def bedrock_workload(model_id: str) -> Workload:
    """Converse and ConverseStream on ``model_id``; a full stream has 64 content deltas."""
    return Workload(
        path=bedrock_path(model_id, "converse"),
        body=converse_body(),
        stream_path=bedrock_path(model_id, "converse-stream"),
        stream_body=converse_body(BEDROCK_STREAM_TOKENS),
        stream_marker=BEDROCK_DELTA,
        stream_min=BEDROCK_STREAM_TOKENS,
    )


@dataclass
class PhaseResult:
    """What one measurement phase observed (latencies in seconds)."""

    mode: str
    elapsed: float
    ok: int
    errors: int
    latencies: list[float] = field(default_factory=list)
    ttfts: list[float] = field(default_factory=list)
    first_error: str | None = None
    late_sends: int = 0  # open loop: sends that started > LATE_SEND after their schedule

    @property
    def rps(self) -> float:
        """Successful requests per second of wall time."""
        return self.ok / self.elapsed if self.elapsed > 0 else 0.0

    def summary(self) -> Summary:
        return Summary.of(self.latencies)

    def ttft_summary(self) -> Summary:
        return Summary.of(self.ttfts)

    def streaming_tail(self) -> Summary:
        """Distribution of (total - TTFT): the time spent delivering chunks 2..N."""
        return Summary.of([t - f for t, f in zip(self.latencies, self.ttfts, strict=True)])


def _session(pool: int) -> aiohttp.ClientSession:
    connector = aiohttp.TCPConnector(
        limit=pool, limit_per_host=pool, keepalive_timeout=60, ttl_dns_cache=None
    )
    return aiohttp.ClientSession(
        connector=connector,
        timeout=aiohttp.ClientTimeout(total=REQUEST_TIMEOUT, sock_connect=5),
        headers={"Content-Type": "application/json", "Authorization": "Bearer sk-bench"},
    )


class _Recorder:
    """Sends one request and records its outcome into a PhaseResult."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        url: str | URL,
        body: bytes,
        res: PhaseResult,
        marker: bytes = b"data:",
        min_count: int = STREAM_DATA_LINES,
    ):
        self.session, self.url, self.body, self.res = session, url, body, res
        self.marker, self.min_count = marker, min_count

    def _fail(self, reason: str) -> None:
        self.res.errors += 1
        if self.res.first_error is None:
            self.res.first_error = reason

    async def plain(self, start: float) -> None:
        try:
            async with self.session.post(self.url, data=self.body) as resp:
                payload = await resp.read()
                if resp.status != 200:
                    self._fail(f"HTTP {resp.status}: {payload[:200]!r}")
                    return
        except (aiohttp.ClientError, TimeoutError) as exc:
            self._fail(f"{type(exc).__name__}: {exc}")
            return
        self.res.latencies.append(time.perf_counter() - start)
        self.res.ok += 1

    async def streamed(self, start: float) -> None:
        first: float | None = None
        parts: list[bytes] = []
        try:
            async with self.session.post(self.url, data=self.body) as resp:
                if resp.status != 200:
                    payload = await resp.read()
                    self._fail(f"HTTP {resp.status}: {payload[:200]!r}")
                    return
                async for chunk in resp.content.iter_any():
                    if first is None:
                        first = time.perf_counter()
                    parts.append(chunk)
        except (aiohttp.ClientError, TimeoutError) as exc:
            self._fail(f"{type(exc).__name__}: {exc}")
            return
        end = time.perf_counter()
        seen = b"".join(parts).count(self.marker)
        if first is None or seen < self.min_count:
            marker = self.marker.decode(errors="replace")
            self._fail(f"stream ended after {seen} {marker!r} (< {self.min_count})")
            return
        self.res.ttfts.append(first - start)
        self.res.latencies.append(end - start)
        self.res.ok += 1


async def _closed(
    url: str | URL,
    body: bytes,
    concurrency: int,
    duration: float,
    max_requests: int,
    mode: str,
    send: Callable[[_Recorder], Callable[[float], Awaitable[None]]],
    marker: bytes = b"data:",
    min_count: int = STREAM_DATA_LINES,
) -> PhaseResult:
    res = PhaseResult(mode=mode, elapsed=0.0, ok=0, errors=0)
    async with _session(concurrency) as session:
        rec = _Recorder(session, url, body, res, marker, min_count)
        one = send(rec)
        issued = 0
        begin = time.perf_counter()
        deadline = begin + duration

        async def worker() -> None:
            nonlocal issued
            while issued < max_requests:
                now = time.perf_counter()
                if now >= deadline:
                    return
                issued += 1
                await one(now)

        await asyncio.gather(*(worker() for _ in range(concurrency)))
        res.elapsed = time.perf_counter() - begin
    return res


async def closed_loop(
    url: str | URL,
    body: bytes,
    concurrency: int,
    duration: float,
    max_requests: int = MAX_REQUESTS,
) -> PhaseResult:
    """Fixed concurrency for ``duration`` seconds (or ``max_requests``): throughput."""
    return await _closed(
        url, body, concurrency, duration, max_requests, f"closed c={concurrency}", _plain
    )


async def streaming(
    url: str | URL,
    body: bytes,
    duration: float,
    concurrency: int = 1,
    max_requests: int = MAX_REQUESTS,
    marker: bytes = b"data:",
    min_count: int = STREAM_DATA_LINES,
) -> PhaseResult:
    """Streaming requests back to back: TTFT and total time per request.

    A stream counts only when it was read to its end and held ``marker`` at least
    ``min_count`` times (``data:`` lines of SSE; content-delta events of a Bedrock stream).
    """
    return await _closed(
        url,
        body,
        concurrency,
        duration,
        max_requests,
        f"stream c={concurrency}",
        _streamed,
        marker,
        min_count,
    )


async def stream_phase(
    base: str,
    workload: Workload,
    duration: float,
    concurrency: int = 1,
    max_requests: int = MAX_REQUESTS,
) -> PhaseResult:
    """:func:`streaming` with ``workload``'s streaming request and its completeness check."""
    return await streaming(
        workload.url(base, stream=True),
        workload.stream_body,
        duration,
        concurrency,
        max_requests,
        workload.stream_marker,
        workload.stream_min,
    )


def _plain(rec: _Recorder) -> Callable[[float], Awaitable[None]]:
    return rec.plain


def _streamed(rec: _Recorder) -> Callable[[float], Awaitable[None]]:
    return rec.streamed


async def open_loop(
    url: str | URL,
    body: bytes,
    rate: float,
    duration: float,
    pool: int = 256,
    max_requests: int = MAX_REQUESTS,
) -> PhaseResult:
    """Requests scheduled every ``1/rate`` s; latency counted from the scheduled time.

    The loop's timers have 1 ms resolution (they fire up to ~1 ms early or late), so each send
    is aimed ``TIMER_LEAD`` early: most then leave within a few hundred µs of their schedule.
    A send that leaves early is timed from when it actually left; one that leaves late is timed
    from its schedule, so any stall of the sender is counted (no coordinated omission).
    A thread with a precise sleep was tried instead: its hand-off to the loop cost more.
    """
    res = PhaseResult(mode=f"open {rate:g}/s", elapsed=0.0, ok=0, errors=0)
    total = min(int(rate * duration), max_requests)
    interval = 1.0 / rate
    async with _session(pool) as session:
        rec = _Recorder(session, url, body, res)
        tasks: set[asyncio.Task[None]] = set()
        begin = time.perf_counter() + 0.01
        for i in range(total):
            scheduled = begin + i * interval
            delay = scheduled - time.perf_counter() - TIMER_LEAD
            if delay > 0:
                await asyncio.sleep(delay)
            now = time.perf_counter()
            if now - scheduled > LATE_SEND:
                res.late_sends += 1
            task = asyncio.create_task(rec.plain(max(scheduled, now)))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
        if tasks:
            await asyncio.wait(tasks, timeout=REQUEST_TIMEOUT + 5)
        res.elapsed = time.perf_counter() - begin
    return res


def _print(res: PhaseResult) -> None:
    s = res.summary()
    line = (
        f"{res.mode}: {res.rps:,.0f} req/s ok={res.ok} err={res.errors} "
        f"p50={s.p50 * 1e3:.3f}ms p99={s.p99 * 1e3:.3f}ms"
    )
    if res.ttfts:
        line += f" ttft_p50={res.ttft_summary().p50 * 1e3:.3f}ms"
    if res.first_error:
        line += f" first_error={res.first_error}"
    print(line)


def main() -> None:
    parser = argparse.ArgumentParser(description="Fulcrum bench load generator")
    parser.add_argument("--url", required=True, help="base URL, e.g. http://127.0.0.1:8080")
    parser.add_argument("--mode", choices=("closed", "open", "stream"), default="closed")
    parser.add_argument("-c", "--concurrency", type=int, default=16)
    parser.add_argument("--rate", type=float, default=200.0, help="open loop: requests/s")
    parser.add_argument("--duration", type=float, default=5.0, help="seconds")
    parser.add_argument(
        "--api",
        choices=("openai", "bedrock"),
        default="openai",
        help="OpenAI chat completions, or Bedrock Converse / ConverseStream (--model: its id)",
    )
    parser.add_argument("--model", default="bench-model")
    args = parser.parse_args()
    import uvloop

    base = args.url.rstrip("/")
    work = bedrock_workload(args.model) if args.api == "bedrock" else openai_workload(args.model)
    if args.mode == "closed":
        coro = closed_loop(work.url(base), work.body, args.concurrency, args.duration)
    elif args.mode == "open":
        coro = open_loop(work.url(base), work.body, args.rate, args.duration)
    else:
        coro = stream_phase(base, work, args.duration, args.concurrency)
    _print(uvloop.run(coro))


if __name__ == "__main__":
    main()
