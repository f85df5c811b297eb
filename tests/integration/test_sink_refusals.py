"""A batch the sink cannot store in full: the database refuses one record (found by splitting
the batch; the others are stored), a tag key a database cannot store is refused by the schema
first; only the refused events are dead-lettered, with their raw bytes, never the sink's own
records."""

import base64
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest
from pymongo import AsyncMongoClient
from pymongo.asynchronous.database import AsyncDatabase

from schemas.codec import decode, encode, redacted
from schemas.events import AuditRecord, DeadLetter, ObjectAccepted, Outcome
from tests.unit.agents.conftest import ListPublisher, inline_request
from workers.agents.sink import create_indexes
from workers.app import sink_batch
from workers.dispatch import Dispatcher, stamp
from workers.settings import Settings

Doc = dict[str, Any]


@dataclass
class Message:
    topic: str
    partition: int
    offset: int
    key: bytes | None = None
    timestamp: float = 0.0


@dataclass
class Received:
    value: bytes
    message: Message
    key: bytes | None = None


@pytest.fixture
async def db(settings: Settings, unique: str) -> AsyncIterator[AsyncDatabase[Doc]]:
    client: AsyncMongoClient[Doc] = AsyncMongoClient(settings.mongo_url)
    try:
        await create_indexes(client[unique])
        yield client[unique]
    finally:
        await client.drop_database(unique)
        await client.close()


def accepted(n: int, tags: dict[str, str] | None = None) -> ObjectAccepted:
    request = inline_request(b"x", name=f"n{n}.txt")
    event = stamp(
        ObjectAccepted, request, "a", version=1, source=request.source, placement=request.placement
    )
    if tags is not None:  # what a schema from before tag validation let through
        placement = event.placement.model_construct(**{**dict(event.placement), "tags": tags})
        event = event.model_construct(**{**dict(event), "placement": placement})
    return event  # type: ignore[return-value]


async def test_only_the_refused_events_are_dead_lettered(db: AsyncDatabase[Doc]) -> None:
    # An audit record whose detail MongoDB refuses (a "$" field name): nothing on the chain
    # makes one, so it is built here without validation.
    good = [accepted(n) for n in range(9)]
    bad = accepted(99, tags={"$where": "1"})
    own = AuditRecord.model_construct(
        **{
            **dict(stamp(AuditRecord, good[0], "own", stage="x", action="y", outcome=Outcome.OK)),
            "detail": {"$bad": 1},
        }
    )
    events = [*good[:4], bad, *good[4:], own]
    received = [
        Received(encode(e), Message("t.accepted", 0, offset)) for offset, e in enumerate(events)
    ]
    publisher = ListPublisher()
    await sink_batch(db, Dispatcher("sink", publisher), received)  # type: ignore[arg-type]

    assert await db["objects"].count_documents({}) == 9  # every good one, around the refusals
    assert await db["audit"].find_one({"_id": own.event_id}) is None
    assert await db["audit"].count_documents({"object_id": good[3].object_id}) == 1
    (letter_raw,) = publisher.on("deadletter")  # the bad tags; the refused own record: logged
    letter = decode(letter_raw, DeadLetter)
    assert letter.offset == 4 and "tag key '$where'" in letter.reason
    kept = base64.b64decode(letter.payload_b64)  # as it came, its inline payload redacted
    assert kept == redacted(received[4].value) and kept != received[4].value
