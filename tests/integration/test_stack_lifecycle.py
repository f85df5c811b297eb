"""``stack up`` is idempotent, ``status`` notices a dead service, data survives ``down``/``up``."""

import os
import signal
from pathlib import Path

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from azure.storage.blob.aio import BlobServiceClient
from gcloud.aio.storage import Storage
from pymongo import AsyncMongoClient

from tests.stores import raw_s3
from workers.broker import kafka_options
from workers.settings import Settings
from workers.stack import control, process


def pids(settings: Settings) -> dict[str, int | None]:
    return {row.name: row.pid for row in control.status(settings)}


def test_up_twice_keeps_the_same_processes(settings: Settings) -> None:
    before = pids(settings)
    control.up(settings)
    assert pids(settings) == before
    assert all(pid is not None for pid in before.values())


def test_status_reports_a_killed_service_and_up_restarts_it(settings: Settings) -> None:
    service = control.service(settings, "azurite")
    tracked = process.read_pid_file(service.pid_file)
    assert tracked is not None
    os.kill(tracked.pid, signal.SIGKILL)
    assert process.wait_until(lambda: not process.is_alive(tracked), timeout_s=10)
    states = {row.name: row.state for row in control.status(settings)}
    assert states.pop("azurite") == "stopped"
    assert set(states.values()) == {"healthy"}
    control.up(settings)
    assert {row.state for row in control.status(settings)} == {"healthy"}


async def write_everywhere(settings: Settings, name: str, payload: bytes) -> None:
    admin = AIOKafkaAdminClient(**kafka_options(settings))
    await admin.start()
    await admin.create_topics([NewTopic(name, num_partitions=1, replication_factor=1)])
    await admin.close()
    producer = AIOKafkaProducer(**kafka_options(settings), acks="all")
    await producer.start()
    await producer.send_and_wait(name, payload)
    await producer.stop()
    mongo: AsyncMongoClient[dict[str, object]] = AsyncMongoClient(settings.mongo_url)
    await mongo[name]["c"].insert_one({"_id": "k", "v": payload})
    await mongo.close()
    async with raw_s3(settings) as s3:
        await s3.create_bucket(Bucket=name)
        await s3.put_object(
            Bucket=name,
            Key="k",
            Body=payload,
            ServerSideEncryption="aws:kms",
            SSEKMSKeyId=settings.s3_kms_key_id,
        )
    async with BlobServiceClient.from_connection_string(settings.azure_connection_string) as az:
        await (await az.create_container(name)).upload_blob("k", payload)
    async with Storage(api_root=settings.gcs_endpoint) as gcs:
        url = f"{settings.gcs_endpoint}/storage/v1/b?project={settings.gcs_project}"
        async with gcs.session.session.post(url, json={"name": name}) as resp:
            assert resp.status == 200
        await gcs.upload(name, "k", payload)


async def read_everywhere(settings: Settings, name: str) -> list[bytes]:
    consumer = AIOKafkaConsumer(
        name,
        **kafka_options(settings),
        auto_offset_reset="earliest",
        group_id=f"g-{name}",
    )
    await consumer.start()
    kafka = (await consumer.getone()).value or b""
    await consumer.stop()
    mongo: AsyncMongoClient[dict[str, object]] = AsyncMongoClient(settings.mongo_url)
    doc = await mongo[name]["c"].find_one({"_id": "k"})
    await mongo.close()
    async with raw_s3(settings) as s3:
        s3_body = await (await s3.get_object(Bucket=name, Key="k"))["Body"].read()
    async with BlobServiceClient.from_connection_string(settings.azure_connection_string) as az:
        blob = az.get_blob_client(name, "k")
        azure_body = await (await blob.download_blob()).readall()
    async with Storage(api_root=settings.gcs_endpoint) as gcs:
        gcs_body = await gcs.download(name, "k")
    assert doc is not None
    return [kafka, bytes(doc["v"]), s3_body, azure_body, gcs_body]  # type: ignore[arg-type]


async def test_data_survives_down_and_up(settings: Settings, unique: str) -> None:
    payload = f"survives-{unique}".encode()
    await write_everywhere(settings, unique, payload)
    stopped = control.down(settings)
    assert len(stopped) == 6
    assert {row.state for row in control.status(settings)} == {"stopped"}
    control.up(settings)
    assert await read_everywhere(settings, unique) == [payload] * 5


def test_go_services_run_on_one_scheduler_thread(settings: Settings) -> None:
    for name in ("seaweedfs", "gcs", "ferretdb"):
        tracked = process.read_pid_file(control.service(settings, name).pid_file)
        assert tracked is not None
        environ = Path(f"/proc/{tracked.pid}/environ").read_bytes().split(b"\0")
        assert b"GOMAXPROCS=1" in environ, name
