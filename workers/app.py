"""The Faust app: one thin agent per stage, every message through the dispatcher.

A worker process runs the stages it is given (``--agents encrypt,replicate`` or ``all``).
Its consumer group is named after the prefix and that set of stages, so replicas of the same
set share the partitions; run each stage set with the same ``--agents`` value when scaling.
"""

import asyncio
import base64
import logging
import os
import socket
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from functools import partial
from typing import Any, NoReturn

import faust
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import KafkaError
from pymongo import AsyncMongoClient
from pymongo.errors import PyMongoError

from schemas.codec import InvalidEvent, decode, encode
from schemas.events import (
    DeleteRequest,
    Event,
    ObjectAccepted,
    ObjectAccessed,
    ObjectEncrypted,
    RecordRef,
    ReplicaRemoval,
    ReplicaVerified,
    ReplicaWritten,
    RetryRequest,
    SyncPage,
    TierChange,
)
from topics import (
    ACCEPTED,
    ACCESS,
    AUDIT,
    DEADLETTER,
    DELETE,
    ENCRYPTED,
    INGEST,
    REMOVE,
    REMOVED,
    REPLICATE,
    REPLICATED,
    RETIER,
    RETRY,
    SYNC,
    TARGETS,
    TIERED,
    VERIFIED,
    TopicSpec,
)
from workers import metrics
from workers.agents import delete, encrypt, ingest, replicate, scan, sink, tier, verify
from workers.batches import take_batches
from workers.broker import faust_credentials, kafka_options
from workers.budget import ByteBudget
from workers.client.state import State
from workers.deps import Deps
from workers.dispatch import Dispatcher, Emit, Message, MessageRef, RetryPolicy, backoff_s
from workers.errors import MovingDataError, Retryable
from workers.health import needs_of, readiness
from workers.jobs import reconcile as reconcile_job
from workers.jobs import retention
from workers.jobs.checkpointer import Checkpointer
from workers.jobs.heartbeat import Heartbeat
from workers.jobs.runner import StateJob
from workers.jobs.scrub import scheduled_scrub
from workers.jobs.staging import sweep_staging
from workers.mongo import transient
from workers.settings import Settings
from workers.stores import open_store
from workers.tiering.live import Tiering, sweep

log = logging.getLogger("movingdata.app")
# A batch is handled once it is full or this long after its first event came: under load
# batches fill at once; a lone event waits this long.
BATCH_WINDOW_S = 0.02
# The sink's window: longer, for fuller database writes (only readers of the state wait on it).
SINK_WINDOW_S = 0.25
# What an event may hold in memory beyond a chunk: its object's bytes, at most the upload parts
# per store being cut and sent (S3 and Azure one cut, two sending: 3 x 8 + 3 x 4 MiB; GCS one
# cut, one sending: 2 x 16 MiB; 68 MiB) and encrypt's fan-out queue (8 chunks by default).
HELD_MAX = 80 * 1024**2
STAGES = ("scan", "ingest", "encrypt", "replicate", "verify", "tier", "delete", "retry", "sink")
Handler = Callable[[Any, Deps], Awaitable[Sequence[Emit]]]
Decoder = Callable[[bytes | None, MessageRef], Event]


def held_bytes(event: Event, chunk_size: int) -> int:
    """What handling ``event`` may hold in memory, for the worker's byte budget."""
    match event:
        case ObjectAccepted(plaintext_size=size):  # unknown (a path or a URL): the most
            # Encrypt cuts a block of the object for each store it writes at once.
            held = HELD_MAX if size is None else size * len(event.placement.targets)
        case ObjectEncrypted():
            held = event.ciphertext_size
        case ReplicaWritten():
            held = event.ciphertext_size
        case _:
            held = 0
    return min(held, HELD_MAX) + chunk_size


def decoder(event_type: type[Event]) -> Decoder:
    return lambda raw, _ref: decode(raw, event_type)


CHAIN: dict[str, list[tuple[TopicSpec, Decoder, Handler]]] = {
    "scan": [(SYNC, decoder(SyncPage), scan.handle)],
    "ingest": [(INGEST, ingest.complete, ingest.handle)],
    "encrypt": [(ACCEPTED, decoder(ObjectAccepted), encrypt.handle)],
    "replicate": [
        (ENCRYPTED, decoder(ObjectEncrypted), replicate.fan_out),
        *((REPLICATE[t], decoder(ObjectEncrypted), replicate.handle) for t in TARGETS),
    ],
    "verify": [(REPLICATED[t], decoder(ReplicaWritten), verify.handle) for t in TARGETS],
    "tier": [
        (VERIFIED, decoder(ReplicaVerified), tier.handle),
        (RETIER, decoder(TierChange), tier.change),
        (ACCESS, decoder(ObjectAccessed), tier.accessed),
    ],
    "delete": [
        (DELETE, decoder(DeleteRequest), delete.tombstone),
        (REMOVE, decoder(ReplicaRemoval), delete.remove),
    ],
}
SINK_TOPICS = (
    ACCEPTED,
    ENCRYPTED,
    *REPLICATE.values(),
    *REPLICATED.values(),
    VERIFIED,
    TIERED,
    ACCESS,
    DELETE,
    REMOVE,
    REMOVED,
    AUDIT,
    DEADLETTER,
)


class FaustPublisher:
    """Sends to the chain's topics and waits for the broker's acknowledgement."""

    def __init__(self, app: faust.App, prefix: str) -> None:
        self.app = app
        self.prefix = prefix
        self.topics: dict[str, faust.TopicT] = {}

    async def send(self, messages: Sequence[Message]) -> None:
        """Send all, then wait for every ack; while the broker is away, back off and resend.

        Blocking here is the backpressure: the message being handled is not acknowledged
        until everything it produced is, so nothing is lost when the broker returns. A resend
        may repeat a message already acknowledged; every consumer is idempotent.
        """
        attempt = 0
        while True:
            try:
                acks = [await self.topic(t).send(key=k.encode(), value=v) for t, k, v in messages]
                await asyncio.gather(*acks)
                return
            except KafkaError as exc:
                delay = backoff_s(attempt, RetryPolicy(cap_s=5.0), 0.5)
                log.warning(
                    "broker unavailable, backing off",
                    extra={"error": type(exc).__name__, "delay_s": delay},
                )
                await asyncio.sleep(delay)
                attempt += 1

    def topic(self, spec: TopicSpec) -> faust.TopicT:
        name = spec.name(self.prefix)
        if name not in self.topics:
            self.topics[name] = self.app.topic(name, value_type=bytes, key_type=bytes)
        return self.topics[name]


def parse_stages(agents: str) -> list[str]:
    chosen = list(STAGES) if agents == "all" else [a.strip() for a in agents.split(",")]
    unknown = set(chosen) - set(STAGES)
    if unknown or not chosen:
        raise ValueError(f"unknown agents {sorted(unknown)}; choose from {', '.join(STAGES)}")
    return sorted(set(chosen), key=STAGES.index)


def crash(exc: BaseException) -> NoReturn:
    """Stop the process at once: a fatal error, or a batch that cannot finish (a bug outside
    the dispatcher, a cancellation). ``os._exit`` skips every ``finally``, Faust's too, so the
    batch is never acknowledged: its offsets do not move and it is redelivered after restart."""
    log.critical(
        "stopping before the batch is acknowledged",
        extra={"error": f"{type(exc).__name__}: {exc}"[:500]},
    )
    logging.shutdown()
    os._exit(70)


def build_app(settings: Settings, stages: Sequence[str], deps: Deps) -> faust.App:
    app = faust.App(
        f"{settings.topic_prefix}-{'+'.join(stages)}",
        broker=f"kafka://{settings.kafka_bootstrap}",
        broker_credentials=faust_credentials(settings),
        value_serializer="raw",
        key_serializer="raw",
        topic_allow_declare=False,
        topic_disable_leader=True,
        topic_partitions=settings.topic_partitions,
        web_enabled=False,
        consumer_auto_offset_reset="earliest",
        producer_acks=-1,
        producer_linger=settings.producer_linger_s,
        broker_session_timeout=settings.broker_session_timeout_s,
        broker_heartbeat_interval=settings.broker_session_timeout_s / 10,
        datadir=str(settings.home / "faust"),
    )
    publisher = FaustPublisher(app, settings.topic_prefix)
    policy = RetryPolicy(max_attempts=settings.max_attempts, cap_s=settings.retry_cap_s)
    budget = ByteBudget(settings.stage_bytes)  # one for every stage of this worker
    held = partial(held_bytes, chunk_size=settings.chunk_size)

    def topic(spec: TopicSpec) -> faust.TopicT:
        return app.topic(spec.name(settings.topic_prefix), value_type=bytes, key_type=bytes)

    async def check_store(scheme: str) -> None:
        store = open_store(f"{scheme}://{settings.bucket}", settings)
        try:
            await store.check()
        finally:
            await store.close()

    for stage in stages:
        dispatcher = Dispatcher(stage, publisher, policy, check_store=check_store)
        if stage == "retry":
            fetch = partial(fetch_record, kafka_options(settings))
            app.agent(topic(RETRY), name=stage)(retry_loop(dispatcher, publisher, fetch))
        elif stage == "sink":
            names = [spec.name(settings.topic_prefix) for spec in SINK_TOPICS]
            # key_type None (keys stay raw bytes): with a stage channel's key and value types,
            # Faust would hand the sink and that stage one shared Event object to acknowledge,
            # each in batches of its own; this way each agent acknowledges only its own.
            source = app.topic(*names, value_type=bytes, key_type=None)
            app.agent(source, name=stage)(sink_loop(settings, dispatcher))
        else:
            for spec, decode_one, handler in CHAIN[stage]:
                handle = partial(handler, deps=deps)
                loop = stage_loop(
                    dispatcher, decode_one, handle, settings.stage_batch, budget=budget, held=held
                )
                app.agent(topic(spec), name=f"{stage}-{spec.suffix}")(loop)
    if "encrypt" in stages:

        async def staging_sweep() -> None:
            await sweep_staging(deps)

        app.timer(settings.staging_sweep_s)(staging_sweep)
    if "sink" in stages:
        # Once per interval for the whole group, not per worker: on its leader only.
        sink_leads = partial(leads, app, SINK_TOPICS[0].name(settings.topic_prefix))
        checkpointer = Checkpointer(settings)
        app.timer(settings.audit_checkpoint_s)(when(sink_leads, checkpointer.run))
        if settings.scrub_interval_s > 0:
            scrub_tiering = Tiering.load(settings)  # which tiers a read must rehydrate first

            async def scrub(s: Settings, state: State) -> int:
                now = datetime.now(UTC)
                return await scheduled_scrub(s, state, deps.stores, scrub_tiering, now)

            job = StateJob(settings, scrub, "scheduled scrub", "scheduled scrub sent", "scrub")
            app.timer(settings.scrub_interval_s)(when(sink_leads, job.run))
        if settings.reconcile_interval_s > 0:

            async def reconcile(s: Settings, state: State) -> int:
                return await reconcile_job.reconcile(s, state, datetime.now(UTC))

            job = StateJob(
                settings, reconcile, "reconcile", "stalled versions re-driven", "reconcile"
            )
            app.timer(settings.reconcile_interval_s)(when(sink_leads, job.run))
        if settings.retain_versions > 0 and settings.retention_interval_s > 0:
            job = StateJob(settings, retention.retire, "retention", "versions retired", "retention")
            app.timer(settings.retention_interval_s)(when(sink_leads, job.run))
    if "tier" in stages and settings.tier_sweep_s > 0:
        tiering = Tiering.load(settings)  # a bad policy or price file stops the worker here
        actor = f"worker:tier@{socket.gethostname()}"

        async def tier_sweep() -> None:
            try:
                await sweep(settings, tiering, datetime.now(UTC), actor)
            except (MovingDataError, PyMongoError, KafkaError) as exc:  # the next round tries
                log.warning("tier sweep failed", extra={"error": str(exc)[:200]})

        tier_leads = partial(leads, app, CHAIN["tier"][0][0].name(settings.topic_prefix))
        app.timer(settings.tier_sweep_s)(when(tier_leads, tier_sweep))

    ready = partial(readiness, settings, deps.stores, needs_of(stages))

    async def endpoints() -> None:
        await metrics.serve(
            settings.worker_host, settings.worker_port, ready, partial(consumer_lag, app)
        )

    app.task(endpoints)
    if settings.worker_heartbeat_s > 0:  # the dashboard's Fleet tab: stages, readiness, rates
        beat = Heartbeat(settings, app.conf.id, stages, ready)
        app.task(beat.run)
        app.async_exit_stack.push_async_callback(beat.close)
    # Closed once the agents, timers and tasks have stopped (the exit stack's turn in Faust's
    # stop), so no store session is left for the closing event loop to complain about.
    app.async_exit_stack.push_async_callback(deps.close)
    return app


def leads(app: faust.App, topic: str) -> bool:
    """This worker is its group's leader: it holds partition 0 of the group's first topic.
    (Faust's own leader needs a topic of its own, which ``topic_disable_leader`` turns off:
    its ``on_leader`` timers would never run.)"""
    return TopicPartition(topic, 0) in app.consumer.assignment()


def when(
    condition: Callable[[], bool], job: Callable[[], Awaitable[None]]
) -> Callable[[], Awaitable[None]]:
    """``job``, run only while ``condition`` holds (checked at each call)."""

    async def run() -> None:
        if condition():
            await job()

    return run


def consumer_lag(app: faust.App) -> dict[tuple[str, int], int]:
    """Messages behind, per assigned partition: the broker's end minus our committed offset
    (Faust keeps both; the committed one is private to its consumer)."""
    consumer = app.consumer
    lag = {}
    for tp in consumer.assignment():
        end = consumer.highwater(tp) or 0
        committed = consumer._committed_offset.get(tp) or 0
        lag[tp.topic, tp.partition] = max(0, end - committed)
    return lag


def ref_of(event: faust.EventT) -> MessageRef:
    msg = event.message
    return MessageRef(msg.topic, msg.partition, msg.offset, msg.key, msg.timestamp)


def stage_loop(
    dispatcher: Dispatcher,
    decode_one: Decoder,
    handler: Callable[[Any], Awaitable[Sequence[Emit]]],
    batch: int,
    halt: Callable[[BaseException], None] = crash,
    budget: ByteBudget | None = None,
    held: Callable[[Event], int] = lambda event: 0,
) -> Callable[[faust.StreamT], Awaitable[None]]:
    """The agent loop of a chain stage: a few lines, all work in ``handle``.

    Up to ``batch`` events at a time (``handle_batch``), each handled once what it may hold
    (``held``) fits the worker's ``budget``; the bytes are held while the handler runs (not
    while it backs off, nor while its outputs are sent). ``take_batches`` acknowledges
    the whole batch when the loop body returns, and also in its ``finally`` when the body
    raises: so anything escaping the batch (``Fatal``, a bug outside the dispatcher, a
    cancellation) halts the process first, and no event is acknowledged unhandled.
    Acknowledging in order matters: Faust 0.15.3 commits past a single unacknowledged offset
    (``Consumer._new_offset`` checks ``min(acked) - committed > 1``).
    """

    async def budgeted(event: Event) -> Sequence[Emit]:
        if budget is None:
            return await handler(event)
        async with budget.hold(held(event)):
            return await handler(event)

    async def run_one(message: faust.EventT) -> None:
        await dispatcher.run(message.value, ref_of(message), decode_one, budgeted)

    async def agent(stream: faust.StreamT) -> None:
        async for events in take_batches(stream, batch, BATCH_WINDOW_S):
            try:
                await handle_batch(events, run_one)
            except BaseException as exc:
                halt(exc)
                raise

    return agent


async def handle_batch(
    events: Sequence[faust.EventT], run_one: Callable[[faust.EventT], Awaitable[None]]
) -> None:
    """Handle a batch: one object's events (one key) in order, different keys at once; return
    only when every event is handled and everything it produced acknowledged by the broker."""
    by_key: dict[bytes | None, list[faust.EventT]] = {}
    for event in events:
        by_key.setdefault(event.key, []).append(event)

    async def in_order(same_key: list[faust.EventT]) -> None:
        for event in same_key:
            await run_one(event)

    await asyncio.gather(*map(in_order, by_key.values()))


async def fetch_record(options: dict[str, Any], record: RecordRef) -> MessageRef:
    """The record at ``record`` (its value in ``MessageRef.value``): a retry of an event with
    an inline payload re-reads it from its own topic."""
    consumer = AIOKafkaConsumer(**options, enable_auto_commit=False)
    await consumer.start()
    try:
        part = TopicPartition(record.topic, record.partition)
        consumer.assign([part])
        consumer.seek(part, record.offset)
        found = await asyncio.wait_for(consumer.getone(part), timeout=30)
    except TimeoutError:
        raise Retryable(
            f"record {record.topic}:{record.partition}:{record.offset} not read"
        ) from None
    finally:
        await consumer.stop()
    ref = MessageRef(found.topic, found.partition, found.offset, found.key, found.timestamp / 1000)
    return replace(ref, value=found.value)


def retry_loop(
    dispatcher: Dispatcher,
    publisher: FaustPublisher,
    fetch: Callable[[RecordRef], Awaitable[MessageRef]],
    halt: Callable[[BaseException], None] = crash,
) -> Callable[[faust.StreamT], Awaitable[None]]:
    """Re-deliver retry requests to their topic once due (ordered, so a short wait is fine)."""
    by_name = {
        spec.name(publisher.prefix): (spec, decode_one)
        for agents in CHAIN.values()
        for spec, decode_one, _ in agents
    }

    async def payload(request: RetryRequest, decode_one: Decoder) -> bytes:
        if request.record is None:
            return base64.b64decode(request.payload_b64)
        original = await fetch(request.record)
        event = decode_one(original.value, original)
        return encode(event.model_copy(update={"attempt": request.record_attempt}))

    async def redeliver(message: faust.EventT) -> None:
        try:
            request = decode(message.value, RetryRequest)
            if request.topic not in by_name:
                raise InvalidEvent(f"retry for unknown topic {request.topic[:80]!r}")
        except InvalidEvent as exc:
            await dispatcher.dead_letter(None, message.value, ref_of(message), str(exc))
            return
        spec, decode_one = by_name[request.topic]
        delay = (request.not_before - datetime.now(UTC)).total_seconds()
        if delay > 0:
            await asyncio.sleep(min(delay, 60.0))
        await publisher.send([(spec, request.object_id, await payload(request, decode_one))])

    async def agent(stream: faust.StreamT) -> None:
        async for message in stream.events():
            try:
                await redeliver(message)
            except BaseException as exc:  # never acknowledge a request not re-delivered
                halt(exc)
                raise

    return agent


def sink_loop(
    settings: Settings, dispatcher: Dispatcher, halt: Callable[[BaseException], None] = crash
) -> Callable[[faust.StreamT], Awaitable[None]]:
    """Batch events into MongoDB; while the database is unreachable or shutting down, back off
    and retry; a batch refused for another reason is split until the refused events are
    found, and only those are dead-lettered, with their raw bytes."""

    async def agent(stream: faust.StreamT) -> None:
        client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(settings.mongo_url)
        db = client[settings.mongo_database]
        await retry_db(partial(sink.create_indexes, db))
        heads = sink.HeadCache()
        async for messages in take_batches(stream, 500, SINK_WINDOW_S):
            try:
                await sink_batch(db, dispatcher, messages, heads)
            except BaseException as exc:
                halt(exc)
                raise

    return agent


async def sink_batch(
    db: Any,
    dispatcher: Dispatcher,
    messages: Sequence[faust.EventT],
    heads: sink.HeadCache | None = None,
) -> None:
    decoded: list[tuple[Event, faust.EventT]] = []
    for message in messages:
        try:
            decoded.append((decode(message.value, *sink.SINK_INPUTS), message))
        except InvalidEvent as exc:
            await dispatcher.dead_letter(None, message.value, ref_of(message), str(exc))

    async def write(items: Sequence[tuple[Event, faust.EventT]]) -> None:
        events = [event for event, _ in items]
        refs = [ref_of(message).record() for _, message in items]
        await retry_db(partial(sink.write_batch, db, events, heads, refs))

    for (event, message), exc in await sink.refused(write, decoded):
        reason = f"mongodb refused: {type(exc).__name__}: {exc}"[:500]
        if isinstance(event, sink.OWN_RECORDS):  # a dead letter of those would loop back here
            log.error(
                "sink refused its own record; it stays on its topic",
                extra={"stage": "sink", "event_id": event.event_id, "reason": reason},
            )
            continue
        await dispatcher.dead_letter(event, message.value, ref_of(message), reason)


async def retry_db(operation: Callable[[], Awaitable[object]]) -> None:
    attempt = 0
    while True:
        try:
            await operation()
            return
        except PyMongoError as exc:
            if not transient(exc):
                raise
            delay = backoff_s(attempt, RetryPolicy(cap_s=10.0), 0.5)
            log.warning(
                "mongodb unavailable, backing off",
                extra={"stage": "sink", "error": str(exc)[:200], "delay_s": delay},
            )
            await asyncio.sleep(delay)
            attempt += 1
