"""The sink's audit hash chain on the real MongoDB-protocol server: redeliveries, a head left
stale by a crash between a batch's records and its heads, and an old database's index."""

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import pytest
from pymongo import ASCENDING, AsyncMongoClient
from pymongo.asynchronous.database import AsyncDatabase

from schemas.events import AuditRecord, Outcome
from workers.agents.sink import HEAD_IDS, HeadCache, append_audit, create_indexes
from workers.core.auditchain import first_broken_link
from workers.settings import Settings

Doc = dict[str, Any]


@pytest.fixture
async def db(settings: Settings, unique: str) -> AsyncIterator[AsyncDatabase[Doc]]:
    client: AsyncMongoClient[Doc] = AsyncMongoClient(settings.mongo_url)
    try:
        await create_indexes(client[unique])
        yield client[unique]
    finally:
        await client.drop_database(unique)
        await client.close()


def records(object_id: str, first: int, last: int) -> list[AuditRecord]:
    return [
        AuditRecord(
            kind=AuditRecord.KIND,
            v=AuditRecord.VERSION,
            event_id=f"{object_id}-e{n}",
            object_id=object_id,
            version=1,
            correlation_id="c",
            produced_at=datetime.now(UTC),
            stage="test",
            action=f"step{n}",
            outcome=Outcome.OK,
        )
        for n in range(first, last)
    ]


async def trail(db: AsyncDatabase[Doc], object_id: str) -> list[Doc]:
    return [d async for d in db["audit"].find({"object_id": object_id}).sort("seq", ASCENDING)]


async def assert_intact(db: AsyncDatabase[Doc], object_id: str, count: int) -> None:
    docs = await trail(db, object_id)
    assert [d["seq"] for d in docs] == list(range(1, count + 1))
    assert first_broken_link(docs) is None
    head = await db["audit_heads"].find_one({"_id": object_id})
    assert head is not None and (head["seq"], head["hash"]) == (count, docs[-1]["hash"])


async def test_batches_chain_and_redeliveries_change_nothing(db: AsyncDatabase[Doc]) -> None:
    assert await append_audit(db, records("a", 0, 5) + records("b", 0, 3)) == 8
    assert await append_audit(db, records("a", 3, 8)) == 3  # 3 and 4 are redelivered
    assert await append_audit(db, records("a", 0, 8) + records("b", 0, 3)) == 0
    await assert_intact(db, "a", 8)
    await assert_intact(db, "b", 3)


async def test_stale_head_after_a_crash_neither_duplicates_nor_forks(
    db: AsyncDatabase[Doc],
) -> None:
    await append_audit(db, records("a", 0, 3))
    stale = await db["audit_heads"].find_one({"_id": "a"})
    await append_audit(db, records("a", 3, 6))
    await db["audit_heads"].replace_one({"_id": "a"}, stale)  # records stored, head not

    # Only new records: chained from the stale head they would take seq 4 again.
    assert await append_audit(db, records("a", 6, 7)) == 1
    await assert_intact(db, "a", 7)

    await db["audit_heads"].replace_one({"_id": "a"}, stale)
    # The redelivered batch, in another order, with one new record.
    assert await append_audit(db, records("a", 7, 8) + records("a", 3, 6)) == 1
    await assert_intact(db, "a", 8)


async def test_a_record_older_than_the_head_remembers_is_not_stored_twice(
    db: AsyncDatabase[Doc],
) -> None:
    await append_audit(db, records("a", 0, HEAD_IDS + 5))
    assert (
        await append_audit(db, records("a", 0, 1) + records("a", HEAD_IDS + 5, HEAD_IDS + 6)) == 1
    )
    await assert_intact(db, "a", HEAD_IDS + 6)


async def test_an_old_databases_chain_index_becomes_unique(settings: Settings, unique: str) -> None:
    client: AsyncMongoClient[Doc] = AsyncMongoClient(settings.mongo_url)
    try:
        old = client[unique]
        await old["audit"].create_index([("object_id", ASCENDING), ("seq", ASCENDING)])
        await create_indexes(old)
        index = (await old["audit"].index_information())["object_id_1_seq_1"]
        assert index.get("unique") is True
    finally:
        await client.drop_database(unique)
        await client.close()


async def test_heads_kept_in_memory_survive_another_sink_and_a_stale_cache(
    db: AsyncDatabase[Doc],
) -> None:
    """Two sink processes, each with its heads in memory, take turns on one object (a
    rebalance): each one's cached head goes stale; the unique indexes refuse the insert, the
    slow path links the batch from ``audit``, and the chain neither forks nor repeats."""
    first, second = HeadCache(), HeadCache()
    assert await append_audit(db, records("a", 0, 3), first) == 3
    assert first.get("a") is not None and first.get("a").seq == 3  # type: ignore[union-attr]
    assert await append_audit(db, records("a", 3, 5), second) == 2  # head read from the db
    assert await append_audit(db, records("a", 5, 7), first) == 2  # stale: seq 4 is taken
    assert first.get("a").seq == 7  # type: ignore[union-attr]
    assert await append_audit(db, records("a", 0, 7), second) == 0  # stale, all redelivered
    assert await append_audit(db, records("a", 7, 8), second) == 1
    await assert_intact(db, "a", 8)
    await db["audit_heads"].delete_one({"_id": "a"})  # the cache alone knows the head now
    assert await append_audit(db, records("a", 8, 9), second) == 1
    await assert_intact(db, "a", 9)
