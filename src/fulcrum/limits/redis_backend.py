"""Limits shared by every replica: one Lua script call per admission, one per settlement batch.

The scripts (see :mod:`fulcrum.limits.scripts`) evaluate and apply all checks of a request
atomically on the Redis server, with the server's clock. The client never retries on its own:
a failure surfaces at once, within ``RedisConfig`` timeouts, so the limiter can fall back or
refuse instead of stalling the request.

Calls queue for a connection at a FIFO semaphore sized like the pool. redis-py's blocking pool
lets a task that just released a connection take it again before a waiter wakes, which under
load starved the settlement flusher into "No connection available" errors (seen in
``bench/limits.py``); the semaphore serves waiters in order, so the pool itself never waits.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from fulcrum.config import RedisConfig
from fulcrum.limits.checks import (
    LEASE_MS,
    LIMIT_CODES,
    WINDOW_MS,
    Ask,
    Periods,
    Plan,
    Refusal,
    ScopeUsage,
    Settlement,
    Verdict,
)
from fulcrum.limits.scripts import ADMIT, SETTLE

DEFAULT_MAX_CONNECTIONS = 64
_ENCODING_CACHE_SIZE = 10_000
_HEAD = 9  # integers before the per-scope triples in the admit script's reply


def _limit(value: int | None) -> int:
    return -1 if value is None else value


class RedisBackend:
    """Counters in Redis under ``key_prefix + "rl:"``; every key written has a TTL."""

    remote = True

    def __init__(
        self,
        client: Redis,
        key_prefix: str,
        *,
        window_ms: int = WINDOW_MS,
        lease_ms: int = LEASE_MS,
        max_in_flight: int = DEFAULT_MAX_CONNECTIONS,
    ) -> None:
        self.client = client
        self._gate = asyncio.Semaphore(max_in_flight)
        self.base = f"{key_prefix}rl:"
        self._window = str(window_ms)
        self._lease = str(lease_ms)
        self._encodings: dict[int, tuple[Plan, list[str], str, str]] = {}
        self._admit = client.register_script(ADMIT)
        self._settle = client.register_script(SETTLE)

    @classmethod
    def from_config(
        cls, config: RedisConfig, *, max_connections: int = DEFAULT_MAX_CONNECTIONS
    ) -> RedisBackend:
        """A client with short timeouts, no automatic retries and a bounded pool."""
        pool = BlockingConnectionPool.from_url(
            config.url,
            max_connections=max_connections,
            timeout=config.timeout,  # waiting for a free connection counts as a slow Redis
            socket_connect_timeout=config.connect_timeout,
            socket_timeout=config.timeout,
            retry=Retry(NoBackoff(), 0),
        )
        client = Redis.from_pool(pool)  # the client owns the pool and closes it
        return cls(client, config.key_prefix, max_in_flight=max_connections)

    def _encoded(self, plan: Plan) -> tuple[list[str], str, str]:
        """A plan's declared keys, its admit spec and its settle flags, computed once per plan.

        Few, pre-joined arguments keep redis-py's per-argument encoding off the hot path.
        """
        cached = self._encodings.get(id(plan))
        if cached is not None and cached[0] is plan:
            return cached[1], cached[2], cached[3]
        keys = [self.base + scope.key for scope in plan.scopes]
        spec = [len(plan.scopes), 0 if plan.budget is None else 1]
        for scope in plan.scopes:
            spec += (_limit(scope.rpm), _limit(scope.tpm), _limit(scope.concurrency))
        if plan.budget is not None:
            keys.append(self.base + plan.budget.key)
            spec += (_limit(plan.budget.daily), _limit(plan.budget.monthly))
        flags = " ".join(
            str((scope.tpm is not None) + 2 * (scope.concurrency is not None))
            for scope in plan.scopes
        )
        if len(self._encodings) >= _ENCODING_CACHE_SIZE:
            self._encodings.clear()
        self._encodings[id(plan)] = (plan, keys, " ".join(map(str, spec)), flags)
        return keys, " ".join(map(str, spec)), flags

    async def admit(self, ask: Ask) -> Verdict:
        keys, spec, _ = self._encoded(ask.plan)
        args = (ask.id, ask.tokens, ask.cost_micro, self._window, self._lease, spec)
        async with self._gate:
            reply = await self._admit(keys=keys, args=args)
        return parse_verdict(reply, len(ask.plan.scopes))

    async def settle(self, settlements: Sequence[Settlement]) -> None:
        if not settlements:
            return
        keys: list[str] = []
        args: list[str | int] = [len(settlements)]
        for item in settlements:
            ask = item.ask
            budget = ask.plan.budget
            plan_keys, _, flags = self._encoded(ask.plan)
            periods = item.periods
            daily = budget is not None and budget.daily is not None
            monthly = budget is not None and budget.monthly is not None
            keys += plan_keys
            args.append(ask.id)
            args.append(
                f"{len(ask.plan.scopes)} {0 if budget is None else 1} {item.tokens} "
                f"{item.cost_micro - ask.cost_micro} {periods.day if daily else 0} "
                f"{periods.month if monthly else 0} {periods.day_end_ms} "
                f"{periods.month_end_ms} {flags}"
            )
        async with self._gate:
            await self._settle(keys=keys, args=args)

    async def ping(self) -> bool:
        return bool(await self.client.ping())

    async def aclose(self) -> None:
        await self.client.aclose()


def parse_verdict(reply: Any, scopes: int) -> Verdict:
    """The admit script's flat integer reply as a Verdict."""
    values = [int(value) for value in reply]
    if len(values) != _HEAD + 3 * scopes:
        raise ValueError(f"unexpected reply from the admit script: {values!r}")
    admitted, code, scope, used, retry, day, month, day_end, month_end = values[:_HEAD]
    refusal = None if admitted else Refusal(LIMIT_CODES[code - 1], scope, used, max(0, retry))
    usage: list[ScopeUsage | None] = []
    for index in range(scopes):
        requests, tokens, reset = values[_HEAD + 3 * index : _HEAD + 3 * index + 3]
        usage.append(None if reset < 0 else ScopeUsage(requests, tokens, reset))
    return Verdict(refusal, tuple(usage), Periods(day, month, day_end, month_end))
