"""One chunk stream written to several stores at once (encrypt's one pass, DESIGN §5).

``tee`` hands every chunk of ``source`` to one writer per target, each reading its own bounded
queue, so encryption runs ahead of the uploads by at most ``depth`` chunks per target and every
target uploads at its own pace. A target that holds the others back is detached:

- its writer failed (the error is kept: the caller decides what it means), or
- it held the others back for longer than its allowance. The tee waits for the first target to
  take a chunk (or to finish, at the end) for free, which is ordinary backpressure when the
  source is faster than every store; from then on, every moment a target is still not ready
  counts against it. The allowance is ``stall_s`` plus the time the bytes streamed so far take
  at ``min_rate`` bytes per second: a store that takes part-sized bursts, or is merely slower
  than the fastest, is waited for, and one slower than ``min_rate`` (or stuck) delays the
  others by at most ``stall_s`` beyond that, then its write is cancelled (a store commits
  nothing of a cancelled write).

If the source itself fails, every writer is cancelled and the source's error is raised: no
target completes a write of a stream that did not end.
"""

import asyncio
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from functools import partial
from typing import Generic, TypeVar

T = TypeVar("T")
_END = object()  # the stream ended normally: the writer may complete
Writer = Callable[[AsyncIterator[bytes]], Awaitable[T]]


@dataclass
class Teed(Generic[T]):
    """What each writer returned, and why the others were detached (their error, or a
    ``StalledTarget``)."""

    results: dict[str, T] = field(default_factory=dict)
    detached: dict[str, BaseException] = field(default_factory=dict)


class StalledTarget(Exception):
    """The target was slower than the rest for longer than the tee's budget."""


@dataclass(eq=False)
class _Lane:
    name: str
    queue: "asyncio.Queue[object]"
    task: "asyncio.Task[object]"
    stalled_s: float = 0.0


async def _drain(queue: "asyncio.Queue[object]") -> AsyncIterator[bytes]:
    while (item := await queue.get()) is not _END:
        assert isinstance(item, bytes)
        yield item


async def tee(
    source: AsyncIterable[bytes],
    writers: Mapping[str, Writer[T]],
    *,
    depth: int,
    stall_s: float,
    min_rate: float = float("inf"),
) -> Teed[T]:
    """Write ``source`` through every writer at once; see the module docstring."""
    if depth < 1:
        raise ValueError("depth must be at least 1")
    if min_rate <= 0:
        raise ValueError("min_rate must be positive")
    lanes: list[_Lane] = []
    for name, write in writers.items():
        queue: asyncio.Queue[object] = asyncio.Queue(maxsize=depth)
        lanes.append(_Lane(name, queue, asyncio.ensure_future(write(_drain(queue)))))
    out: Teed[T] = Teed()
    chunks = aiter(source)
    streamed, allowed = 0, stall_s
    try:
        async for chunk in chunks:
            if not chunk:
                continue
            streamed += len(chunk)
            allowed = stall_s + streamed / min_rate
            await _step(lanes, out, partial(_put, item=chunk), allowed)
            if not lanes:
                break  # every target detached: reading on would write nowhere
        else:
            await _step(lanes, out, partial(_put, item=_END), allowed)
            await _step(lanes, out, _finished, allowed)
    except BaseException:
        await _cancel(lanes)
        raise
    finally:
        close = getattr(chunks, "aclose", None)
        if close is not None:  # stopped early: let the source release what it holds
            await close()
    for lane in lanes:
        out.results[lane.name] = lane.task.result()  # type: ignore[assignment]
    return out


async def _put(lane: _Lane, item: object) -> None:
    """Queue ``item`` for the lane, or return early if its writer ended (failed)."""
    if lane.task.done():
        return
    if not lane.queue.full():
        lane.queue.put_nowait(item)
        return
    put = asyncio.ensure_future(lane.queue.put(item))
    try:
        await asyncio.wait({put, lane.task}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        put.cancel()  # no effect if it is done


async def _finished(lane: _Lane) -> None:
    await asyncio.wait({lane.task})


async def _step(
    lanes: list[_Lane],
    out: Teed[T],
    action: Callable[[_Lane], Awaitable[None]],
    allowed_s: float,
) -> None:
    """Run ``action`` on every lane; detach a lane whose writer failed, or that has held the
    others back (not done while another lane was) for longer than ``allowed_s`` in all."""
    steps = {lane: asyncio.ensure_future(action(lane)) for lane in lanes}

    def succeeded(lane: _Lane) -> bool:
        return steps[lane].done() and _error(lane.task) is None

    try:
        pending = set(steps.values())
        # Free: until one target is ready (the source outpacing every store is backpressure).
        while pending and not any(succeeded(lane) for lane in steps):
            _, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
        loop = asyncio.get_running_loop()
        while pending:
            waiting = [lane for lane, s in steps.items() if s in pending]
            budget = max(0.0, min(allowed_s - lane.stalled_s for lane in waiting))
            began = loop.time()
            _, pending = await asyncio.wait(
                pending, timeout=budget, return_when=asyncio.FIRST_COMPLETED
            )
            for lane in waiting:
                lane.stalled_s += loop.time() - began
                if steps[lane] in pending and lane.stalled_s >= allowed_s:
                    pending.discard(steps[lane])
                    steps[lane].cancel()
                    await _detach(lane, lanes, out, StalledTarget(f"{lane.name}: too slow"))
    finally:
        for s in steps.values():
            s.cancel()
    for lane in list(lanes):
        if (error := _error(lane.task)) is not None:
            await _detach(lane, lanes, out, error)


def _error(task: "asyncio.Task[object]") -> BaseException | None:
    """The writer's failure, if it ended with one (None: still running, or returned)."""
    if not task.done():
        return None
    if task.cancelled():
        return asyncio.CancelledError()
    return task.exception()


async def _detach(lane: _Lane, lanes: list[_Lane], out: Teed[T], reason: BaseException) -> None:
    lanes.remove(lane)
    await _cancel([lane])
    out.detached[lane.name] = reason


async def _cancel(lanes: list[_Lane]) -> None:
    for lane in lanes:
        lane.task.cancel()
    # Their outcomes are known or moot; a cancellation of the caller still propagates.
    await asyncio.gather(*(lane.task for lane in lanes), return_exceptions=True)
