"""Client side of the pipeline: produce ingest requests, read state, tail the audit topic.

Used by the CLI and the tests; talks to Kafka with aiokafka and to MongoDB with pymongo.
"""

import asyncio
import hashlib
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from pymongo import AsyncMongoClient

from schemas.codec import decode, encode
from schemas.events import (
    AuditRecord,
    Event,
    IngestRequest,
    ObjectAccessed,
    Outcome,
    Placement,
    ReplicaWritten,
    Source,
    event_id,
)
from topics import ACCESS, AUDIT, INGEST, REPLICATED, TopicSpec
from workers.agents.sink import doc_id
from workers.settings import Settings

Doc = dict[str, Any]


def object_id_for(tenant: str, name: str) -> str:
    """Stable id of a named object: putting the same name again addresses the same object."""
    return hashlib.sha256(f"{tenant}\x1f{name}".encode()).hexdigest()[:24]


def ingest_request(source: Source, placement: Placement, version: int = 1) -> IngestRequest:
    object_id = object_id_for(placement.tenant, placement.name)
    return IngestRequest(
        kind=IngestRequest.KIND,
        v=1,
        event_id=event_id(IngestRequest.KIND, object_id, version, placement.name),
        object_id=object_id,
        version=version,
        correlation_id=uuid.uuid4().hex,
        produced_at=datetime.now(UTC),
        source=source,
        placement=placement,
    )


def requests_for_path(
    root: Path, targets: Sequence[str], tenant: str, tags: dict[str, str], mode: str = "stream"
) -> list[IngestRequest]:
    """One request per regular file under ``root`` (or ``root`` itself), named relative to it."""
    root = root.resolve()
    files = sorted(p for p in root.rglob("*") if p.is_file()) if root.is_dir() else [root]
    base = root if root.is_dir() else root.parent
    return [
        ingest_request(
            Source(path=str(path)),
            Placement(
                name=path.relative_to(base).as_posix(),
                targets=tuple(targets),  # type: ignore[arg-type]
                tenant=tenant,
                tags=tags,
                mode=mode,  # type: ignore[arg-type]
            ),
        )
        for path in files
    ]


async def produce_events(settings: Settings, topic: TopicSpec, events: Iterable[Event]) -> int:
    """Send events keyed by object id; return how many were sent."""
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap, acks="all", linger_ms=5)
    await producer.start()
    count = 0
    try:
        for event in events:
            await producer.send(
                topic.name(settings.topic_prefix), key=event.object_id.encode(), value=encode(event)
            )
            count += 1
        await producer.flush()
    finally:
        await producer.stop()
    return count


async def produce(settings: Settings, requests: Iterable[IngestRequest]) -> int:
    return await produce_events(settings, INGEST, requests)


@dataclass
class State:
    """MongoDB as the sink left it."""

    settings: Settings

    def __post_init__(self) -> None:
        self.client: AsyncMongoClient[Doc] = AsyncMongoClient(self.settings.mongo_url)
        self.db = self.client[self.settings.mongo_database]

    async def objects(self, object_id: str) -> list[Doc]:
        cursor = self.db["objects"].find({"object_id": object_id}).sort("version", 1)
        return [doc async for doc in cursor]

    async def object(self, object_id: str, version: int | None = None) -> Doc | None:
        """One version (an ``_id`` lookup), or the newest when ``version`` is None."""
        if version is not None:
            return await self.db["objects"].find_one({"_id": doc_id(object_id, version)})
        docs = await self.objects(object_id)
        return docs[-1] if docs else None

    async def audit(self, object_id: str) -> list[Doc]:
        cursor = self.db["audit"].find({"object_id": object_id}).sort("seq", 1)
        return [doc async for doc in cursor]

    async def dead_letters(self) -> dict[str, str]:
        """The latest dead-letter reason of every object that has one."""
        cursor = self.db["deadletters"].find({}, {"object_id": 1, "reason": 1})
        return {doc["object_id"]: doc["reason"] async for doc in cursor}

    async def close(self) -> None:
        await self.client.close()


def verified_everywhere(doc: Doc | None) -> bool:
    if doc is None or "targets" not in doc:
        return False
    replicas = doc.get("replicas") or {}
    return all((replicas.get(t) or {}).get("verified_at") for t in doc["targets"])


async def wait_verified(
    state: State,
    object_ids: Sequence[str],
    timeout_s: float,
    version: int = 1,
    on_progress: Callable[[int], None] = lambda _: None,
) -> dict[str, str]:
    """Wait until every object is verified in all its targets; return failures by object id.

    ``on_progress`` is told how many objects are settled (verified or failed) so far.
    """
    deadline = time.monotonic() + timeout_s
    pending = set(object_ids)
    failures: dict[str, str] = {}
    while pending and time.monotonic() < deadline:
        letters = await state.dead_letters()
        ids = [doc_id(object_id, version) for object_id in pending]  # one query per round
        docs = {d["object_id"]: d async for d in state.db["objects"].find({"_id": {"$in": ids}})}
        for object_id in list(pending):
            if verified_everywhere(docs.get(object_id)):
                pending.discard(object_id)
            elif object_id in letters:
                failures[object_id] = letters[object_id]
                pending.discard(object_id)
        on_progress(len(object_ids) - len(pending))
        if pending:
            await asyncio.sleep(0.5)
    failures.update({oid: f"not verified within {timeout_s:.0f} s" for oid in pending})
    return failures


async def tail_audit(
    settings: Settings, *, from_beginning: bool, limit: int | None, idle_s: float | None
) -> AsyncIterator[AuditRecord]:
    """Audit records as they arrive; stops after ``limit`` records or ``idle_s`` of silence."""
    consumer = AIOKafkaConsumer(
        AUDIT.name(settings.topic_prefix),
        bootstrap_servers=settings.kafka_bootstrap,
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
                    yield decode(message.value, AuditRecord)
                    seen += 1
    finally:
        await consumer.stop()


async def record_access(settings: Settings, doc: Doc, target: str, size: int) -> None:
    """Tell the tiering policy that the object was read (topic ``access``)."""
    accessed = ObjectAccessed(
        kind=ObjectAccessed.KIND,
        v=1,
        event_id=event_id(ObjectAccessed.KIND, doc["object_id"], doc["version"], uuid.uuid4().hex),
        object_id=doc["object_id"],
        version=doc["version"],
        correlation_id=uuid.uuid4().hex,
        produced_at=datetime.now(UTC),
        target=target,
        bytes_read=size,
    )
    await produce_events(settings, ACCESS, [accessed])


def scrub_requests(doc: Doc, run_id: str) -> list[ReplicaWritten]:
    """Re-verification requests for every replica of one object version (the scrub)."""
    placement = Placement(
        name=doc["name"],
        targets=tuple(doc["targets"]),
        tenant=doc["tenant"],
        tags=doc.get("tags") or {},
        mode=doc.get("mode", "stream"),
    )
    return [
        ReplicaWritten(
            kind=ReplicaWritten.KIND,
            v=1,
            event_id=event_id(
                ReplicaWritten.KIND, doc["object_id"], doc["version"], target, run_id
            ),
            object_id=doc["object_id"],
            version=doc["version"],
            correlation_id=run_id,
            produced_at=datetime.now(UTC),
            placement=placement,
            target=target,
            key=doc["key"],
            ciphertext_size=doc["ciphertext_size"],
            ciphertext_sha256=doc["ciphertext_sha256"],
            plaintext_sha256=doc["plaintext_sha256"],
            key_id=doc["key_id"],
            scrub=True,
        )
        for target in doc["targets"]
    ]


async def scrub(settings: Settings, docs: Iterable[Doc]) -> int:
    """Send every replica of ``docs`` back through verify, which repairs what it finds bad."""
    run_id = uuid.uuid4().hex
    events = [e for doc in docs if "ciphertext_sha256" in doc for e in scrub_requests(doc, run_id)]
    for target, topic in REPLICATED.items():
        await produce_events(settings, topic, [e for e in events if e.target == target])
    return len(events)


async def audit_key_event(
    settings: Settings, object_id: str, version: int, action: str, detail: str
) -> None:
    """An audit record for a key operation done outside the agents (rotate, forget)."""
    record = AuditRecord(
        kind=AuditRecord.KIND,
        v=1,
        event_id=event_id(AuditRecord.KIND, object_id, version, "keys", action, detail),
        object_id=object_id,
        version=version,
        correlation_id=uuid.uuid4().hex,
        produced_at=datetime.now(UTC),
        stage="keys",
        action=action,
        outcome=Outcome.OK,
        detail={"by": detail},
    )
    await produce_events(settings, AUDIT, [record])
