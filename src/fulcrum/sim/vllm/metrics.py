"""vLLM's Prometheus metrics, with vLLM's names, types, labels and histogram buckets.

Names and buckets follow vLLM's V1 ``PrometheusStatLogger`` (``vllm/v1/metrics/loggers.py``
and ``vllm/v1/metrics/buckets.py``): every series carries ``model_name`` and ``engine`` labels,
counters are declared without ``_total`` (prometheus_client appends it), and
``request_success`` has a ``finished_reason`` label pre-created for every reason. Each app gets
its own :class:`CollectorRegistry`, never the global one, so several emulators can share a
process in tests. Gauges are read from the scheduler at scrape time.
"""

from __future__ import annotations

from collections.abc import Iterable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4

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


class VllmMetrics:
    """The emulator's metric families, bound to one model name."""

    def __init__(self, model_name: str, max_model_len: int) -> None:
        self.registry = CollectorRegistry(auto_describe=False)
        names = ["model_name", "engine"]
        values = (model_name, ENGINE)
        reg = self.registry

        self.running = Gauge(
            "vllm:num_requests_running",
            "Number of requests in model execution batches.",
            names,
            registry=reg,
        ).labels(*values)
        self.waiting = Gauge(
            "vllm:num_requests_waiting",
            "Number of requests waiting to be processed.",
            names,
            registry=reg,
        ).labels(*values)
        self.kv_usage = Gauge(
            "vllm:kv_cache_usage_perc",
            "KV-cache usage. 1 means 100 percent usage.",
            names,
            registry=reg,
        ).labels(*values)
        self.gpu_cache_usage = Gauge(
            "vllm:gpu_cache_usage_perc",
            "GPU KV-cache usage. 1 means 100 percent usage."
            "DEPRECATED: Use vllm:kv_cache_usage_perc instead.",
            names,
            registry=reg,
        ).labels(*values)
        self.preemptions = Counter(
            "vllm:num_preemptions",
            "Cumulative number of preemption from the engine.",
            names,
            registry=reg,
        ).labels(*values)
        self.prompt_tokens = Counter(
            "vllm:prompt_tokens", "Number of prefill tokens processed.", names, registry=reg
        ).labels(*values)
        self.generation_tokens = Counter(
            "vllm:generation_tokens",
            "Number of generation tokens processed.",
            names,
            registry=reg,
        ).labels(*values)
        success = Counter(
            "vllm:request_success",
            "Count of successfully processed requests.",
            [*names, "finished_reason"],
            registry=reg,
        )
        self.success = {r: success.labels(*values, r) for r in FINISHED_REASONS}
        token_buckets = one_two_five_buckets(max_model_len)
        self.request_prompt_tokens = Histogram(
            "vllm:request_prompt_tokens",
            "Number of prefill tokens processed.",
            names,
            registry=reg,
            buckets=token_buckets,
        ).labels(*values)
        self.request_generation_tokens = Histogram(
            "vllm:request_generation_tokens",
            "Number of generation tokens processed.",
            names,
            registry=reg,
            buckets=token_buckets,
        ).labels(*values)
        self.ttft = Histogram(
            "vllm:time_to_first_token_seconds",
            "Histogram of time to first token in seconds.",
            names,
            registry=reg,
            buckets=TIME_TO_FIRST_TOKEN_BUCKETS,
        ).labels(*values)
        self.e2e = Histogram(
            "vllm:e2e_request_latency_seconds",
            "Histogram of e2e request latency in seconds.",
            names,
            registry=reg,
            buckets=REQUEST_LATENCY_BUCKETS,
        ).labels(*values)
        self.queue_time = Histogram(
            "vllm:request_queue_time_seconds",
            "Histogram of time spent in WAITING phase for request.",
            names,
            registry=reg,
            buckets=REQUEST_LATENCY_BUCKETS,
        ).labels(*values)

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
        generated = list(generated_tokens)
        total = sum(generated)
        self.prompt_tokens.inc(prompt_tokens)
        if total:
            self.generation_tokens.inc(total)
        for reason in reasons:
            counter = self.success.get(reason)
            if counter is not None:
                counter.inc()
        self.e2e.observe(e2e_seconds)
        self.queue_time.observe(queue_seconds)
        self.request_prompt_tokens.observe(prompt_tokens)
        for count in generated:
            self.request_generation_tokens.observe(count)

    def render(self, snapshot: Snapshot) -> bytes:
        """The text exposition, with gauges taken from ``snapshot``."""
        self.running.set(snapshot.running)
        self.waiting.set(snapshot.waiting)
        usage = snapshot.kv_usage
        self.kv_usage.set(usage)
        self.gpu_cache_usage.set(usage)
        return generate_latest(self.registry)
