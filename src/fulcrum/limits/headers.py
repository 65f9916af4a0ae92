"""The ``x-ratelimit-*`` and ``retry-after`` headers, formatted as OpenAI's API sends them.

Which scope the headers describe: for requests and for tokens separately, the windowed scope
with the least room left (the tightest: tenant, key or tenant-and-model; ties go to the broader
scope). On a 429 the dimension that refused describes the scope that refused. That is the
number a client must respect to stop being refused, which is what the headers are for.

``x-ratelimit-reset-*`` is the time until the oldest request in that scope's window leaves
it, i.e. until ``remaining`` next grows (the window slides; it never resets all at once).
"""

from __future__ import annotations

import math

from fulcrum.limits.checks import Plan, Refusal, ScopeUsage


def format_duration(ms: int) -> str:
    """A duration the way OpenAI writes it (Go style): ``20ms``, ``1.2s``, ``6m0s``, ``1h2m3s``."""
    ms = max(0, int(ms))
    if ms == 0:
        return "0s"
    if ms < 1000:
        return f"{ms}ms"
    hours, rest = divmod(ms, 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    seconds = f"{rest // 1000}.{rest % 1000:03d}".rstrip("0").rstrip(".") + "s"
    if hours:
        return f"{hours}h{minutes}m{seconds}"
    if minutes:
        return f"{minutes}m{seconds}"
    return seconds


def retry_headers(retry_ms: int) -> dict[str, str]:
    """``retry-after`` in whole seconds (at least 1, rounded up) and ``retry-after-ms``."""
    retry_ms = max(0, int(retry_ms))
    return {
        "retry-after": str(max(1, math.ceil(retry_ms / 1000))),
        "retry-after-ms": str(retry_ms),
    }


def rate_headers(
    plan: Plan, usage: tuple[ScopeUsage | None, ...], refusal: Refusal | None = None
) -> dict[str, str]:
    """The OpenAI ``x-ratelimit-*`` set for the tightest scope (empty without RPM/TPM limits)."""
    headers: dict[str, str] = {}
    for dimension, name in (("rpm", "requests"), ("tpm", "tokens")):
        picked = _pick(plan, usage, refusal, dimension)
        if picked is not None:
            remaining, limit, reset = picked
            headers[f"x-ratelimit-limit-{name}"] = str(limit)
            headers[f"x-ratelimit-remaining-{name}"] = str(remaining)
            headers[f"x-ratelimit-reset-{name}"] = format_duration(reset)
    return headers


def _pick(
    plan: Plan, usage: tuple[ScopeUsage | None, ...], refusal: Refusal | None, dimension: str
) -> tuple[int, int, int] | None:
    """(remaining, limit, reset_ms) of the refusing scope, else of the one with least room."""
    best: tuple[int, int, int] | None = None
    for index, (scope, state) in enumerate(zip(plan.scopes, usage, strict=True)):
        limit = scope.rpm if dimension == "rpm" else scope.tpm
        if state is None or limit is None:
            continue
        used = state.requests if dimension == "rpm" else state.tokens
        candidate = (max(0, limit - used), limit, state.reset_ms)
        if refusal is not None and refusal.limit == dimension and refusal.scope == index:
            return candidate
        if best is None or candidate[0] < best[0]:
            best = candidate
    return best
