"""A round trip through each local service with the client the project uses (no mocks)."""

import asyncio
import hashlib
import os
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from azure.storage.blob.aio import BlobServiceClient
from gcloud.aio.storage import Storage
from pymongo import AsyncMongoClient
from pymongo.errors import DuplicateKeyError

from tests.stores import raw_s3
from workers.broker import kafka_options
from workers.settings import Settings

MiB = 1024 * 1024


async def test_kafka_produce_consume_with_group(settings: Settings, unique: str) -> None:
    admin = AIOKafkaAdminClient(**kafka_options(settings))
    await admin.start()
    try:
        await admin.create_topics([NewTopic(unique, num_partitions=3, replication_factor=1)])
    finally:
        await admin.close()
    producer = AIOKafkaProducer(**kafka_options(settings), acks="all")
    await producer.start()
    try:
        for i in range(100):
            await producer.send(unique, key=str(i % 7).encode(), value=f"m{i}".encode())
        await producer.flush()
    finally:
        await producer.stop()
    consumer = AIOKafkaConsumer(
        unique,
        **kafka_options(settings),
        group_id=f"g-{unique}",
        auto_offset_reset="earliest",
    )
    await consumer.start()
    seen: set[bytes] = set()
    try:
        async with asyncio.timeout(60):
            while len(seen) < 100:
                batch = await consumer.getmany(timeout_ms=1000)
                seen.update(msg.value for msgs in batch.values() for msg in msgs)
        await consumer.commit()
    finally:
        await consumer.stop()
    assert seen == {f"m{i}".encode() for i in range(100)}


async def test_mongo_upsert_inc_unique_aggregate(settings: Settings, unique: str) -> None:
    client: AsyncMongoClient[dict[str, object]] = AsyncMongoClient(settings.mongo_url)
    db = client[unique]
    try:
        objects, audit = db["objects"], db["audit"]
        for _ in range(2):
            await objects.update_one(
                {"_id": "o1"}, {"$set": {"size": 10}, "$inc": {"seen": 1}}, upsert=True
            )
        assert await objects.find_one({"_id": "o1"}) == {"_id": "o1", "size": 10, "seen": 2}

        await audit.create_index("event_id", unique=True)
        await audit.insert_one({"event_id": "e1", "object_id": "o1", "bytes": 5})
        with pytest.raises(DuplicateKeyError):
            await audit.insert_one({"event_id": "e1", "object_id": "o1", "bytes": 5})
        await audit.insert_one({"event_id": "e2", "object_id": "o1", "bytes": 7})
        rows = [
            row
            async for row in await audit.aggregate(
                [{"$group": {"_id": "$object_id", "n": {"$sum": 1}, "b": {"$sum": "$bytes"}}}]
            )
        ]
        assert rows == [{"_id": "o1", "n": 2, "b": 12}]
    finally:
        await client.drop_database(unique)
        await client.close()


async def test_s3_sse_kms_put_head_get_and_ciphertext_on_disk(
    settings: Settings, unique: str
) -> None:
    marker = f"PLAINTEXT-MARKER-{unique}-".encode() * 64
    async with raw_s3(settings) as s3:
        await s3.create_bucket(Bucket=unique)
        put = await s3.put_object(
            Bucket=unique,
            Key="small",
            Body=marker,
            ServerSideEncryption="aws:kms",
            SSEKMSKeyId=settings.s3_kms_key_id,
        )
        assert put["ServerSideEncryption"] == "aws:kms"
        head = await s3.head_object(Bucket=unique, Key="small")
        assert head["SSEKMSKeyId"] == settings.s3_kms_key_id
        got = await s3.get_object(Bucket=unique, Key="small")
        assert await got["Body"].read() == marker
    data_dir = settings.home / "seaweedfs" / "data"
    needle = f"PLAINTEXT-MARKER-{unique}".encode()
    assert not any(needle in p.read_bytes() for p in data_dir.rglob("*") if p.is_file())


async def test_s3_multipart_over_16_mib_with_sse_kms(settings: Settings, unique: str) -> None:
    parts = [os.urandom(6 * MiB) for _ in range(3)]
    async with raw_s3(settings) as s3:
        await s3.create_bucket(Bucket=unique)
        mpu = await s3.create_multipart_upload(
            Bucket=unique,
            Key="big",
            ServerSideEncryption="aws:kms",
            SSEKMSKeyId=settings.s3_kms_key_id,
        )
        done = []
        for n, part in enumerate(parts, 1):
            res = await s3.upload_part(
                Bucket=unique, Key="big", UploadId=mpu["UploadId"], PartNumber=n, Body=part
            )
            done.append({"ETag": res["ETag"], "PartNumber": n})
        await s3.complete_multipart_upload(
            Bucket=unique, Key="big", UploadId=mpu["UploadId"], MultipartUpload={"Parts": done}
        )
        head = await s3.head_object(Bucket=unique, Key="big")
        assert head["ContentLength"] == 18 * MiB
        assert head["ServerSideEncryption"] == "aws:kms"
        got = await s3.get_object(Bucket=unique, Key="big")
        body = await got["Body"].read()
    assert hashlib.sha256(body).digest() == hashlib.sha256(b"".join(parts)).digest()


async def test_azure_block_upload_over_8_mib_and_tier(settings: Settings, unique: str) -> None:
    data = os.urandom(9 * MiB)
    async with BlobServiceClient.from_connection_string(settings.azure_connection_string) as svc:
        container = await svc.create_container(unique)
        blob = container.get_blob_client("big")
        ids = []
        for n, start in enumerate(range(0, len(data), 4 * MiB)):
            block_id = f"{n:08d}"
            await blob.stage_block(block_id, data[start : start + 4 * MiB])
            ids.append(block_id)
        await blob.commit_block_list(ids)
        await blob.set_standard_blob_tier("Cool")
        props = await blob.get_blob_properties()
        assert props.size == len(data)
        assert props.blob_tier == "Cool"
        body = await (await blob.download_blob()).readall()
        await container.delete_container()
    assert body == data


async def test_gcs_resumable_upload_over_8_mib(settings: Settings, unique: str) -> None:
    data = os.urandom(9 * MiB)
    async with Storage(api_root=settings.gcs_endpoint) as gcs:
        session = gcs.session.session
        url = f"{settings.gcs_endpoint}/storage/v1/b?project={settings.gcs_project}"
        async with session.post(url, json={"name": unique}) as resp:
            assert resp.status == 200
        meta = await gcs.upload(unique, "big", data, force_resumable_upload=True, timeout=120)
        assert int(meta["size"]) == len(data)
        assert await gcs.download(unique, "big", timeout=120) == data


def test_stack_data_dirs_are_project_local(settings: Settings) -> None:
    for name in ("kafka", "ferretdb", "openbao", "seaweedfs", "azurite", "gcs"):
        assert (settings.home / name).is_dir(), name
    assert Path(settings.home).resolve().name == ".movingdata"
