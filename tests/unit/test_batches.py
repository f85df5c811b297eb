"""``take_batches`` on a real Faust stream (an in-memory channel, no broker): batches of at
most ``max_``, a window opened by a batch's first event, acknowledgement after the body."""

import asyncio
import time
from collections.abc import AsyncIterator, Callable

import faust
import pytest

from workers.batches import take_batches

WITHIN = 0.2


class Loop:
    """A stage-like loop over a channel's stream: each batch's values with the time it was
    yielded, and every acknowledgement, in order."""

    def __init__(self, app: faust.App, max_: int, hold: asyncio.Event | None = None) -> None:
        self.channel = app.channel()
        self.stream = self.channel.stream(beacon=app.beacon)  # under the app, as an agent's is
        self.max_, self.hold = max_, hold
        self.batches: list[tuple[float, list[int]]] = []
        self.log: list[str] = []
        self.changed = asyncio.Event()
        ack = self.stream.ack

        async def recorded_ack(event: faust.EventT) -> bool:
            self.note(f"ack {event.value}")
            return await ack(event)

        self.stream.ack = recorded_ack  # type: ignore[method-assign]

    def note(self, line: str) -> None:
        self.log.append(line)
        self.changed.set()

    async def run(self) -> None:
        batches: AsyncIterator[list[faust.EventT]] = take_batches(
            self.stream,  # type: ignore[arg-type]
            self.max_,
            WITHIN,
        )
        async for batch in batches:
            values = [event.value for event in batch]
            self.batches.append((time.monotonic(), values))
            self.note(f"batch {values}")
            if self.hold is not None and len(self.batches) == 2:
                await self.hold.wait()  # the second batch's body has not returned yet

    async def send(self, *values: int) -> None:
        for value in values:
            await self.channel.send(value=value)

    async def until(self, done: Callable[[], bool], timeout: float = 5.0) -> None:
        async with asyncio.timeout(timeout):
            while not done():
                self.changed.clear()
                await self.changed.wait()


@pytest.fixture
async def app() -> AsyncIterator[faust.App]:
    app = faust.App("batches", store="memory://")
    app.flow_control.resume()  # as Faust's own test contexts do
    yield app
    app.consumer._thread.thread_loop.close()  # its consumer thread's loop, never started here


@pytest.fixture
def running() -> AsyncIterator[Callable[[Loop], None]]:
    tasks: list[asyncio.Task[None]] = []

    def start(loop: Loop) -> None:
        tasks.append(asyncio.ensure_future(loop.run()))

    yield start
    for task in tasks:
        task.cancel()


async def test_full_batches_go_at_once_the_rest_a_window_after_its_first_event(
    app: faust.App, running: Callable[[Loop], None]
) -> None:
    loop = Loop(app, max_=3)
    running(loop)
    await asyncio.sleep(2 * WITHIN)  # idle for longer than a window: no batch, no tick
    sent = time.monotonic()
    await loop.send(*range(7))
    await loop.until(lambda: len(loop.batches) == 3)
    assert [values for _, values in loop.batches] == [[0, 1, 2], [3, 4, 5], [6]]
    full, last = loop.batches[1][0] - sent, loop.batches[2][0] - sent
    assert full < WITHIN / 2  # full: not held for the window
    assert last >= WITHIN * 0.95  # the lone rest waits its own window


async def test_a_lone_event_after_a_quiet_spell_waits_one_window_from_its_arrival(
    app: faust.App, running: Callable[[Loop], None]
) -> None:
    loop = Loop(app, max_=8)
    running(loop)
    await asyncio.sleep(1.75 * WITHIN)  # a ticking window would flush it at 2 x WITHIN
    sent = time.monotonic()
    await loop.send(1)
    await loop.until(lambda: len(loop.batches) == 1)
    assert loop.batches[0][0] - sent >= WITHIN * 0.95


async def test_a_batch_is_acked_in_order_only_once_its_body_returned(
    app: faust.App, running: Callable[[Loop], None]
) -> None:
    hold = asyncio.Event()
    loop = Loop(app, max_=2, hold=hold)
    running(loop)
    await loop.send(*range(4))
    await loop.until(lambda: len(loop.batches) == 2)
    assert loop.log == ["batch [0, 1]", "ack 0", "ack 1", "batch [2, 3]"]
    hold.set()
    await loop.until(lambda: "ack 3" in loop.log)
    assert loop.log[4:] == ["ack 2", "ack 3"]


async def test_an_error_taking_an_event_crashes_the_app_as_faust_take_events_does(
    app: faust.App, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Before, the error stopped the stream and the loop ended with nothing logged: an agent
    # that consumed nothing more in a worker that looked alive.
    loop = Loop(app, max_=2)
    ended = asyncio.ensure_future(loop.run())
    no_event = property(lambda _: None, lambda _, value: None)
    monkeypatch.setattr(faust.streams.Stream, "current_event", no_event)
    await loop.send(1)
    async with asyncio.timeout(5):
        await ended
    assert loop.batches == []
    assert isinstance(app.crash_reason, RuntimeError)
