"""Limits counted in this process: exact for one replica, and the fallback when Redis is down.

Every method runs without awaiting, so one admission is atomic on the event loop: all checks
are evaluated before any counter changes, exactly as the Redis script does. Idle scopes are
swept once per window so the dictionaries do not grow with tenants that went away.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

from fulcrum.limits.checks import (
    LEASE_MS,
    NO_PERIODS,
    WINDOW_MS,
    Ask,
    LimitName,
    Periods,
    Refusal,
    ScopeUsage,
    Settlement,
    Verdict,
)
from fulcrum.limits.periods import DAY_MS, periods_at
from fulcrum.limits.window import Leases, SlidingWindow

CONCURRENCY_RETRY_MS = 1000  # when a lease frees is unknowable; suggest a short wait


class MemoryBackend:
    """Sliding windows, leases and budget counters in dictionaries; ``clock`` is injectable."""

    remote = False

    def __init__(
        self,
        clock: Callable[[], float] = time.time,
        *,
        window_ms: int = WINDOW_MS,
        lease_ms: int = LEASE_MS,
    ) -> None:
        self._clock = clock
        self._window_ms = window_ms
        self._lease_ms = lease_ms
        self._windows: dict[str, SlidingWindow] = {}
        self._leases: dict[str, Leases] = {}
        self._spent: dict[str, list[int]] = {}  # period key -> [micro-dollars, expires at ms]
        self._next_sweep = 0

    def now_ms(self) -> int:
        return int(self._clock() * 1000)

    async def admit(self, ask: Ask) -> Verdict:
        return self.decide(ask)

    def decide(self, ask: Ask) -> Verdict:
        """Evaluate every check, then apply all of them only if none refuses."""
        now = self.now_ms()
        if now >= self._next_sweep:
            self._sweep(now)
        plan = ask.plan
        refusal: Refusal | None = None
        windows: list[SlidingWindow | None] = []
        leases: list[Leases | None] = []
        for index, scope in enumerate(plan.scopes):
            window = None
            if scope.windowed:
                window = self._windows.get(scope.key)
                if window is None:
                    window = self._windows[scope.key] = SlidingWindow(self._window_ms)
                window.prune(now)
                if refusal is None:
                    refusal = _check_window(window, scope.rpm, scope.tpm, ask.tokens, index, now)
            windows.append(window)
            lease = None
            if scope.concurrency is not None:
                lease = self._leases.get(scope.key)
                if lease is None:
                    lease = self._leases[scope.key] = Leases(self._lease_ms)
                lease.prune(now)
                if refusal is None and len(lease) >= scope.concurrency:
                    refusal = Refusal("concurrency", index, len(lease), CONCURRENCY_RETRY_MS)
            leases.append(lease)
        periods = periods_at(now) if plan.budget is not None else NO_PERIODS
        budgets = self._budget_counters(ask, periods)
        if refusal is None:
            for limit_name, key, limit, ends in budgets:
                spent = self._spent_in(key)
                if spent >= limit or spent + ask.cost_micro > limit:
                    refusal = Refusal(limit_name, -1, spent, ends - now)
                    break
        if refusal is None:
            for window in windows:
                if window is not None:
                    window.add(ask.id, now, ask.tokens)
            for lease in leases:
                if lease is not None:
                    lease.add(ask.id, now)
            for _, key, _, ends in budgets:
                entry = self._spent.setdefault(key, [0, ends + DAY_MS])
                entry[0] += ask.cost_micro
        usage = tuple(
            None
            if window is None
            else ScopeUsage(window.requests, window.tokens, window.reset_ms(now))
            for window in windows
        )
        return Verdict(refusal, usage, periods)

    async def settle(self, settlements: Sequence[Settlement]) -> None:
        for settlement in settlements:
            self.apply(settlement)

    def apply(self, settlement: Settlement) -> None:
        """Settle one reservation now: real tokens, real cost, lease released."""
        ask = settlement.ask
        for scope in ask.plan.scopes:
            if scope.windowed:
                window = self._windows.get(scope.key)
                if window is not None:
                    window.replace(ask.id, settlement.tokens)
            if scope.concurrency is not None:
                lease = self._leases.get(scope.key)
                if lease is not None:
                    lease.release(ask.id)
        budget = ask.plan.budget
        delta = settlement.cost_micro - ask.cost_micro
        if budget is not None and delta:
            periods = settlement.periods
            if budget.daily is not None:
                self._adjust(f"{budget.key}:d:{periods.day}", delta)
            if budget.monthly is not None:
                self._adjust(f"{budget.key}:m:{periods.month}", delta)

    async def aclose(self) -> None:
        return None

    @staticmethod
    def _budget_counters(ask: Ask, periods: Periods) -> list[tuple[LimitName, str, int, int]]:
        """(limit, counter key, ceiling, period end) of each budget the ask is counted in."""
        budget = ask.plan.budget
        counters: list[tuple[LimitName, str, int, int]] = []
        if budget is not None:
            if budget.daily is not None:
                key = f"{budget.key}:d:{periods.day}"
                counters.append(("budget_daily", key, budget.daily, periods.day_end_ms))
            if budget.monthly is not None:
                key = f"{budget.key}:m:{periods.month}"
                counters.append(("budget_monthly", key, budget.monthly, periods.month_end_ms))
        return counters

    def _spent_in(self, key: str) -> int:
        entry = self._spent.get(key)
        return entry[0] if entry is not None else 0

    def _adjust(self, key: str, delta: int) -> None:
        entry = self._spent.get(key)
        if entry is not None:  # a period swept away is over; nothing left to correct
            entry[0] += delta

    def _sweep(self, now: int) -> None:
        """Forget scopes with nothing in their window, no leases, and budgets of past periods."""
        self._next_sweep = now + self._window_ms
        for window in self._windows.values():
            window.prune(now)
        for lease in self._leases.values():
            lease.prune(now)
        for key in [k for k, window in self._windows.items() if window.requests == 0]:
            del self._windows[key]
        for key in [k for k, lease in self._leases.items() if len(lease) == 0]:
            del self._leases[key]
        for key in [k for k, (_, expires) in self._spent.items() if expires <= now]:
            del self._spent[key]


def _check_window(
    window: SlidingWindow, rpm: int | None, tpm: int | None, tokens: int, index: int, now: int
) -> Refusal | None:
    if rpm is not None and window.requests >= rpm:
        return Refusal("rpm", index, window.requests, window.retry_requests_ms(rpm, now))
    if tpm is not None and window.tokens + tokens > tpm:
        return Refusal("tpm", index, window.tokens, window.retry_tokens_ms(tpm, tokens, now))
    return None
