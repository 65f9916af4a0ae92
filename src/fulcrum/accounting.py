"""What the gateway writes down about one finished request: the audit record.

A pure function of the request's context and outcome, so the record's shape is tested without
a spool. Bodies appear only when the tenant's policy allows it, and then only redacted.
"""

from __future__ import annotations

import datetime as dt
import math
from typing import TYPE_CHECKING, Any

import orjson

from fulcrum.providers.base import Usage

if TYPE_CHECKING:
    from fulcrum.pipeline import RequestContext
    from fulcrum.telemetry.audit import Redactor

NO_VALUE = "-"


def audit_record(
    ctx: RequestContext,
    *,
    status: int,
    usage: Usage | None,
    cost: float,
    finished_at: float,
    latency: float,
    ttft: float | None,
    provider: str | None,
    regions: tuple[str, ...],
    redactor: Redactor | None,
    response_body: bytes | None = None,
) -> dict[str, Any]:
    """One JSON-ready audit record (no secret: credentials are named, never included)."""
    principal = ctx.principal
    request = ctx.request
    record: dict[str, Any] = {
        "request_id": ctx.request_id,
        "time": iso_time(finished_at),
        "tenant": principal.tenant if principal is not None else None,
        "principal": principal.subject if principal is not None else None,
        "key_id": principal.key_id if principal is not None else None,
        "model": request.model if request is not None else None,
        "endpoint": request.endpoint.value if request is not None else None,
        "stream": request.stream if request is not None else None,
        "workload": ctx.plan.workload if ctx.plan is not None else None,
        "deployment": None if ctx.deployment == NO_VALUE else ctx.deployment,
        "provider": provider,
        "regions": list(regions),
        "attempts": [{"deployment": a.deployment, "outcome": a.outcome} for a in ctx.attempts],
        "fallback_reasons": ctx.fallback_reasons,
        "status": status,
        "usage": _usage(usage),
        "cost_usd": round(cost, 10),
        "latency_ms": round(latency * 1000, 3),
        "ttft_ms": None if ttft is None else round(ttft * 1000, 3),
        "cache": ctx.cache_result,
    }
    if redactor is not None and principal is not None and principal.policy.audit.bodies:
        if request is not None:
            record["request_body"] = redactor.redact_json(request.body)
        if response_body is not None:
            record["response_body"] = redactor.redact_json(_parsed(response_body))
    return record


def iso_time(timestamp: float) -> str:
    """``datetime.fromtimestamp(t, UTC).isoformat(timespec="milliseconds")``, faster.

    Every record formats its time: the part up to the seconds is formatted once per second,
    and the milliseconds are rounded as ``datetime`` rounds them (microseconds half-even, then
    truncated), so the text is the same.
    """
    fraction, whole = math.modf(timestamp)
    micros = round(fraction * 1_000_000)
    if micros >= 1_000_000:
        whole, micros = whole + 1, micros - 1_000_000
    elif micros < 0:
        whole, micros = whole - 1, micros + 1_000_000
    second = int(whole)
    cached = _LATEST.formatted
    if cached[0] != second:
        text = dt.datetime.fromtimestamp(second, dt.UTC).strftime("%Y-%m-%dT%H:%M:%S")
        cached = _LATEST.formatted = (second, text)  # one assignment: safe from any thread
    return f"{cached[1]}.{micros // 1000:03d}+00:00"


class _Latest:
    """The latest whole second formatted (records finish in about time order)."""

    __slots__ = ("formatted",)

    def __init__(self) -> None:
        self.formatted: tuple[int, str] = (-1, "")


_LATEST = _Latest()


def _usage(usage: Usage | None) -> dict[str, int] | None:
    if usage is None:
        return None
    return {
        "input_tokens": usage.input_tokens,
        "output_tokens": usage.output_tokens,
        "cached_tokens": usage.cached_tokens,
    }


def _parsed(body: bytes) -> Any:
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError:
        return body.decode("utf-8", errors="replace")
