"""The tee of encrypt's one pass: every writer gets every byte, a slow or failing one is
detached and the others go on, a failing source completes no write."""

import asyncio
from collections.abc import AsyncIterator

import pytest

from workers.stores.fanout import StalledTarget, tee


async def chunks(n: int, size: int = 10) -> AsyncIterator[bytes]:
    for i in range(n):
        yield bytes([i % 256]) * size


async def collect(stream: AsyncIterator[bytes]) -> bytes:
    return b"".join([c async for c in stream])


async def test_every_writer_gets_every_chunk_in_order() -> None:
    teed = await tee(chunks(50), {"a": collect, "b": collect, "c": collect}, depth=2, stall_s=5)
    expected = b"".join([c async for c in chunks(50)])
    assert teed.results == {"a": expected, "b": expected, "c": expected}
    assert teed.detached == {}


async def test_an_empty_stream_still_completes_every_write() -> None:
    teed = await tee(chunks(0), {"a": collect, "b": collect}, depth=1, stall_s=5)
    assert teed.results == {"a": b"", "b": b""}


async def test_encryption_runs_at_most_depth_chunks_ahead_of_a_writer() -> None:
    produced = 0
    gate = asyncio.Event()
    seen_ahead: list[int] = []

    async def source() -> AsyncIterator[bytes]:
        nonlocal produced
        for _ in range(20):
            produced += 1
            yield b"x"

    async def held(stream: AsyncIterator[bytes]) -> bytes:
        await gate.wait()
        return await collect(stream)

    async def counting(stream: AsyncIterator[bytes]) -> bytes:
        consumed = 0
        async for _ in stream:
            consumed += 1
            seen_ahead.append(produced - consumed)
            if consumed == 2:
                gate.set()
        return b""

    teed = await tee(source(), {"held": held, "counting": counting}, depth=3, stall_s=30)
    assert teed.detached == {}
    # While "held" reads nothing, the source runs at most its queue (3) + 1 in hand ahead.
    assert max(seen_ahead) <= 3 + 1


async def test_a_stalled_writer_is_detached_and_the_others_complete() -> None:
    never = asyncio.Event()
    cancelled = asyncio.Event()

    async def stuck(stream: AsyncIterator[bytes]) -> bytes:
        try:
            await never.wait()
        finally:
            cancelled.set()
        return b""

    teed = await tee(chunks(30), {"fast": collect, "stuck": stuck}, depth=2, stall_s=0.05)
    assert set(teed.results) == {"fast"}
    assert len(teed.results["fast"]) == 300
    assert isinstance(teed.detached["stuck"], StalledTarget)
    assert cancelled.is_set()  # its write was cancelled, so it commits nothing


async def test_a_writer_slow_to_finish_is_detached_after_the_others_finished() -> None:
    never = asyncio.Event()

    async def reads_then_hangs(stream: AsyncIterator[bytes]) -> bytes:
        await collect(stream)
        await never.wait()  # e.g. a commit that never answers
        return b""

    teed = await tee(chunks(3), {"a": collect, "b": reads_then_hangs}, depth=8, stall_s=0.05)
    assert set(teed.results) == {"a"}
    assert isinstance(teed.detached["b"], StalledTarget)


async def test_writers_all_slower_than_the_source_are_backpressure_not_detached() -> None:
    async def slow(stream: AsyncIterator[bytes]) -> bytes:
        out = b""
        async for chunk in stream:
            await asyncio.sleep(0.002)  # a store slower than encryption, as every one is
            out += chunk
        return out

    teed = await tee(chunks(40), {"a": slow, "b": slow}, depth=1, stall_s=10)
    assert teed.detached == {}
    assert len(teed.results["a"]) == len(teed.results["b"]) == 400


async def slower(stream: AsyncIterator[bytes]) -> bytes:
    """A store taking 10 ms per 1,000-byte chunk: 100 kB/s, slower than a fast one."""
    out = b""
    async for chunk in stream:
        await asyncio.sleep(0.01)
        out += chunk
    return out


async def test_a_writer_slower_than_the_rest_but_above_the_floor_rate_is_waited_for() -> None:
    # It holds the fast one back ~0.3 s in all, six times stall_s, but 100 kB/s is ten times
    # the 10 kB/s floor: the allowance grows by 0.1 s per chunk, it stalls 0.01 s per chunk.
    teed = await tee(
        chunks(30, 1000), {"fast": collect, "slower": slower}, depth=1, stall_s=0.05, min_rate=1e4
    )
    assert teed.detached == {}
    assert len(teed.results["slower"]) == 30_000


async def test_a_writer_slower_than_the_floor_rate_is_detached() -> None:
    # 100 kB/s against a 1 MB/s floor: the allowance grows by 1 ms per chunk, it stalls 10 ms.
    teed = await tee(
        chunks(30, 1000), {"fast": collect, "slower": slower}, depth=1, stall_s=0.05, min_rate=1e6
    )
    assert set(teed.results) == {"fast"}
    assert isinstance(teed.detached["slower"], StalledTarget)


async def test_a_failing_writer_is_detached_with_its_error() -> None:
    async def fails(stream: AsyncIterator[bytes]) -> bytes:
        async for _ in stream:
            raise ConnectionError("store went away")
        return b""

    teed = await tee(chunks(10), {"ok": collect, "bad": fails}, depth=1, stall_s=5)
    assert len(teed.results["ok"]) == 100
    assert isinstance(teed.detached["bad"], ConnectionError)


async def test_when_every_writer_is_detached_the_source_is_not_read_on() -> None:
    read = 0

    async def source() -> AsyncIterator[bytes]:
        nonlocal read
        for _ in range(1000):
            read += 1
            yield b"x"

    async def fails(stream: AsyncIterator[bytes]) -> bytes:
        raise ConnectionError("down")

    teed = await tee(source(), {"a": fails, "b": fails}, depth=1, stall_s=5)
    assert teed.results == {}
    assert set(teed.detached) == {"a", "b"}
    assert read < 10


async def test_a_failing_source_completes_no_write() -> None:
    completed: list[str] = []

    async def source() -> AsyncIterator[bytes]:
        yield b"a"
        yield b"b"
        raise ValueError("source changed")

    async def write(stream: AsyncIterator[bytes]) -> bytes:
        data = await collect(stream)
        completed.append("done")
        return data

    with pytest.raises(ValueError, match="source changed"):
        await tee(source(), {"a": write, "b": write}, depth=4, stall_s=5)
    assert completed == []


async def test_depth_below_one_is_refused() -> None:
    with pytest.raises(ValueError):
        await tee(chunks(1), {"a": collect}, depth=0, stall_s=1)
