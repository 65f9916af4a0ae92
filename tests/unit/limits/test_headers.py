"""Which scope the x-ratelimit-* headers describe, and the 429 bodies' wording."""

from __future__ import annotations

import random

from fulcrum.limits.checks import Ask, Plan, Refusal, ScopeCheck, ScopeUsage, Verdict
from fulcrum.limits.headers import format_duration, rate_headers
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


def test_ties_go_to_the_broader_scope() -> None:
    key = ScopeCheck("key", "k", "{acme}:k:k", rpm=50)
    plan = Plan("acme", (TENANT, key), None)
    usage = (ScopeUsage(60, 0, 111), ScopeUsage(10, 0, 222))  # 40 left in both
    assert rate_headers(plan, usage)["x-ratelimit-reset-requests"] == "111ms"


def test_durations_are_written_as_openai_writes_them() -> None:
    cases = {
        0: "0s",
        7: "7ms",
        999: "999ms",
        1000: "1s",
        1200: "1.2s",
        59_870: "59.87s",
        60_000: "1m0s",
        61_005: "1m1.005s",
        360_000: "6m0s",
        3_723_400: "1h2m3.4s",
        -5: "0s",
    }
    assert {ms: format_duration(ms) for ms in cases} == cases


def _reference_pick(
    plan: Plan, usage: tuple[ScopeUsage | None, ...], refusal: Refusal | None, dimension: str
) -> tuple[int, int, int] | None:
    """The rule, spelled out: the refusing scope for its dimension, else the least room left,
    the first (broadest) scope on ties."""
    candidates = []
    for index, (scope, state) in enumerate(zip(plan.scopes, usage, strict=True)):
        limit = scope.rpm if dimension == "rpm" else scope.tpm
        if state is None or limit is None:
            continue
        used = state.requests if dimension == "rpm" else state.tokens
        candidate = (max(0, limit - used), limit, state.reset_ms)
        if refusal is not None and (refusal.limit, refusal.scope) == (dimension, index):
            return candidate
        candidates.append(candidate)
    return min(candidates, key=lambda c: c[0]) if candidates else None


def test_rate_headers_follow_the_rule_for_any_plan() -> None:
    rng = random.Random(11)
    for _ in range(3000):
        scopes = tuple(
            ScopeCheck(
                "tenant",
                "t",
                f"{{t}}:{i}",
                rpm=rng.choice([None, 5, 50]),
                tpm=rng.choice([None, 100, 1000]),
            )
            for i in range(rng.randrange(0, 4))
        )
        usage = tuple(
            None
            if not scope.windowed
            else ScopeUsage(rng.randrange(0, 60), rng.randrange(0, 1200), rng.randrange(0, 60_000))
            for scope in scopes
        )
        refusal = None
        if scopes and rng.random() < 0.5:
            limit = rng.choice(["rpm", "tpm", "concurrency"])
            refusal = Refusal(limit, rng.randrange(-1, len(scopes)), 1, 1)  # type: ignore[arg-type]
        plan = Plan("t", scopes, None)
        expected: dict[str, str] = {}
        for dimension, name in (("rpm", "requests"), ("tpm", "tokens")):
            picked = _reference_pick(plan, usage, refusal, dimension)
            if picked is not None:
                expected[f"x-ratelimit-limit-{name}"] = str(picked[1])
                expected[f"x-ratelimit-remaining-{name}"] = str(picked[0])
                expected[f"x-ratelimit-reset-{name}"] = format_duration(picked[2])
        assert list(rate_headers(plan, usage, refusal).items()) == list(expected.items())
