"""The uploading backends' shared loops: re-cutting a stream into blocks, and sending them
(at most ``most`` at a time) while the next is cut."""

import asyncio
from collections.abc import AsyncIterator

import pytest

from workers.stores import fixed_blocks, overlapped


async def chunks_of(*chunks: bytes) -> AsyncIterator[bytes]:
    for chunk in chunks:
        yield chunk


async def collect(stream: AsyncIterator[tuple[bytes, bool]]) -> list[tuple[bytes, bool]]:
    return [item async for item in stream]


@pytest.mark.parametrize(
    ("chunks", "expected"),
    [
        ((), [(b"", True)]),
        ((b"abc",), [(b"abc", True)]),
        ((b"ab", b"cd"), [(b"abcd", True)]),  # exactly one block: it is the last
        ((b"abcde",), [(b"abcd", False), (b"e", True)]),
        ((b"a", b"bcdefghij"), [(b"abcd", False), (b"efgh", False), (b"ij", True)]),
        ((b"abcd", b"efgh"), [(b"abcd", False), (b"efgh", True)]),
    ],
)
async def test_fixed_blocks_cut_full_blocks_and_flag_the_last(
    chunks: tuple[bytes, ...], expected: list[tuple[bytes, bool]]
) -> None:
    assert await collect(fixed_blocks(chunks_of(*chunks), 4)) == expected


async def blocks_of(*blocks: bytes) -> AsyncIterator[tuple[bytes, bool]]:
    for i, block in enumerate(blocks):
        yield block, i == len(blocks) - 1


async def test_overlapped_sends_every_block_in_order_one_at_a_time() -> None:
    sent: list[tuple[int, bytes, bool]] = []
    in_flight = 0
    most = 0

    async def send(index: int, block: bytes, last: bool) -> int:
        nonlocal in_flight, most
        in_flight += 1
        most = max(most, in_flight)
        await asyncio.sleep(0)  # let the next block be cut meanwhile
        sent.append((index, block, last))
        in_flight -= 1
        return index * 10

    results = await overlapped(blocks_of(b"a", b"b", b"c"), send)
    assert results == [0, 10, 20]
    assert sent == [(0, b"a", False), (1, b"b", False), (2, b"c", True)]
    assert most == 1


async def test_the_next_block_is_cut_while_one_is_being_sent() -> None:
    second_cut = asyncio.Event()

    async def source() -> AsyncIterator[tuple[bytes, bool]]:
        yield b"first", False
        second_cut.set()
        yield b"second", True

    async def send(index: int, block: bytes, last: bool) -> bytes:
        if index == 0:
            await second_cut.wait()  # never set if the send held the stream
        return block

    assert await asyncio.wait_for(overlapped(source(), send), timeout=5) == [b"first", b"second"]


async def test_a_failed_send_stops_the_upload() -> None:
    sent: list[int] = []

    async def send(index: int, block: bytes, last: bool) -> None:
        sent.append(index)
        if index == 1:
            raise RuntimeError("store refused part 1")

    with pytest.raises(RuntimeError, match="part 1"):
        await overlapped(blocks_of(b"a", b"b", b"c", b"d"), send)
    assert sent == [0, 1]


async def test_a_failing_stream_cancels_the_send_in_flight() -> None:
    started, cancelled = asyncio.Event(), asyncio.Event()

    async def source() -> AsyncIterator[tuple[bytes, bool]]:
        yield b"a", False
        await started.wait()
        raise OSError("source went away")

    async def send(index: int, block: bytes, last: bool) -> None:
        started.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            cancelled.set()
            raise

    with pytest.raises(OSError, match="went away"):
        await overlapped(source(), send)
    assert cancelled.is_set()


async def test_overlapped_keeps_at_most_most_sends_in_flight_and_results_in_order() -> None:
    started: list[int] = []
    in_flight = 0
    peak = 0
    finish = {i: asyncio.Event() for i in range(4)}

    async def send(index: int, block: bytes, last: bool) -> bytes:
        nonlocal in_flight, peak
        started.append(index)  # before the first await: in cut order
        in_flight += 1
        peak = max(peak, in_flight)
        if index == 1:
            finish[0].set()  # 1 is done before 0
        else:
            await finish[index].wait()
        in_flight -= 1
        if index < 3:
            finish[index + 1].set()
        return block

    uploaded = overlapped(blocks_of(b"a", b"b", b"c", b"d"), send, most=2)
    assert await asyncio.wait_for(uploaded, timeout=5) == [b"a", b"b", b"c", b"d"]
    assert started == [0, 1, 2, 3]
    assert peak == 2


async def test_a_failed_send_cancels_the_others_in_flight() -> None:
    cancelled = asyncio.Event()

    async def send(index: int, block: bytes, last: bool) -> None:
        if index == 0:
            await asyncio.sleep(0)
            raise RuntimeError("store refused part 0")
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            cancelled.set()
            raise

    with pytest.raises(RuntimeError, match="part 0"):
        await overlapped(blocks_of(b"a", b"b", b"c"), send, most=2)
    assert cancelled.is_set()
