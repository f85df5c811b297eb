"""The per-worker byte budget: what fits runs at once, first come first served, an event
larger than the budget runs alone, a cancelled waiter leaves no bytes behind."""

import asyncio

import pytest

from workers.budget import ByteBudget


async def test_what_fits_runs_at_once_the_rest_waits_in_order() -> None:
    budget = ByteBudget(10)
    await budget.acquire(6)
    await budget.acquire(4)
    admitted: list[str] = []

    async def take(name: str, size: int) -> None:
        await budget.acquire(size)
        admitted.append(name)

    big = asyncio.create_task(take("big", 8))
    await asyncio.sleep(0)
    small = asyncio.create_task(take("small", 1))  # would fit after 4 go, but big is first
    await asyncio.sleep(0)
    budget.release(4)
    await asyncio.sleep(0)
    assert admitted == [] and budget.held == 6
    budget.release(6)
    await asyncio.wait_for(asyncio.gather(big, small), 1)
    assert admitted == ["big", "small"] and budget.held == 9


async def test_an_event_larger_than_the_budget_runs_alone() -> None:
    budget = ByteBudget(10)
    async with budget.hold(25):
        assert budget.held == 25
        waiting = asyncio.create_task(budget.acquire(1))
        await asyncio.sleep(0)
        assert not waiting.done()
    await asyncio.wait_for(waiting, 1)
    assert budget.held == 1


async def test_a_cancelled_waiter_holds_nothing_and_lets_the_next_in() -> None:
    budget = ByteBudget(10)
    await budget.acquire(10)
    first = asyncio.create_task(budget.acquire(10))
    second = asyncio.create_task(budget.acquire(10))
    await asyncio.sleep(0)
    first.cancel()
    with pytest.raises(asyncio.CancelledError):
        await first
    budget.release(10)
    await asyncio.wait_for(second, 1)
    assert budget.held == 10
    with pytest.raises(ValueError):
        ByteBudget(0)
