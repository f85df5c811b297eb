"""A hold placed on a version is applied at each store whose bucket can hold it, and recorded
per target: an S3 bucket with Object Lock (SeaweedFS) refuses the replica's delete until the
legal hold is released (the release reaches the store too) and the retention passes; a
normal bucket (GCS here) is recorded as not holding."""

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pymongo import AsyncMongoClient
from pymongo.asynchronous.database import AsyncDatabase

from tests.stores import drop_locked_bucket, remove_container
from tests.waiting import wait_for
from topics import create_topics, delete_topics
from workers.broker import kafka_options
from workers.client.holds import HoldAsked, hold_versions, release
from workers.client.identity import Actor
from workers.errors import AccessDenied
from workers.settings import Settings
from workers.stores.gcs import GCSStore
from workers.stores.s3 import S3Store, s3_client

KEY = "default/o1/v1/w1"
RETAIN_S = 3.0
ACTOR = Actor("test:holds")


async def body() -> AsyncIterator[bytes]:
    yield b"kept" * 10


@pytest.fixture
async def fleet(
    settings: Settings, unique: str
) -> AsyncIterator[tuple[Settings, AsyncDatabase[dict[str, Any]]]]:
    """Topics, a database, an object-locked S3 bucket and a normal GCS one, all this test's."""
    ours = settings.model_copy(
        update={"topic_prefix": unique, "bucket": unique, "mongo_database": unique}
    )
    options = kafka_options(ours)
    await create_topics(options, unique, 1, 1, 1)
    async with s3_client(ours) as s3:
        await s3.create_bucket(Bucket=unique, ObjectLockEnabledForBucket=True)
    gcs = GCSStore(unique, ours)
    await gcs.ensure_container()
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(ours.mongo_url)
    yield ours, client[unique]
    await client.drop_database(unique)
    await client.close()
    await remove_container(gcs, "gcs", unique, ours)
    await drop_locked_bucket(ours, unique)
    await delete_topics(options, unique)


async def test_a_hold_reaches_the_stores_that_can_hold(
    fleet: tuple[Settings, AsyncDatabase[dict[str, Any]]],
) -> None:
    settings, db = fleet
    s3, gcs = S3Store(settings.bucket, settings), GCSStore(settings.bucket, settings)
    for store in (s3, gcs):
        await store.write(KEY, body())
    version = {
        "_id": "o1:v1",
        "object_id": "o1",
        "version": 1,
        "tenant": "default",
        "name": "kept.txt",
        "targets": ["s3", "gcs"],
        "key": KEY,
        "replicas": {"s3": {"key": KEY}, "gcs": {"key": KEY}},
    }
    await db["objects"].insert_one(version)
    now = datetime.now(UTC)
    asked = HoldAsked(now + timedelta(seconds=RETAIN_S), legal_hold=True, reason="audit")
    try:
        (placed,) = await hold_versions(settings, db, [version], asked, actor=ACTOR, now=now)
        assert placed["stores"] == {"s3": True, "gcs": False}
        assert (await db["holds"].find_one({"_id": "o1:v1"}) or {})["stores"] == placed["stores"]
        with pytest.raises(AccessDenied):
            await s3.delete(KEY)
        await release(settings, db, ["o1:v1"], actor=ACTOR, now=datetime.now(UTC))
        async with s3_client(settings) as client:
            legal = await client.get_object_legal_hold(Bucket=settings.bucket, Key=KEY)
        assert legal["LegalHold"]["Status"] == "OFF"

        async def deleted() -> bool:
            try:
                await s3.delete(KEY)
            except AccessDenied:
                return False
            return True

        await wait_for(deleted, timeout_s=RETAIN_S + 30)
    finally:
        await s3.close()
        await gcs.close()
