"""The continuous-batching model: admission (FIFO queue, batch and KV limits) and timing.

vLLM runs at most ``max_num_seqs`` sequences at once and queues the rest in arrival order; a
queued request also waits while the KV cache cannot hold its prompt. The emulator keeps exactly
that bookkeeping, so ``vllm:num_requests_running``/``waiting`` and ``kv_cache_usage_perc`` move
the way a gateway will see them on real hardware. Timing is a small closed-form model (see
:class:`Timing`) rather than a step loop: each sequence sleeps on its own deadlines, which costs
one timer per token and nothing when latency is off.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from dataclasses import dataclass, field
from types import TracebackType


@dataclass(frozen=True, slots=True)
class Timing:
    """Latency model, in seconds, with every delay divided by ``speed``.

    * prefill (time to first token once admitted) = ``prefill_ms_per_token`` x prompt tokens
    * inter-token latency = ``itl_ms`` + ``itl_ms_per_seq`` x (running sequences - 1)

    ``zero`` means no delay anywhere: the hot path then never sleeps.
    """

    prefill_ms_per_token: float = 0.25
    itl_ms: float = 15.0
    itl_ms_per_seq: float = 0.1
    speed: float = 1.0
    zero: bool = False

    def prefill_seconds(self, prompt_tokens: int) -> float:
        if self.zero:
            return 0.0
        return self.prefill_ms_per_token * prompt_tokens / 1000.0 / self.speed

    def itl_seconds(self, running: int) -> float:
        if self.zero:
            return 0.0
        extra = self.itl_ms_per_seq * max(0, running - 1)
        return (self.itl_ms + extra) / 1000.0 / self.speed


@dataclass(slots=True, eq=False)
class Ticket:
    """One request's claim on the engine: ``width`` sequences (its ``n``) and its KV tokens."""

    width: int
    prompt_tokens: int
    arrival: float = field(default_factory=time.monotonic)
    admitted_at: float | None = None
    generated: int = 0
    running: bool = False
    waiter: asyncio.Future[None] | None = None

    @property
    def kv_tokens(self) -> int:
        return self.prompt_tokens + self.generated

    @property
    def queue_seconds(self) -> float:
        if self.admitted_at is None:
            return time.monotonic() - self.arrival
        return self.admitted_at - self.arrival


@dataclass(frozen=True, slots=True)
class Snapshot:
    """Scheduler state at one instant, as exported to ``/metrics``."""

    running: int
    waiting: int
    kv_tokens: int
    kv_capacity: int

    @property
    def kv_usage(self) -> float:
        if self.kv_capacity <= 0:
            return 0.0
        return min(1.0, self.kv_tokens / self.kv_capacity)


class Scheduler:
    """FIFO admission under a sequence limit and a KV-token budget.

    A request is admitted when it is at the head of the queue and both its sequences fit under
    ``max_num_seqs`` and its prompt fits in the free KV tokens, or when nothing is running (so
    an oversized request still runs alone instead of blocking forever). Generated tokens grow
    the KV usage; there is no preemption.
    """

    def __init__(self, max_num_seqs: int, kv_cache_tokens: int) -> None:
        self.max_num_seqs = max_num_seqs
        self.kv_cache_tokens = kv_cache_tokens
        self.running = 0
        self.waiting = 0
        self._kv_tokens = 0
        self._queue: deque[Ticket] = deque()

    def snapshot(self) -> Snapshot:
        return Snapshot(self.running, self.waiting, self._kv_tokens, self.kv_cache_tokens)

    def _fits(self, ticket: Ticket) -> bool:
        if self.running == 0:
            return True
        return (
            self.running + ticket.width <= self.max_num_seqs
            and self._kv_tokens + ticket.prompt_tokens <= self.kv_cache_tokens
        )

    def _admit(self, ticket: Ticket) -> None:
        ticket.admitted_at = time.monotonic()
        ticket.running = True
        self.running += ticket.width
        self._kv_tokens += ticket.kv_tokens

    async def acquire(self, ticket: Ticket) -> None:
        """Wait (FIFO) until ``ticket`` may run; on cancellation it leaves the queue cleanly."""
        if not self._queue and self._fits(ticket):
            self._admit(ticket)
            return
        ticket.waiter = asyncio.get_running_loop().create_future()
        self._queue.append(ticket)
        self.waiting += ticket.width
        try:
            await ticket.waiter
        except BaseException:
            if ticket.running:
                self.release(ticket)  # admitted in the same instant it was cancelled
            else:
                self._queue.remove(ticket)
                self.waiting -= ticket.width
                self._drain()  # the head may have been blocking others
            raise
        finally:
            ticket.waiter = None

    def add_generated(self, ticket: Ticket, tokens: int) -> None:
        """Account ``tokens`` newly generated tokens (all choices) to a running ticket."""
        ticket.generated += tokens
        if ticket.running:
            self._kv_tokens += tokens

    def release(self, ticket: Ticket) -> None:
        """Free a running ticket's slots and KV tokens, then admit whoever now fits."""
        if not ticket.running:
            return
        ticket.running = False
        self.running -= ticket.width
        self._kv_tokens -= ticket.kv_tokens
        self._drain()

    def _drain(self) -> None:
        while self._queue and self._fits(self._queue[0]):
            head = self._queue.popleft()
            self.waiting -= head.width
            self._admit(head)
            if head.waiter is not None and not head.waiter.done():
                head.waiter.set_result(None)


class Run:
    """One admitted request moving through prefill and decode, sleeping on absolute deadlines.

    Use as ``async with Run(scheduler, timing, ticket) as run:`` then ``await run.prefill()``
    once and ``await run.next_token()`` before every token after the first. Leaving the block
    (normally, by error or by cancellation) always frees the slots.
    """

    __slots__ = ("_deadline", "scheduler", "ticket", "timing")

    def __init__(self, scheduler: Scheduler, timing: Timing, ticket: Ticket) -> None:
        self.scheduler = scheduler
        self.timing = timing
        self.ticket = ticket
        self._deadline = 0.0

    async def __aenter__(self) -> Run:
        await self.scheduler.acquire(self.ticket)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.scheduler.release(self.ticket)

    async def prefill(self) -> None:
        """Sleep for the prompt's prefill; the first token is ready when this returns."""
        loop = asyncio.get_running_loop()
        delay = self.timing.prefill_seconds(self.ticket.prompt_tokens)
        self._deadline = loop.time() + delay
        if delay > 0:
            await asyncio.sleep(delay)

    async def next_token(self) -> None:
        """Sleep one inter-token interval, sized by how many sequences run right now."""
        if self.timing.zero:
            return
        loop = asyncio.get_running_loop()
        self._deadline += self.timing.itl_seconds(self.scheduler.running)
        delay = self._deadline - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
