"""``Coalesced``: the gets of one turn in one fetch, later gets in the next, errors to all."""

import asyncio

import pytest

from workers.coalesce import Coalesced


class Source:
    """A fetch that records the keys of each call; ``gate`` holds a call until set."""

    def __init__(self, values: dict[str, int], fail: Exception | None = None) -> None:
        self.values, self.fail = values, fail
        self.calls: list[list[str]] = []
        self.gate = asyncio.Event()
        self.gate.set()

    async def fetch(self, keys: list[str]) -> dict[str, int]:
        self.calls.append(keys)
        await self.gate.wait()
        if self.fail is not None:
            raise self.fail
        return {k: self.values[k] for k in keys if k in self.values}


async def test_the_gets_of_one_batch_are_one_fetch_each_answered_its_own() -> None:
    source = Source({"a": 1, "b": 2})
    reads = Coalesced(source.fetch)
    got = await asyncio.gather(*(reads.get(k) for k in ("a", "b", "a", "missing")))
    assert got == [1, 2, 1, None]
    assert source.calls == [["a", "b", "missing"]]


async def test_a_get_while_a_fetch_is_out_goes_in_the_next() -> None:
    source = Source({"a": 1, "b": 2, "c": 3})
    source.gate.clear()
    reads = Coalesced(source.fetch)
    first = asyncio.gather(reads.get("a"), reads.get("b"))
    while not source.calls:  # the first fetch has taken its keys
        await asyncio.sleep(0)
    later = asyncio.ensure_future(reads.get("c"))
    while len(source.calls) < 2:
        await asyncio.sleep(0)
    source.gate.set()
    assert await first == [1, 2]
    assert await later == 3
    assert source.calls == [["a", "b"], ["c"]]


async def test_a_failed_fetch_raises_in_every_get_it_answered_and_the_next_fetches_again() -> None:
    source = Source({"a": 1}, fail=RuntimeError("down"))
    reads = Coalesced(source.fetch)
    got = await asyncio.gather(reads.get("a"), reads.get("b"), return_exceptions=True)
    assert [str(e) for e in got] == ["down", "down"]
    source.fail = None
    assert await reads.get("a") == 1
    assert source.calls == [["a", "b"], ["a"]]


async def test_a_cancelled_get_leaves_the_others_answered() -> None:
    source = Source({"a": 1, "b": 2})
    source.gate.clear()
    reads = Coalesced(source.fetch)
    cancelled = asyncio.ensure_future(reads.get("a"))
    kept = asyncio.ensure_future(reads.get("b"))
    while not source.calls:
        await asyncio.sleep(0)
    cancelled.cancel()
    source.gate.set()
    async with asyncio.timeout(5):  # a fetch that stopped at the cancelled get never answers
        assert await kept == 2
    with pytest.raises(asyncio.CancelledError):
        await cancelled
