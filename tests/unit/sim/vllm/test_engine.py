"""Scheduler admission (FIFO, batch and KV limits, cancellation) and the timing formulas."""

from __future__ import annotations

import asyncio

import pytest

from fulcrum.sim.vllm.engine import Run, Scheduler, Ticket, Timing


def test_prefill_is_per_prompt_token_and_scaled_by_speed() -> None:
    timing = Timing(prefill_ms_per_token=0.5, speed=2.0)
    assert timing.prefill_seconds(100) == pytest.approx(0.025)


def test_itl_grows_with_running_sequences() -> None:
    timing = Timing(itl_ms=10.0, itl_ms_per_seq=0.5)
    assert timing.itl_seconds(1) == pytest.approx(0.010)
    assert timing.itl_seconds(0) == pytest.approx(0.010)
    assert timing.itl_seconds(21) == pytest.approx(0.020)
    assert Timing(itl_ms=10.0, itl_ms_per_seq=0.5, speed=4.0).itl_seconds(21) == pytest.approx(
        0.005
    )


def test_zero_timing_has_no_delays() -> None:
    timing = Timing(zero=True)
    assert timing.prefill_seconds(10_000) == 0.0
    assert timing.itl_seconds(500) == 0.0


async def _settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


async def test_requests_beyond_max_num_seqs_wait_in_fifo_order() -> None:
    scheduler = Scheduler(max_num_seqs=2, kv_cache_tokens=10_000)
    tickets = [Ticket(width=1, prompt_tokens=10) for _ in range(5)]
    admitted: list[int] = []

    async def enter(i: int) -> None:
        await scheduler.acquire(tickets[i])
        admitted.append(i)

    tasks = [asyncio.create_task(enter(i)) for i in range(5)]
    await _settle()
    assert admitted == [0, 1]
    assert (scheduler.running, scheduler.waiting) == (2, 3)

    scheduler.release(tickets[0])
    await _settle()
    assert admitted == [0, 1, 2]
    assert (scheduler.running, scheduler.waiting) == (2, 2)

    for i in (1, 2, 3, 4):
        scheduler.release(tickets[i])
        await _settle()
    await asyncio.gather(*tasks)
    assert admitted == [0, 1, 2, 3, 4]
    assert (scheduler.running, scheduler.waiting) == (0, 0)
    assert scheduler.snapshot().kv_tokens == 0


async def test_cancelled_waiter_leaves_the_queue() -> None:
    scheduler = Scheduler(max_num_seqs=1, kv_cache_tokens=10_000)
    first = Ticket(width=1, prompt_tokens=1)
    await scheduler.acquire(first)
    waiter = asyncio.create_task(scheduler.acquire(Ticket(width=1, prompt_tokens=1)))
    await _settle()
    assert scheduler.waiting == 1
    waiter.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiter
    assert scheduler.waiting == 0
    scheduler.release(first)
    assert scheduler.running == 0


async def test_kv_budget_holds_back_a_request_whose_prompt_does_not_fit() -> None:
    scheduler = Scheduler(max_num_seqs=10, kv_cache_tokens=100)
    big = Ticket(width=1, prompt_tokens=80)
    await scheduler.acquire(big)
    scheduler.add_generated(big, 10)
    assert scheduler.snapshot().kv_usage == pytest.approx(0.9)
    second = asyncio.create_task(scheduler.acquire(Ticket(width=1, prompt_tokens=20)))
    await _settle()
    assert scheduler.waiting == 1  # 90 + 20 > 100
    scheduler.release(big)
    await second
    assert (scheduler.running, scheduler.waiting) == (1, 0)
    assert scheduler.snapshot().kv_usage == pytest.approx(0.2)


async def test_an_oversized_request_runs_alone_rather_than_never() -> None:
    scheduler = Scheduler(max_num_seqs=2, kv_cache_tokens=10)
    ticket = Ticket(width=4, prompt_tokens=50)
    await scheduler.acquire(ticket)
    assert scheduler.running == 4
    assert scheduler.snapshot().kv_usage == 1.0


async def test_run_releases_slots_even_when_cancelled_mid_decode() -> None:
    scheduler = Scheduler(max_num_seqs=4, kv_cache_tokens=1000)
    timing = Timing(prefill_ms_per_token=0.0, itl_ms=10_000.0)
    started = asyncio.Event()

    async def generate() -> None:
        async with Run(scheduler, timing, Ticket(width=2, prompt_tokens=5)) as run:
            await run.prefill()
            started.set()
            await run.next_token()

    task = asyncio.create_task(generate())
    await started.wait()
    assert scheduler.running == 2
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert scheduler.running == 0
    assert scheduler.snapshot().kv_tokens == 0


async def test_run_sleeps_on_absolute_deadlines() -> None:
    scheduler = Scheduler(max_num_seqs=4, kv_cache_tokens=1000)
    timing = Timing(prefill_ms_per_token=1.0, itl_ms=5.0, itl_ms_per_seq=0.0)
    loop = asyncio.get_running_loop()
    start = loop.time()
    async with Run(scheduler, timing, Ticket(width=1, prompt_tokens=20)) as run:
        await run.prefill()
        after_prefill = loop.time()
        for _ in range(4):
            await run.next_token()
    end = loop.time()
    assert after_prefill - start >= 0.020
    assert end - start >= 0.020 + 4 * 0.005
