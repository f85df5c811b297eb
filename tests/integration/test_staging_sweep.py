"""The staging sweep against SeaweedFS and FerretDB: a dead-lettered request keeps its
upload, an upload no request references is removed, and a multipart upload abandoned under
the staging prefix is aborted (one outside it is left alone)."""

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest
from pymongo import AsyncMongoClient

from tests.stores import raw_s3, remove_container
from workers import staging
from workers.catalog import MongoCatalog
from workers.kms.keyregistry import MongoKeyRegistry
from workers.settings import Settings
from workers.stores.s3 import S3Store

PREFIX = "_staging/"


async def one_chunk(data: bytes) -> AsyncIterator[bytes]:
    yield data


@pytest.fixture
async def store(settings: Settings, unique: str) -> AsyncIterator[S3Store]:
    store = S3Store(unique, settings)
    await store.ensure_container()
    try:
        yield store
    finally:
        async with raw_s3(settings) as s3:  # whatever upload a failed test left behind
            pending = await s3.list_multipart_uploads(Bucket=unique)
            for upload in pending.get("Uploads", []):
                await s3.abort_multipart_upload(
                    Bucket=unique, Key=upload["Key"], UploadId=upload["UploadId"]
                )
        await remove_container(store, "s3", unique, settings)


@pytest.fixture
async def database(settings: Settings, unique: str) -> AsyncIterator[str]:
    yield unique
    client: AsyncMongoClient[dict[str, object]] = AsyncMongoClient(settings.mongo_url)
    await client.drop_database(unique)
    await client.close()


async def begun(settings: Settings, bucket: str, key: str) -> None:
    """A multipart upload with one part, never completed (a client that died part-way)."""
    async with raw_s3(settings) as s3:
        upload = await s3.create_multipart_upload(Bucket=bucket, Key=key)
        await s3.upload_part(
            Bucket=bucket, Key=key, UploadId=upload["UploadId"], PartNumber=1, Body=b"x" * 1024
        )


async def uploads(settings: Settings, bucket: str) -> set[str]:
    async with raw_s3(settings) as s3:
        pending = await s3.list_multipart_uploads(Bucket=bucket)
    return {upload["Key"] for upload in pending.get("Uploads", [])}


async def test_the_sweep_keeps_what_a_request_needs_and_aborts_abandoned_uploads(
    settings: Settings, unique: str, store: S3Store, database: str
) -> None:
    refused = staging.staged_key(PREFIX, "default", "refused")
    unsent = staging.staged_key(PREFIX, "default", "never-sent")
    for key in (refused, unsent):
        await store.write(key, one_chunk(b"plaintext"))
    catalog = MongoCatalog(settings.mongo_url, database)
    registry = MongoKeyRegistry(settings.mongo_url, database)
    await catalog.db["deadletters"].insert_one({"_id": "letter-1", "correlation_id": "refused"})
    dying = staging.staged_key(PREFIX, "default", "dying")
    await begun(settings, unique, dying)
    await begun(settings, unique, "default/obj/v1/writer")  # a replica's upload: not ours
    cutoff = datetime.now(UTC) + timedelta(minutes=5)  # everything begun so far is older
    try:
        swept = await staging.sweep(store, PREFIX, cutoff, catalog, registry)
    finally:
        await catalog.close()
        await registry.close()

    assert swept == 1
    assert [info.key async for info in store.list(PREFIX)] == [refused]
    assert await uploads(settings, unique) == {"default/obj/v1/writer"}
