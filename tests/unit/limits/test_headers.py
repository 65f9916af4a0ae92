"""Which scope the x-ratelimit-* headers describe, and the 429 bodies' wording."""

from __future__ import annotations

from fulcrum.limits.checks import Ask, Plan, Refusal, ScopeCheck, ScopeUsage, Verdict
from fulcrum.limits.headers import rate_headers
from fulcrum.limits.rejections import rejected, unavailable

TENANT = ScopeCheck("tenant", "acme", "{acme}:t", rpm=100, tpm=1000)
MODEL = ScopeCheck("model", "m", "{acme}:m:m", tpm=300)
PLAN = Plan("acme", (TENANT, MODEL), None)
USAGE = (ScopeUsage(10, 650, 1500), ScopeUsage(10, 200, 20))


def test_success_headers_show_the_scope_with_least_room() -> None:
    assert rate_headers(PLAN, USAGE) == {
        "x-ratelimit-limit-requests": "100",
        "x-ratelimit-remaining-requests": "90",
        "x-ratelimit-reset-requests": "1.5s",
        "x-ratelimit-limit-tokens": "300",
        "x-ratelimit-remaining-tokens": "100",
        "x-ratelimit-reset-tokens": "20ms",
    }


def test_a_refusal_shows_the_refusing_scope_even_if_another_is_tighter() -> None:
    refusal = Refusal("tpm", 0, 650, 1500)  # 400 tokens asked: the tenant refused first
    headers = rate_headers(PLAN, USAGE, refusal)
    assert headers["x-ratelimit-limit-tokens"] == "1000"
    assert headers["x-ratelimit-remaining-tokens"] == "350"


def test_no_rate_headers_without_rpm_or_tpm() -> None:
    plan = Plan("acme", (ScopeCheck("tenant", "acme", "{acme}:t", concurrency=3),), None)
    assert rate_headers(plan, (None,)) == {}


def test_the_429_for_tokens() -> None:
    ask = Ask("id", PLAN, 400, 0)
    error = rejected(ask, Verdict(Refusal("tpm", 1, 200, 20), USAGE))
    assert error.status == 429
    assert error.payload() == {
        "error": {
            "message": "Rate limit reached for tokens per minute (TPM) of model `m` for tenant "
            "`acme`: limit 300, used 200, requested 400. Please try again in 20ms.",
            "type": "tokens",
            "param": None,
            "code": "rate_limit_exceeded",
        }
    }
    assert error.headers["retry-after"] == "1"
    assert error.headers["retry-after-ms"] == "20"


def test_the_503_when_the_limiter_is_unavailable() -> None:
    error = unavailable(1.5)
    assert (error.status, error.type, error.code) == (
        503,
        "server_error",
        "rate_limiter_unavailable",
    )
    assert error.headers == {"retry-after": "2", "retry-after-ms": "1500"}
