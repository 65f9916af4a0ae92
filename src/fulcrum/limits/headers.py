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
    if ms < 1000:
        return f"{ms}ms" if ms else "0s"
    if ms < 60_000:  # the usual case: a window resets within its minute
        return _seconds(ms)
    hours, rest = divmod(ms, 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    if hours:
        return f"{hours}h{minutes}m{_seconds(rest)}"
    return f"{minutes}m{_seconds(rest)}"


def _seconds(ms: int) -> str:
    whole, fraction = divmod(ms, 1000)
    if not fraction:
        return f"{whole}s"
    return f"{whole}.{fraction:03d}".rstrip("0") + "s"


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
    """The OpenAI ``x-ratelimit-*`` set for the tightest scope (empty without RPM/TPM limits).

    Runs for every admitted request, hence one pass over the scopes for both dimensions.
    """
    scopes = plan.scopes
    if len(usage) != len(scopes):
        raise ValueError("usage does not match the plan's scopes")
    forced_requests = forced_tokens = -1  # the scope that refused, per dimension
    if refusal is not None:
        if refusal.limit == "rpm":
            forced_requests = refusal.scope
        elif refusal.limit == "tpm":
            forced_tokens = refusal.scope
    requests: tuple[int, int, int] | None = None  # (remaining, limit, reset_ms)
    tokens: tuple[int, int, int] | None = None
    pinned_requests = pinned_tokens = False
    for index, scope in enumerate(scopes):
        state = usage[index]
        if state is None:
            continue
        limit = scope.rpm
        if limit is not None and not pinned_requests:
            remaining = max(0, limit - state.requests)
            if index == forced_requests:
                requests, pinned_requests = (remaining, limit, state.reset_ms), True
            elif requests is None or remaining < requests[0]:  # ties: the broader scope
                requests = (remaining, limit, state.reset_ms)
        limit = scope.tpm
        if limit is not None and not pinned_tokens:
            remaining = max(0, limit - state.tokens)
            if index == forced_tokens:
                tokens, pinned_tokens = (remaining, limit, state.reset_ms), True
            elif tokens is None or remaining < tokens[0]:
                tokens = (remaining, limit, state.reset_ms)
    headers: dict[str, str] = {}
    if requests is not None:
        headers["x-ratelimit-limit-requests"] = str(requests[1])
        headers["x-ratelimit-remaining-requests"] = str(requests[0])
        headers["x-ratelimit-reset-requests"] = format_duration(requests[2])
    if tokens is not None:
        headers["x-ratelimit-limit-tokens"] = str(tokens[1])
        headers["x-ratelimit-remaining-tokens"] = str(tokens[0])
        headers["x-ratelimit-reset-tokens"] = format_duration(tokens[2])
    return headers
