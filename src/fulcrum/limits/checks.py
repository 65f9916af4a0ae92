"""What a limit backend is asked and what it answers: plain values, no I/O.

The limiter turns a Principal's policy and a Demand into an ``Ask`` (every scope and budget
that applies to one request); a backend (memory or Redis) evaluates all of them as one unit and
answers with a ``Verdict``. Keeping these types free of backend detail is what lets both
backends share the same tests and the limiter build errors and headers in one place.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, Literal
from urllib.parse import quote

WINDOW_MS: Final = 60_000  # RPM and TPM are measured over a sliding minute
LEASE_MS: Final = 600_000  # a concurrency lease outlives any request; a crashed replica's expire
MICROS_PER_USD: Final = 1_000_000  # budgets are counted in integer micro-dollars (no float drift)

ScopeKind = Literal["tenant", "key", "model"]
LimitName = Literal["rpm", "tpm", "concurrency", "budget_daily", "budget_monthly"]

# Codes shared with the Lua scripts (the order of checks inside one scope).
LIMIT_CODES: Final[tuple[LimitName, ...]] = (
    "rpm",
    "tpm",
    "concurrency",
    "budget_daily",
    "budget_monthly",
)


def escape(name: str) -> str:
    """A tenant, key or model name made safe to embed between ``:`` separators of a key."""
    return quote(name, safe="")


@dataclass(frozen=True, slots=True)
class ScopeCheck:
    """The rate limits of one scope (the tenant, one of its keys, or tenant-and-model).

    ``key`` identifies the scope's counters in any backend, e.g. ``{acme}:m:gpt-4o``; the
    tenant in braces is a Redis Cluster hash tag, so every key of one request shares a slot.
    """

    kind: ScopeKind
    name: str  # for messages: the tenant, key id or model alias
    key: str
    rpm: int | None = None
    tpm: int | None = None
    concurrency: int | None = None

    @property
    def windowed(self) -> bool:
        """Whether the scope keeps a sliding-window log (it has an RPM or TPM limit)."""
        return self.rpm is not None or self.tpm is not None


@dataclass(frozen=True, slots=True)
class BudgetCheck:
    """A tenant's spend ceilings, in micro-dollars per UTC day and per UTC month."""

    key: str  # e.g. ``{acme}:b``; backends append the period
    daily: int | None
    monthly: int | None


@dataclass(frozen=True, slots=True)
class Plan:
    """Every check that applies to one (tenant, key, model): built once, reused per request."""

    tenant: str
    scopes: tuple[ScopeCheck, ...]
    budget: BudgetCheck | None

    @property
    def empty(self) -> bool:
        return not self.scopes and self.budget is None


@dataclass(frozen=True, slots=True)
class Ask:
    """One request's demand against a plan; ``id`` names its entries in every window."""

    id: str
    plan: Plan
    tokens: int
    cost_micro: int


@dataclass(frozen=True, slots=True)
class ScopeUsage:
    """A windowed scope's state after the decision (what the ``x-ratelimit-*`` headers show).

    The reset times are milliseconds until the oldest entry leaves the window, i.e. until
    ``remaining`` next grows; 0 when the window is empty.
    """

    requests: int
    tokens: int
    reset_ms: int


@dataclass(frozen=True, slots=True)
class Refusal:
    """Which limit refused the request, how full it was, and when to try again."""

    limit: LimitName
    scope: int  # index into ``plan.scopes``; -1 for the budget
    used: int  # requests, tokens, leases or micro-dollars in use (with reservations)
    retry_ms: int


@dataclass(frozen=True, slots=True)
class Periods:
    """The UTC day and month a budget reservation was counted in, and when their keys expire.

    Settlement adjusts these same counters even if the day has turned since admission.
    """

    day: int  # YYYYMMDD
    month: int  # YYYYMM
    day_end_ms: int  # start of the next UTC day, epoch milliseconds
    month_end_ms: int


NO_PERIODS: Final = Periods(0, 0, 0, 0)


@dataclass(frozen=True, slots=True)
class Verdict:
    """A backend's answer: admitted or refused (nothing applied), with the scopes' usage."""

    refusal: Refusal | None
    usage: tuple[ScopeUsage | None, ...]  # aligned with ``plan.scopes``; None: not windowed
    periods: Periods = NO_PERIODS

    @property
    def admitted(self) -> bool:
        return self.refusal is None


@dataclass(frozen=True, slots=True)
class Settlement:
    """The real usage of an admitted request, replacing its estimate."""

    ask: Ask
    periods: Periods
    tokens: int
    cost_micro: int
