"""Producing to and reading from the chain's topics, as any client does."""

from collections.abc import AsyncIterator, Iterable
from contextlib import suppress
from types import TracebackType

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from schemas.codec import InvalidEvent, decode, encode
from schemas.events import AuditRecord, Event, IngestRequest
from topics import AUDIT, INGEST, TopicSpec
from workers.audit.trail import STEP_TOPICS, step_of, step_record
from workers.broker import kafka_options
from workers.settings import Settings


async def produce_events(settings: Settings, topic: TopicSpec, events: Iterable[Event]) -> int:
    """Send events keyed by object id; return how many were sent."""
    return await produce_all(settings, [(topic, event) for event in events])


class Producer:
    """Events to the chain's topics, keyed by object id; on leaving, waits for every ack."""

    def __init__(self, settings: Settings) -> None:
        self.prefix = settings.topic_prefix
        self.producer = AIOKafkaProducer(**kafka_options(settings), acks="all", linger_ms=5)
        self.sent = 0

    async def __aenter__(self) -> "Producer":
        await self.producer.start()
        return self

    async def send(self, topic: TopicSpec, event: Event) -> None:
        await self.producer.send(
            topic.name(self.prefix), key=event.object_id.encode(), value=encode(event)
        )
        self.sent += 1

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        try:
            if kind is None:
                await self.producer.flush()
        finally:
            await self.producer.stop()


async def produce_all(settings: Settings, messages: Iterable[tuple[TopicSpec, Event]]) -> int:
    """Send each event to its topic and wait for the broker's acks; return how many."""
    async with Producer(settings) as producer:
        for topic, event in messages:
            await producer.send(topic, event)
    return producer.sent


async def produce(settings: Settings, requests: Iterable[IngestRequest]) -> int:
    return await produce_events(settings, INGEST, requests)


async def tail_audit(
    settings: Settings, *, from_beginning: bool, limit: int | None, idle_s: float | None
) -> AsyncIterator[AuditRecord]:
    """Audit records as they arrive; stops after ``limit`` records or ``idle_s`` of silence.

    A step of the chain has no record on the audit topic (the sink derives it from the chain
    event it stores): its record is derived here the same way, from the chain's topics.
    """
    by_name = {spec.name(settings.topic_prefix): spec for spec in (AUDIT, *STEP_TOPICS)}
    consumer = AIOKafkaConsumer(
        *by_name,
        **kafka_options(settings),
        auto_offset_reset="earliest" if from_beginning else "latest",
        enable_auto_commit=False,
    )
    await consumer.start()
    seen = 0
    try:
        while limit is None or seen < limit:
            batch = await consumer.getmany(timeout_ms=int((idle_s or 3600) * 1000))
            if not batch:
                if idle_s is not None:
                    return
                continue
            for messages in batch.values():
                for message in messages:
                    spec = by_name[message.topic]
                    if spec is AUDIT:
                        yield decode(message.value, AuditRecord)
                    elif (step := step_of(decode(message.value, spec.value))) is not None:
                        yield step_record(*step)
                    else:
                        continue
                    seen += 1
    finally:
        await consumer.stop()


async def audit_records_to_end(settings: Settings) -> AsyncIterator[AuditRecord]:
    """Every record on the audit topic from its beginning to its end as of now (records that
    do not decode are skipped: the dead-letter path reports them)."""
    name = AUDIT.name(settings.topic_prefix)
    admin = AIOKafkaAdminClient(**kafka_options(settings))
    await admin.start()
    try:
        (described,) = await admin.describe_topics([name])
    finally:
        await admin.close()
    parts = [TopicPartition(name, p["partition"]) for p in described["partitions"]]
    consumer = AIOKafkaConsumer(**kafka_options(settings), enable_auto_commit=False)
    await consumer.start()
    try:
        consumer.assign(parts)
        await consumer.seek_to_beginning(*parts)
        ends = await consumer.end_offsets(parts)
        begins = await consumer.beginning_offsets(parts)
        left = {tp for tp in parts if ends[tp] > begins[tp]}
        while left:
            batch = await consumer.getmany(*left, timeout_ms=10_000)
            if not batch:  # nothing more to read (the rest expired meanwhile)
                return
            for tp, messages in batch.items():
                for message in messages:
                    with suppress(InvalidEvent):
                        yield decode(message.value, AuditRecord)
                    if message.offset + 1 >= ends[tp]:
                        left.discard(tp)
    finally:
        await consumer.stop()
