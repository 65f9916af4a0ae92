"""Prometheus metrics of the gateway, in a registry owned by one app (no global state)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest

from fulcrum.providers.base import Usage

LATENCY_BUCKETS = (
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    20.0,
    40.0,
    80.0,
    160.0,
)
CONTENT_TYPE = CONTENT_TYPE_LATEST
_CIRCUIT_VALUES = {"closed": 0, "half_open": 1, "open": 2}


class GatewayMetrics:
    """Every series the gateway exports; later stages add theirs here."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            "fulcrum_requests",
            "Requests by public model, serving deployment and HTTP status.",
            ["model", "deployment", "status"],
            registry=self.registry,
        )
        self.duration = Histogram(
            "fulcrum_request_duration_seconds",
            "Total request latency as seen by the gateway.",
            ["model", "deployment"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.ttft = Histogram(
            "fulcrum_time_to_first_token_seconds",
            "Time from request arrival to the first streamed byte sent to the client.",
            ["model", "deployment"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.tokens = Counter(
            "fulcrum_tokens",
            "Tokens processed, by kind (input, output, cached).",
            ["model", "deployment", "kind"],
            registry=self.registry,
        )
        self.cost = Counter(
            "fulcrum_cost_usd",
            "Upstream cost in USD from the deployment's token prices.",
            ["model", "deployment"],
            registry=self.registry,
        )
        self.attempts = Counter(
            "fulcrum_upstream_attempts",
            "Upstream attempts by deployment and outcome (ok or the failure reason).",
            ["deployment", "outcome"],
            registry=self.registry,
        )
        self.healthy = Gauge(
            "fulcrum_deployment_healthy",
            "1 when the deployment's last health signal was good, else 0.",
            ["deployment"],
            registry=self.registry,
        )
        self.decisions = Counter(
            "fulcrum_routing_decisions",
            "First choice of the planner, by public model, deployment and workload class.",
            ["model", "deployment", "workload"],
            registry=self.registry,
        )
        self.circuit_state = Gauge(
            "fulcrum_circuit_state",
            "Circuit breaker state per deployment: 0 closed, 1 half-open, 2 open.",
            ["deployment"],
            registry=self.registry,
        )
        self.provisioned_utilization = Gauge(
            "fulcrum_provisioned_utilization",
            "Share of a Provisioned Throughput deployment's tokens-per-minute in use (0..1).",
            ["deployment"],
            registry=self.registry,
        )
        self.upstream_load = Gauge(
            "fulcrum_upstream_waiting_requests",
            "vLLM's num_requests_waiting as last scraped, per deployment.",
            ["deployment"],
            registry=self.registry,
        )
        self.auth_failures = Counter(
            "fulcrum_auth_failures",
            "Rejected credentials by reason (missing, invalid, expired, revoked, jwt_*, ...).",
            ["reason"],
            registry=self.registry,
        )
        self.ratelimit_rejections = Counter(
            "fulcrum_ratelimit_rejections",
            "Requests refused by a limit: which limit (rpm, tpm, concurrency, budget_daily, "
            "budget_monthly) of which scope (tenant, key, model).",
            ["limit", "scope"],
            registry=self.registry,
        )
        self.ratelimit_backend_errors = Counter(
            "fulcrum_ratelimit_backend_errors",
            "Limit-backend (Redis) failures, by what the gateway did (fail_open, fail_closed).",
            ["action"],
            registry=self.registry,
        )
        self.ratelimit_backend_up = Gauge(
            "fulcrum_ratelimit_backend_up",
            "1 while the shared limit backend answers, 0 while limits are local or refused.",
            registry=self.registry,
        )
        self.store_refresh_errors = Counter(
            "fulcrum_store_refresh_errors",
            "Failed polls of the store for keys and tenants (the last snapshot stays in use).",
            registry=self.registry,
        )
        self.cache_lookups = Counter(
            "fulcrum_cache_lookups",
            "Prompt cache outcome per request: hit, miss, refresh (looked up nothing, stores "
            "the answer) or bypass (not cacheable, forbidden, asked to, or backend down).",
            ["result"],
            registry=self.registry,
        )
        self.cache_stores = Counter(
            "fulcrum_cache_stores",
            "Answers offered to the prompt cache: stored, too_large, incomplete (a stream "
            "that did not finish, or an unusable answer) or unavailable (backend down).",
            ["result"],
            registry=self.registry,
        )
        self.cache_errors = Counter(
            "fulcrum_cache_errors",
            "Prompt cache backend faults, by what was given up: lookup (served as a bypass), "
            "store (skipped) or decode (an unreadable entry, served as a miss).",
            ["action"],
            registry=self.registry,
        )
        self.cache_backend_up = Gauge(
            "fulcrum_cache_backend_up",
            "1 while the prompt cache backend answers, 0 while it is bypassed.",
            registry=self.registry,
        )
        self.cache_saved_usd = Counter(
            "fulcrum_cache_saved_usd",
            "Upstream cost in USD that cache hits avoided (priced like the original answer).",
            registry=self.registry,
        )
        self.audit_write_errors = Counter(
            "fulcrum_audit_write_errors",
            "Audit records that could not be made durable (the request was answered 503).",
            registry=self.registry,
        )
        self.ledger_pending = Gauge(
            "fulcrum_ledger_pending_buckets",
            "Usage-ledger buckets held in memory until a flush writes them (including a batch "
            "whose write failed and is retried).",
            registry=self.registry,
        )
        self.ledger_flushes = Counter(
            "fulcrum_ledger_flushes",
            "Usage-ledger batches written to the store.",
            registry=self.registry,
        )
        self.ledger_write_errors = Counter(
            "fulcrum_ledger_write_errors",
            "Failed usage-ledger flushes (the batch stays in memory and is retried).",
            registry=self.registry,
        )
        self.ledger_dropped_events = Counter(
            "fulcrum_ledger_dropped_events",
            "Requests left out of the usage ledger: the memory bound (max_pending buckets) "
            "was reached while the store could not be written, or the event was malformed.",
            registry=self.registry,
        )
        self._series: dict[tuple[str, str], _RequestSeries] = {}
        self._decisions: dict[tuple[str, str, str], Counter] = {}
        self._attempts: dict[tuple[str, str], Counter] = {}
        self.in_flight = Gauge(
            "fulcrum_requests_in_flight",
            "Inference requests being served now.",
            registry=self.registry,
        )

    def record_request(
        self,
        model: str,
        deployment: str,
        status: int,
        duration: float,
        ttft: float | None,
        usage: Usage | None,
        cost: float,
    ) -> None:
        series = self._series.get((model, deployment))
        if series is None:
            series = self._series[(model, deployment)] = _RequestSeries(self, model, deployment)
        counter = series.by_status.get(status)
        if counter is None:
            counter = series.by_status[status] = self.requests.labels(
                model, deployment, str(status)
            )
        counter.inc()
        series.duration.observe(duration)
        if ttft is not None:
            series.ttft.observe(ttft)
        if usage is not None:
            series.input_tokens.inc(usage.input_tokens)
            series.output_tokens.inc(usage.output_tokens)
            if usage.cached_tokens:
                series.cached_tokens.inc(usage.cached_tokens)
        if cost:
            series.cost.inc(cost)

    def count_decision(self, model: str, deployment: str, workload: str) -> None:
        key = (model, deployment, workload)
        child = self._decisions.get(key)
        if child is None:
            child = self._decisions[key] = self.decisions.labels(model, deployment, workload)
        child.inc()

    def count_attempt(self, deployment: str, outcome: str) -> None:
        key = (deployment, outcome)
        child = self._attempts.get(key)
        if child is None:
            child = self._attempts[key] = self.attempts.labels(deployment, outcome)
        child.inc()

    def set_circuit(self, deployment: str, state: str) -> None:
        self.circuit_state.labels(deployment).set(_CIRCUIT_VALUES.get(state, 0))

    def set_health(self, deployment: str, healthy: bool) -> None:
        self.healthy.labels(deployment).set(1 if healthy else 0)

    def render(self) -> bytes:
        return generate_latest(self.registry)


class _RequestSeries:
    """The labelled children of one (model, deployment), looked up once instead of per request."""

    __slots__ = (
        "by_status",
        "cached_tokens",
        "cost",
        "duration",
        "input_tokens",
        "output_tokens",
        "ttft",
    )

    def __init__(self, metrics: GatewayMetrics, model: str, deployment: str) -> None:
        self.by_status: dict[int, Counter] = {}
        self.duration = metrics.duration.labels(model, deployment)
        self.ttft = metrics.ttft.labels(model, deployment)
        self.input_tokens = metrics.tokens.labels(model, deployment, "input")
        self.output_tokens = metrics.tokens.labels(model, deployment, "output")
        self.cached_tokens = metrics.tokens.labels(model, deployment, "cached")
        self.cost = metrics.cost.labels(model, deployment)
