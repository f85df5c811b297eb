"""Every client the project has, over the local broker's SASL_SSL listener (the stack's own
CA): workers, the CLI and the tests' helpers; a wrong password or a missing TLS is refused.
On it, each role is its own principal with ACLs (``workers.stack.principals``): the dashboard
reads and never writes, and no role touches another prefix's topics."""

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError, TopicAuthorizationFailedError
from pydantic import SecretStr

from schemas.events import Placement, Source
from tests.pipeline import Pipeline
from topics import AUDIT, INGEST
from workers.broker import kafka_options
from workers.client.identity import cli_actor
from workers.client.kafka import Producer
from workers.client.puts import put_request
from workers.settings import KafkaRole, Settings, load_settings


def over_sasl_ssl(settings: Settings) -> dict[str, object]:
    return {
        "kafka_servers": f"127.0.0.1:{settings.kafka_sasl_port}",
        "kafka_security_protocol": "SASL_SSL",
        "kafka_sasl_mechanism": "SCRAM-SHA-512",
        "kafka_ssl_cafile": settings.home / "kafka" / "tls" / "ca.pem",
    }


@pytest.fixture
def pipeline_overrides(settings: Settings, unique: str) -> dict[str, object]:
    # Under the deployment's prefix (`movingdata.<unique>.ingest`...), which the roles' ACLs
    # cover: the workers and the CLI below connect as their own roles' users.
    return {
        **over_sasl_ssl(settings),
        "topic_prefix": f"{settings.topic_prefix}.{unique}",
        "source_roots": (),
    }


async def test_the_whole_chain_runs_over_sasl_ssl(
    pipeline: Pipeline, worker_all, tmp_path: Path
) -> None:
    """The worker as `movingdata-worker`, the CLI as `movingdata-operator` (each process loads
    its role's user); this test's own clients as the shared user, over SCRAM and PLAIN."""
    assert pipeline.settings.kafka_sasl_password is not None  # the stack's generated user
    (tmp_path / "over-tls.txt").write_bytes(b"encrypted twice on the way")
    done = pipeline.cli("put", str(tmp_path / "over-tls.txt"), "--wait", timeout_s=300)
    assert done.returncode == 0 and "over-tls.txt v1 verified" in done.stdout, (
        done.stdout + done.stderr
    )
    plain = pipeline.settings.model_copy(update={"kafka_sasl_mechanism": "PLAIN"})
    request = put_request(
        Placement(name="p.txt", targets=("s3",)), Source(inline_b64="eA=="), None, actor=cli_actor()
    )
    async with Producer(plain) as producer:  # the PLAIN mechanism too
        await producer.send(INGEST, request)


@pytest.mark.parametrize("change", ["wrong password", "no TLS"])
async def test_a_client_without_the_right_credentials_is_refused(
    pipeline: Pipeline, change: str
) -> None:
    settings = pipeline.settings
    if change == "wrong password":
        settings = settings.model_copy(update={"kafka_sasl_password": SecretStr("not-it")})
        options = kafka_options(settings)
    else:
        options = {**kafka_options(settings), "security_protocol": "SASL_PLAINTEXT"}
        del options["ssl_context"]
    producer = AIOKafkaProducer(**options, request_timeout_ms=5000)
    with pytest.raises((KafkaError, OSError, asyncio.TimeoutError)):
        await asyncio.wait_for(producer.start(), timeout=20)
    await producer.stop()


def as_role(settings: Settings, role: KafkaRole) -> Settings:
    """The stack's SASL user of ``role`` (``<home>/kafka-<role>.env``), over SASL_SSL."""
    own = load_settings(kafka_role=role)
    assert own.kafka_sasl_username == f"movingdata-{role}"
    return settings.model_copy(
        update={
            **over_sasl_ssl(settings),
            "kafka_sasl_username": own.kafka_sasl_username,
            "kafka_sasl_password": own.kafka_sasl_password,
        }
    )


@pytest.fixture
async def audit_topics(settings: Settings, unique: str) -> AsyncIterator[tuple[str, str]]:
    """An audit topic under the deployment's prefix (`movingdata.<unique>.audit`) and one under
    another prefix (`<unique>.audit`), made over the PLAINTEXT developer listener."""
    names = (AUDIT.name(f"{settings.topic_prefix}.{unique}"), AUDIT.name(unique))
    admin = AIOKafkaAdminClient(**kafka_options(settings))
    await admin.start()
    try:
        await admin.create_topics(
            [NewTopic(n, num_partitions=1, replication_factor=1) for n in names]
        )
        yield names
        await admin.delete_topics(list(names))
    finally:
        await admin.close()


async def produce(settings: Settings, topic: str, value: bytes) -> None:
    producer = AIOKafkaProducer(**kafka_options(settings), acks="all", request_timeout_ms=10_000)
    await producer.start()
    try:
        await asyncio.wait_for(producer.send_and_wait(topic, value, key=b"probe"), timeout=60)
    finally:
        await producer.stop()


async def read_first(settings: Settings, topic: str) -> bytes | None:
    consumer = AIOKafkaConsumer(**kafka_options(settings), enable_auto_commit=False)
    await consumer.start()
    try:
        part = TopicPartition(topic, 0)
        consumer.assign([part])
        await consumer.seek_to_beginning(part)
        return (await asyncio.wait_for(consumer.getone(part), timeout=30)).value
    finally:
        await consumer.stop()


async def test_the_dashboard_is_refused_on_the_audit_topic_the_worker_is_not(
    settings: Settings, audit_topics: tuple[str, str]
) -> None:
    ours, theirs = audit_topics
    worker, dashboard = as_role(settings, "worker"), as_role(settings, "dashboard")
    await produce(worker, ours, b"written by the worker")
    with pytest.raises(TopicAuthorizationFailedError):
        await produce(dashboard, ours, b"forged by the dashboard")
    assert await read_first(dashboard, ours) == b"written by the worker"  # it reads
    for role in ("worker", "api", "operator"):  # another prefix's topics: no role may write
        with pytest.raises(TopicAuthorizationFailedError):
            await produce(as_role(settings, role), theirs, b"across prefixes")
