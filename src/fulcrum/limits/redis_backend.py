"""Limits shared by every replica: one Lua script call per batch of admissions or settlements.

The scripts (see :mod:`fulcrum.limits.scripts`) evaluate and apply all checks of a request
atomically on the Redis server, with the server's clock. The client never retries on its own:
a failure surfaces at once, within ``RedisConfig`` timeouts, so the limiter can fall back or
refuse instead of stalling the request.

Admissions are coalesced: one script call is in flight at a time, and the asks that arrive
meanwhile go together in the next one, which decides them in arrival order, each atomically
and against the state the ones before it left — what one call per ask would have decided, for
a fraction of the cost on this side (per call: a socket write and read and the client's
bookkeeping, which otherwise dominate a request's limit check). Alone, an ask is sent at once.

Admission and settlement batches each have a connection of their own
(:class:`~fulcrum.limits.channel.ScriptChannel`), each call bounded by the client's timeouts;
the client's own pool is left for everything else.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from fulcrum.config import RedisConfig
from fulcrum.limits.channel import Script, ScriptChannel, encode_arg
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

DEFAULT_MAX_CONNECTIONS = 4
# Asks decided by one admission call at most: bounds how long one script blocks Redis.
MAX_ADMIT_BATCH = 128
_ENCODING_CACHE_SIZE = 10_000
_HEAD = 9  # integers before the per-scope triples in the admit script's reply


def _limit(value: int | None) -> int:
    return -1 if value is None else value


@dataclass(frozen=True, slots=True)
class _Encoding:
    """What a plan contributes to every script call, encoded once."""

    plan: Plan
    keys: bytes  # its declared keys, as RESP bulk strings
    key_count: int
    spec: str  # the admit spec after tokens and cost
    settle_head: str  # "n_scopes has_budget"
    settle_flags: str  # per scope: 1 tokens tracked + 2 holds a lease
    daily: bool
    monthly: bool
    scopes: int


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
        max_batch: int = MAX_ADMIT_BATCH,
    ) -> None:
        """Script calls use connections made with ``client``'s settings and are bounded by
        its socket (and connect) timeouts; the client itself only answers ``ping``."""
        self.client = client
        self.base = f"{key_prefix}rl:"
        self._head = [encode_arg(str(window_ms)), encode_arg(str(lease_ms))]
        self._encodings: dict[int, _Encoding] = {}
        self._batch_size = max_batch
        self._waiting: list[tuple[Ask, asyncio.Future[Verdict]]] = []
        self._sender: asyncio.Task[None] | None = None
        self._admit = Script(ADMIT)
        self._settle = Script(SETTLE)
        self._admissions = ScriptChannel(client)
        self._settlements = ScriptChannel(client)

    @classmethod
    def from_config(
        cls, config: RedisConfig, *, max_connections: int = DEFAULT_MAX_CONNECTIONS
    ) -> RedisBackend:
        """A client with short timeouts and no automatic retries (its pool serves ``ping``)."""
        pool = BlockingConnectionPool.from_url(
            config.url,
            max_connections=max_connections,
            timeout=config.timeout,  # waiting for a free connection counts as a slow Redis
            socket_connect_timeout=config.connect_timeout,
            socket_timeout=config.timeout,
            retry=Retry(NoBackoff(), 0),
        )
        client = Redis.from_pool(pool)  # the client owns the pool and closes it
        return cls(client, config.key_prefix)

    @property
    def admit_calls(self) -> int:
        """Script calls made to admit so far (fewer than asks when they were coalesced)."""
        return self._admissions.calls

    def _encoded(self, plan: Plan) -> _Encoding:
        """A plan's keys and specs, computed once per plan (plans are cached by the limiter)."""
        cached = self._encodings.get(id(plan))
        if cached is not None and cached.plan is plan:
            return cached
        keys = [self.base + scope.key for scope in plan.scopes]
        budget = plan.budget
        spec = [len(plan.scopes), 0 if budget is None else 1]
        for scope in plan.scopes:
            spec += (_limit(scope.rpm), _limit(scope.tpm), _limit(scope.concurrency))
        if budget is not None:
            keys.append(self.base + budget.key)
            spec += (_limit(budget.daily), _limit(budget.monthly))
        encoding = _Encoding(
            plan=plan,
            keys=b"".join(encode_arg(key) for key in keys),
            key_count=len(keys),
            spec=" ".join(map(str, spec)),
            settle_head=f"{len(plan.scopes)} {0 if budget is None else 1}",
            settle_flags=" ".join(
                str((scope.tpm is not None) + 2 * (scope.concurrency is not None))
                for scope in plan.scopes
            ),
            daily=budget is not None and budget.daily is not None,
            monthly=budget is not None and budget.monthly is not None,
            scopes=len(plan.scopes),
        )
        if len(self._encodings) >= _ENCODING_CACHE_SIZE:
            self._encodings.clear()
        self._encodings[id(plan)] = encoding
        return encoding

    # -- admission ---------------------------------------------------------------------------

    async def admit(self, ask: Ask) -> Verdict:
        """Join the next batch; the verdict comes when that batch's script call returns.

        A call that fails fails its batch and the asks waiting behind it (the limiter's outage
        policy then decides for each), so no ask waits much longer than two calls' timeouts.
        """
        future: asyncio.Future[Verdict] = asyncio.get_running_loop().create_future()
        self._waiting.append((ask, future))
        if self._sender is None:
            self._sender = asyncio.get_running_loop().create_task(self._send_admissions())
        return await future

    async def _send_admissions(self) -> None:
        """The one admission call in flight: send what waits, batch after batch, until none."""
        batch: list[tuple[Ask, asyncio.Future[Verdict]]] = []
        try:
            while self._waiting:
                waiting = self._waiting
                # A caller that gave up before its batch left is not sent.
                batch = [item for item in waiting[: self._batch_size] if not item[1].done()]
                del waiting[: self._batch_size]
                if not batch:
                    continue
                try:
                    verdicts = await self.admit_batch([ask for ask, _ in batch])
                except Exception as exc:
                    waiting, self._waiting = self._waiting, []
                    _fail(batch, exc)
                    _fail(waiting, exc)
                    continue
                for (_, future), verdict in zip(batch, verdicts, strict=True):
                    if not future.done():  # a caller that left: its reservation expires
                        future.set_result(verdict)
        except BaseException:  # cancelled (shutdown): what was taken fails like what waits
            _fail(batch, _stopped())
            raise
        finally:
            self._sender = None
            if self._waiting:  # only after a cancellation: nobody would send these
                waiting, self._waiting = self._waiting, []
                _fail(waiting, _stopped())

    async def admit_batch(self, asks: Sequence[Ask]) -> list[Verdict]:
        """One script call deciding ``asks`` in order; one verdict per ask."""
        keys: list[bytes] = []
        args = [*self._head, encode_arg(str(len(asks)))]
        scopes: list[int] = []
        key_count = 0
        for ask in asks:
            encoding = self._encoded(ask.plan)
            keys.append(encoding.keys)
            key_count += encoding.key_count
            scopes.append(encoding.scopes)
            args.append(encode_arg(ask.id))
            args.append(encode_arg(f"{ask.tokens} {ask.cost_micro} {encoding.spec}"))
        reply = await self._admissions.call(self._admit, key_count, keys, len(args), args)
        return parse_verdicts(reply, scopes)

    # -- settlement --------------------------------------------------------------------------

    async def settle(self, settlements: Sequence[Settlement]) -> None:
        if not settlements:
            return
        keys: list[bytes] = []
        args = [encode_arg(str(len(settlements)))]
        key_count = 0
        for item in settlements:
            ask = item.ask
            encoding = self._encoded(ask.plan)
            periods = item.periods
            keys.append(encoding.keys)
            key_count += encoding.key_count
            args.append(encode_arg(ask.id))
            args.append(
                encode_arg(
                    f"{encoding.settle_head} {item.tokens} {item.cost_micro - ask.cost_micro} "
                    f"{periods.day if encoding.daily else 0} "
                    f"{periods.month if encoding.monthly else 0} {periods.day_end_ms} "
                    f"{periods.month_end_ms} {encoding.settle_flags}"
                )
            )
        await self._settlements.call(self._settle, key_count, keys, len(args), args)

    async def ping(self) -> bool:
        return bool(await self.client.ping())

    async def aclose(self) -> None:
        if self._sender is not None:  # the asks already queued get their answer first
            await asyncio.wait({self._sender})
        await self._admissions.aclose()
        await self._settlements.aclose()
        await self.client.aclose()


def _stopped() -> ConnectionError:
    return ConnectionError("the Redis admission call was cancelled")


def _fail(batch: Sequence[tuple[Ask, asyncio.Future[Verdict]]], error: Exception) -> None:
    for _, future in batch:
        if not future.done():
            future.set_exception(error)


def parse_verdicts(reply: Any, scopes: Sequence[int]) -> list[Verdict]:
    """The admit script's flat integer reply as one Verdict per ask (``scopes``: how many
    scopes each ask's plan has, in order)."""
    if not isinstance(reply, list) or len(reply) != _HEAD * len(scopes) + 3 * sum(scopes):
        raise ValueError(f"unexpected reply from the admit script: {reply!r}")
    verdicts: list[Verdict] = []
    last: tuple[int, int, int, int] = (0, 0, 0, 0)
    periods = Periods(*last)
    at = 0
    for count in scopes:
        admitted, code, scope, used, retry, day, month, day_end, month_end = reply[at : at + 9]
        at += _HEAD
        if (day, month, day_end, month_end) != last:  # one object for the whole batch
            last = (day, month, day_end, month_end)
            periods = Periods(int(day), int(month), int(day_end), int(month_end))
        refusal = (
            None
            if admitted
            else Refusal(LIMIT_CODES[int(code) - 1], int(scope), int(used), max(0, int(retry)))
        )
        usage: list[ScopeUsage | None] = []
        for _ in range(count):
            requests, tokens, reset = reply[at : at + 3]
            at += 3
            usage.append(None if reset < 0 else ScopeUsage(int(requests), int(tokens), int(reset)))
        verdicts.append(Verdict(refusal, tuple(usage), periods))
    return verdicts
