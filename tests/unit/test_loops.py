"""The agent loops themselves, without a broker: order per key, acknowledgement only after a
whole batch, and no acknowledgement at all when a batch cannot finish."""

import asyncio
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Any

import pytest
from pymongo.errors import OperationFailure

from schemas.events import Event, IngestRequest
from tests.unit.agents.conftest import ListPublisher, inline_request
from workers.agents.sink import refused
from workers.app import stage_loop
from workers.dispatch import Dispatcher, Emit, MessageRef


@dataclass
class Message:
    topic: str = "t.accepted"
    partition: int = 0
    offset: int = 0
    key: bytes | None = None
    timestamp: float = 0.0


@dataclass
class FakeEvent:
    """What Faust hands the loop: a key, a value, the message it came in."""

    key: bytes
    value: bytes
    message: Message


class TakeEvents:
    """A stream as ``take_batches`` hands it over (``tests/unit/test_batches.py``): batches,
    and the acknowledgement of the whole batch in a ``finally`` (so also when the loop body
    raises)."""

    def __init__(self, batches: Sequence[Sequence[FakeEvent]], log: list[str]) -> None:
        self.batches, self.log = batches, log

    async def take_events(self, batch: int, within: float) -> AsyncIterator[list[FakeEvent]]:
        for events in self.batches:
            try:
                yield list(events)
            finally:
                self.log.append("ack " + ",".join(e.value.decode() for e in events))


@pytest.fixture(autouse=True)
def batches_of_fake_streams(monkeypatch: pytest.MonkeyPatch) -> None:
    def take_batches(stream: TakeEvents, max_: int, within: float) -> AsyncIterator[list[Any]]:
        return stream.take_events(max_, within)

    monkeypatch.setattr("workers.app.take_batches", take_batches)


class Halted(BaseException):
    """What the test's halt raises instead of ending the process."""


def event(key: str, name: str, offset: int) -> FakeEvent:
    return FakeEvent(key.encode(), name.encode(), Message(offset=offset, key=key.encode()))


def loop(log: list[str], handle, dispatcher: Dispatcher | None = None):  # type: ignore[no-untyped-def]
    def decode(raw: bytes | None, ref: MessageRef) -> Event:
        return inline_request(b"x", name=(raw or b"").decode())  # named after the message

    def halt(exc: BaseException) -> None:
        log.append(f"halt {type(exc).__name__}")
        raise Halted  # production: os._exit, so the batch's finally never runs

    dispatcher = dispatcher or Dispatcher("encrypt", ListPublisher())
    return stage_loop(dispatcher, decode, handle, batch=8, halt=halt)


async def test_one_keys_events_run_in_order_others_at_once_acked_after_all() -> None:
    log: list[str] = []
    a1_running = asyncio.Event()

    async def handle(request: IngestRequest) -> list[Emit]:
        name = request.placement.name
        log.append(f"start {name}")
        if name == "a1":
            a1_running.set()
            await asyncio.sleep(0.01)
        if name == "b1":
            await asyncio.wait_for(a1_running.wait(), 1)  # b runs while a1 does
        log.append(f"end {name}")
        return []

    batch = [event("a", "a1", 0), event("b", "b1", 1), event("a", "a2", 2)]
    await loop(log, handle)(TakeEvents([batch], log))
    assert log.index("end a1") < log.index("start a2")  # one key: in order
    assert log.index("start b1") < log.index("end a1")  # two keys: at once
    assert log[-1] == "ack a1,b1,a2"  # the whole batch, once everything is done


async def test_an_error_escaping_the_batch_halts_before_any_ack() -> None:
    log: list[str] = []

    class BrokenSend(Dispatcher):
        async def emit(self, *outs: Emit) -> None:
            raise RuntimeError("a bug outside the handler")

    async def handle(request: IngestRequest) -> list[Emit]:
        name = request.placement.name
        log.append(f"start {name}")
        raise ValueError("dead-lettered by the dispatcher, whose send then fails")

    agent = loop(log, handle, BrokenSend("encrypt", ListPublisher()))
    with pytest.raises(Halted):
        await agent(TakeEvents([[event("a", "a1", 0)], [event("b", "b1", 1)]], log))
    assert log == ["start a1", "halt RuntimeError"]  # no ack, no later batch


async def test_a_cancellation_inside_a_batch_halts_before_any_ack() -> None:
    log: list[str] = []
    started = asyncio.Event()

    async def slow(request: IngestRequest) -> list[Emit]:
        started.set()
        await asyncio.sleep(60)
        return []

    task = asyncio.create_task(loop(log, slow)(TakeEvents([[event("a", "a1", 0)]], log)))
    await asyncio.wait_for(started.wait(), 1)
    task.cancel()
    with pytest.raises(Halted):
        await task
    assert log == ["halt CancelledError"]


async def test_a_refused_batch_is_split_until_the_refused_items_are_found() -> None:
    writes: list[list[int]] = []

    async def write(items: Sequence[int]) -> None:
        writes.append(list(items))
        if 3 in items or 6 in items:
            raise OperationFailure("key must not start with $", 2)

    found = await refused(write, list(range(8)))
    assert [item for item, _ in found] == [3, 6]
    assert all(isinstance(exc, OperationFailure) for _, exc in found)
    assert writes[0] == list(range(8))
    assert [0, 1] in writes and [4, 5] in writes and [7] in writes  # the others were written
    assert await refused(write, []) == []


class Published:
    prefix = "t"

    def __init__(self) -> None:
        self.sent: list[tuple[str, str, bytes]] = []

    async def send(self, messages) -> None:  # type: ignore[no-untyped-def]
        self.sent += [(spec.suffix, key, value) for spec, key, value in messages]


class Events:
    def __init__(self, events: list[FakeEvent]) -> None:
        self._events = events

    async def events(self) -> AsyncIterator[FakeEvent]:
        for e in self._events:
            yield e


async def test_a_retry_of_an_inline_event_re_reads_it_from_its_own_topic() -> None:
    from datetime import UTC, datetime

    from schemas.codec import decode, encode
    from schemas.events import RecordRef, RetryRequest
    from workers.app import retry_loop
    from workers.dispatch import stamp

    request = inline_request(b"plaintext only on the ingest topic")
    retry = stamp(
        RetryRequest,
        request,
        "r",
        topic="t.ingest",
        not_before=datetime.now(UTC),
        reason="store down",
        record=RecordRef(topic="t.ingest", partition=1, offset=7),
        record_attempt=2,
    )
    asked: list[RecordRef] = []

    async def fetch(record: RecordRef) -> MessageRef:
        asked.append(record)
        return MessageRef(record.topic, record.partition, record.offset, None, 1.0, encode(request))

    published = Published()
    agent = retry_loop(Dispatcher("retry", ListPublisher()), published, fetch)  # type: ignore[arg-type]
    await agent(Events([FakeEvent(b"k", encode(retry), Message("t.retry"))]))  # type: ignore[arg-type]
    assert asked == [RecordRef(topic="t.ingest", partition=1, offset=7)]
    ((suffix, _, value),) = published.sent
    again = decode(value, IngestRequest)
    assert suffix == "ingest" and again.attempt == 2
    assert again.correlation_id == request.correlation_id  # the same request, the same version


async def test_the_byte_budget_runs_what_fits_keeps_order_and_acks_after_all() -> None:
    """Three 6-byte objects in a 10-byte budget: one at a time, each key in order, and the
    batch acknowledged once all of it is handled; a small event goes beside a big one."""
    from workers.budget import ByteBudget

    log: list[str] = []
    running: set[str] = set()
    most = 0

    async def handle(request: IngestRequest) -> list[Emit]:
        nonlocal most
        name = request.placement.name
        running.add(name)
        most = max(most, sum(6 if n.startswith("big") else 1 for n in running))
        log.append(f"start {name}")
        await asyncio.sleep(0.01)
        running.discard(name)
        log.append(f"end {name}")
        return []

    def held(event: Event) -> int:
        return 6 if event.placement.name.startswith("big") else 1  # type: ignore[attr-defined]

    def decode(raw: bytes | None, ref: MessageRef) -> Event:
        return inline_request(b"x", name=(raw or b"").decode())

    budget = ByteBudget(10)
    agent = stage_loop(
        Dispatcher("encrypt", ListPublisher()), decode, handle, 8, budget=budget, held=held
    )
    batch = [
        event("a", "big-a1", 0),
        event("b", "big-b1", 1),
        event("a", "big-a2", 2),
        event("c", "small-c1", 3),
    ]
    await agent(TakeEvents([batch], log))
    assert most <= 10 and budget.held == 0
    assert log.index("end big-a1") < log.index("start big-a2")
    assert log.index("end big-a1") < log.index("start big-b1")  # no room for two
    # First come, first served: c1 waits behind b1, then runs beside it.
    assert log.index("start big-b1") < log.index("start small-c1") < log.index("end big-b1")
    assert log[-1] == "ack big-a1,big-b1,big-a2,small-c1"


def test_an_event_holds_its_objects_bytes_for_each_store_up_to_two_parts_per_store() -> None:
    from schemas.events import ObjectAccepted
    from workers.app import HELD_MAX, held_bytes
    from workers.dispatch import stamp

    request = inline_request(b"x" * 100)
    accepted = stamp(ObjectAccepted, request, "a", version=1, source=request.source,
                     placement=request.placement, plaintext_size=100)  # fmt: skip
    targets = len(request.placement.targets)
    assert targets > 1
    assert held_bytes(accepted, chunk_size=10) == 100 * targets + 10  # a copy for each store
    huge = accepted.model_copy(update={"plaintext_size": 10 * HELD_MAX})
    assert held_bytes(huge, chunk_size=10) == HELD_MAX + 10
    unknown = accepted.model_copy(update={"plaintext_size": None})
    assert held_bytes(unknown, chunk_size=10) == HELD_MAX + 10
    assert held_bytes(request, chunk_size=10) == 10  # bookkeeping: a chunk
