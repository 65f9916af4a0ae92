"""vLLM's Prometheus metrics, with vLLM's names, types, labels and histogram buckets.

Names and buckets follow vLLM's V1 ``PrometheusStatLogger`` (``vllm/v1/metrics/loggers.py``
and ``vllm/v1/metrics/buckets.py``): every series carries ``model_name`` and ``engine`` labels,
counters are exposed as ``<name>_total`` (with ``_created``, as prometheus_client does for
vLLM), and ``request_success`` has a ``finished_reason`` series pre-created for every reason.

Recording happens on the request hot path, so values live in plain Python numbers and a
custom collector turns them into metric families only when ``/metrics`` is scraped. Each
emulator has its own :class:`CollectorRegistry`, never the global one.
"""

from __future__ import annotations

import time
from bisect import bisect_left
from collections.abc import Iterable, Iterator, Sequence

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4
from prometheus_client.registry import Collector

from fulcrum.sim.vllm.engine import Snapshot

CONTENT_TYPE = CONTENT_TYPE_PLAIN_0_0_4

REQUEST_LATENCY_BUCKETS = (
    0.3, 0.5, 0.8, 1.0, 1.5, 2.0, 2.5, 5.0, 10.0, 15.0, 20.0, 30.0, 40.0, 50.0, 60.0,
    120.0, 240.0, 480.0, 960.0, 1920.0, 7680.0,
)  # fmt: skip
TIME_TO_FIRST_TOKEN_BUCKETS = (
    0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5,
    10.0, 20.0, 40.0, 80.0, 160.0, 640.0, 2560.0,
)  # fmt: skip
FINISHED_REASONS = ("stop", "length", "abort", "error")
ENGINE = "0"
LABELS = ["model_name", "engine"]


def one_two_five_buckets(max_value: int) -> list[float]:
    """vLLM's 1-2-5 series (1, 2, 5, 10, 20, ...) capped at ``max_value``."""
    out: list[float] = []
    scale = 1
    while True:
        for mantissa in (1, 2, 5):
            value = mantissa * scale
            if value > max_value:
                return out
            out.append(float(value))
        scale *= 10


def _le(bound: float) -> str:
    """A bucket bound spelled as prometheus_client spells it ("0.25", "10.0", "+Inf")."""
    return "+Inf" if bound == float("inf") else repr(float(bound))


class Histogram:
    """A cheap histogram: one bisect and two additions per observation."""

    __slots__ = ("bounds", "counts", "total")

    def __init__(self, bounds: Sequence[float]) -> None:
        self.bounds = tuple(bounds)
        self.counts = [0] * (len(self.bounds) + 1)  # the last slot is +Inf
        self.total = 0.0

    def observe(self, value: float) -> None:
        self.counts[bisect_left(self.bounds, value)] += 1
        self.total += value

    def cumulative(self) -> list[tuple[str, float]]:
        out: list[tuple[str, float]] = []
        running = 0
        for bound, count in zip((*self.bounds, float("inf")), self.counts, strict=True):
            running += count
            out.append((_le(bound), float(running)))
        return out


class VllmMetrics(Collector):
    """The emulator's metric families, bound to one model name."""

    def __init__(self, model_name: str, max_model_len: int) -> None:
        self.model_name = model_name
        self.created = time.time()
        self.snapshot = Snapshot(0, 0, 0, 1)
        self.prompt_tokens = 0
        self.generation_tokens = 0
        self.preemptions = 0
        self.success = dict.fromkeys(FINISHED_REASONS, 0)
        token_buckets = one_two_five_buckets(max_model_len)
        self.request_prompt_tokens = Histogram(token_buckets)
        self.request_generation_tokens = Histogram(token_buckets)
        self.ttft = Histogram(TIME_TO_FIRST_TOKEN_BUCKETS)
        self.e2e = Histogram(REQUEST_LATENCY_BUCKETS)
        self.queue_time = Histogram(REQUEST_LATENCY_BUCKETS)
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(self)

    # ----------------------------------------------------------- recording

    def first_token(self, ttft_seconds: float) -> None:
        self.ttft.observe(ttft_seconds)

    def finished(
        self,
        *,
        e2e_seconds: float,
        queue_seconds: float,
        prompt_tokens: int,
        generated_tokens: Iterable[int],
        reasons: Iterable[str],
    ) -> None:
        """Record a request that ran to its end (or was aborted, with ``reasons`` "abort")."""
        self.prompt_tokens += prompt_tokens
        for count in generated_tokens:
            self.generation_tokens += count
            self.request_generation_tokens.observe(count)
        for reason in reasons:
            if reason in self.success:
                self.success[reason] += 1
        self.e2e.observe(e2e_seconds)
        self.queue_time.observe(queue_seconds)
        self.request_prompt_tokens.observe(prompt_tokens)

    # ------------------------------------------------------------ exposing

    def render(self, snapshot: Snapshot) -> bytes:
        """The text exposition, with gauges taken from ``snapshot``."""
        self.snapshot = snapshot
        return generate_latest(self.registry)

    def collect(self) -> Iterator[Metric]:
        values = [self.model_name, ENGINE]
        snap = self.snapshot
        for name, doc, value in (
            (
                "vllm:num_requests_running",
                "Number of requests in model execution batches.",
                snap.running,
            ),
            (
                "vllm:num_requests_waiting",
                "Number of requests waiting to be processed.",
                snap.waiting,
            ),
            (
                "vllm:kv_cache_usage_perc",
                "KV-cache usage. 1 means 100 percent usage.",
                snap.kv_usage,
            ),
            (
                "vllm:gpu_cache_usage_perc",
                "GPU KV-cache usage. 1 means 100 percent usage."
                "DEPRECATED: Use vllm:kv_cache_usage_perc instead.",
                snap.kv_usage,
            ),
        ):
            gauge = GaugeMetricFamily(name, doc, labels=LABELS)
            gauge.add_metric(values, float(value))
            yield gauge
        for name, doc, total in (
            (
                "vllm:num_preemptions",
                "Cumulative number of preemption from the engine.",
                self.preemptions,
            ),
            ("vllm:prompt_tokens", "Number of prefill tokens processed.", self.prompt_tokens),
            (
                "vllm:generation_tokens",
                "Number of generation tokens processed.",
                self.generation_tokens,
            ),
        ):
            counter = CounterMetricFamily(name, doc, labels=LABELS)
            counter.add_metric(values, float(total), created=self.created)
            yield counter
        success = CounterMetricFamily(
            "vllm:request_success",
            "Count of successfully processed requests.",
            labels=[*LABELS, "finished_reason"],
        )
        for reason, count in self.success.items():
            success.add_metric([*values, reason], float(count), created=self.created)
        yield success
        for name, doc, histogram in (
            (
                "vllm:request_prompt_tokens",
                "Number of prefill tokens processed.",
                self.request_prompt_tokens,
            ),
            (
                "vllm:request_generation_tokens",
                "Number of generation tokens processed.",
                self.request_generation_tokens,
            ),
            (
                "vllm:time_to_first_token_seconds",
                "Histogram of time to first token in seconds.",
                self.ttft,
            ),
            (
                "vllm:e2e_request_latency_seconds",
                "Histogram of e2e request latency in seconds.",
                self.e2e,
            ),
            (
                "vllm:request_queue_time_seconds",
                "Histogram of time spent in WAITING phase for request.",
                self.queue_time,
            ),
        ):
            family = HistogramMetricFamily(name, doc, labels=LABELS)
            family.add_metric(values, histogram.cumulative(), histogram.total)
            yield family
