"""The errors a limiter raises, worded and typed as OpenAI's API words and types them."""

from __future__ import annotations

from fulcrum.api.errors import ApiError
from fulcrum.limits.checks import MICROS_PER_USD, Ask, Refusal, ScopeCheck, Verdict
from fulcrum.limits.headers import format_duration, rate_headers, retry_headers


def describe(scope: ScopeCheck, tenant: str) -> str:
    """Whose limit it is, for a message: ``tenant `acme```, ``model `x` for tenant `acme```."""
    if scope.kind == "key":
        return f"API key `{scope.name}` of tenant `{tenant}`"
    if scope.kind == "model":
        return f"model `{scope.name}` for tenant `{tenant}`"
    return f"tenant `{tenant}`"


def too_large(scope: ScopeCheck, tenant: str, tokens: int) -> ApiError:
    """A request whose own estimate exceeds a whole TPM limit: waiting cannot help."""
    assert scope.tpm is not None
    return ApiError(
        429,
        f"Request too large for tokens per minute (TPM) of {describe(scope, tenant)}: "
        f"limit {scope.tpm}, requested {tokens}. The input or max_tokens must be reduced "
        "for this request to ever fit.",
        type="tokens",
        code="rate_limit_exceeded",
        headers={"x-should-retry": "false"},  # the OpenAI SDKs honour this: no futile retries
    )


def rejected(ask: Ask, verdict: Verdict) -> ApiError:
    """The 429 for a refusing verdict, with ``retry-after`` and the ``x-ratelimit-*`` set."""
    refusal = verdict.refusal
    assert refusal is not None
    plan = ask.plan
    headers = {**retry_headers(refusal.retry_ms), **rate_headers(plan, verdict.usage, refusal)}
    wait = format_duration(refusal.retry_ms)
    if refusal.scope < 0:
        return _budget(ask, refusal, headers, wait)
    scope = plan.scopes[refusal.scope]
    where = describe(scope, plan.tenant)
    if refusal.limit == "rpm":
        message = (
            f"Rate limit reached for requests per minute (RPM) of {where}: "
            f"limit {scope.rpm}, used {refusal.used}. Please try again in {wait}."
        )
        kind = "requests"
    elif refusal.limit == "tpm":
        message = (
            f"Rate limit reached for tokens per minute (TPM) of {where}: limit {scope.tpm}, "
            f"used {refusal.used}, requested {ask.tokens}. Please try again in {wait}."
        )
        kind = "tokens"
    else:
        message = (
            f"Too many concurrent requests for {where}: limit {scope.concurrency}, "
            f"in flight {refusal.used}. Please try again in {wait}."
        )
        kind = "requests"
    return ApiError(429, message, type=kind, code="rate_limit_exceeded", headers=headers)


def _budget(ask: Ask, refusal: Refusal, headers: dict[str, str], wait: str) -> ApiError:
    budget = ask.plan.budget
    assert budget is not None
    daily = refusal.limit == "budget_daily"
    limit = budget.daily if daily else budget.monthly
    assert limit is not None
    period = "daily" if daily else "monthly"
    message = (
        f"The {period} budget of tenant `{ask.plan.tenant}` is exhausted: "
        f"${_usd(refusal.used)} of ${_usd(limit)} spent or reserved, and this request may "
        f"cost up to ${_usd(ask.cost_micro)}. It renews at the start of the next UTC "
        f"{'day' if daily else 'month'}, in {wait}."
    )
    return ApiError(
        429, message, type="insufficient_quota", code="insufficient_quota", headers=headers
    )


def _usd(micro: int) -> str:
    text = f"{micro / MICROS_PER_USD:.6f}".rstrip("0")
    whole, _, fraction = text.partition(".")
    return f"{whole}.{fraction.ljust(2, '0')}"


def unavailable(retry_after: float) -> ApiError:
    """fail_closed while the shared limit backend is unreachable."""
    return ApiError(
        503,
        "The rate limiter is unavailable, so requests are refused for now. "
        "Please try again shortly.",
        type="server_error",
        code="rate_limiter_unavailable",
        headers=retry_headers(int(retry_after * 1000)),
    )
