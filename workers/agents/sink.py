"""sink: accepted, encrypted, replicated, verified, tiered, audit, deadletter -> MongoDB.

Batched. ``objects`` holds one document per object version (``_id = object_id:vN``), upserted
with ``$set`` on fields each event owns, so redelivery and cross-topic reordering change
nothing. ``audit`` and ``deadletters`` are append-only with ``_id = event_id``; audit records
are hash-chained per object (``seq``, ``prev_hash``, ``hash``) in arrival order. MongoDB being
down is not the events' fault: the sink backs off and retries the batch until it is back.
"""

import asyncio
from collections.abc import Iterable, Sequence
from typing import Any

from pymongo import ASCENDING, UpdateOne
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import BulkWriteError

from schemas.events import (
    AuditRecord,
    DeadLetter,
    Event,
    ObjectAccepted,
    ObjectEncrypted,
    ReplicaTiered,
    ReplicaVerified,
    ReplicaWritten,
)
from topics import ACCEPTED, ENCRYPTED, REPLICATE, REPLICATED, TIERED, VERIFIED
from workers.core.auditchain import GENESIS, record_hash
from workers.dispatch import Emit, step_record

STAGE = "sink"
SINK_INPUTS = (
    ObjectAccepted,
    ObjectEncrypted,
    ReplicaWritten,
    ReplicaVerified,
    ReplicaTiered,
    AuditRecord,
    DeadLetter,
)
Doc = dict[str, Any]
BULK_LIMIT = 50


def doc_id(event: Event) -> str:
    return f"{event.object_id}:v{event.version}"


def object_update(event: Event) -> Doc | None:
    """The ``$set`` an event applies to its ``objects`` document (None: not an object event)."""
    at = event.produced_at
    match event:
        case ObjectAccepted(placement=p, source=s):
            source = "path" if s.path else "url" if s.url else "inline"
            return {
                "name": p.name,
                "tenant": p.tenant,
                "tags": p.tags,
                "targets": list(p.targets),
                "mode": p.mode,
                "source": s.path or s.url or source,
                "accepted_at": at,
            }
        case ObjectEncrypted(only_targets=()):
            return {
                "primary": event.primary,
                "key": event.key,
                "key_id": event.key_id,
                "algorithm": event.algorithm,
                "size": event.plaintext_size,
                "plaintext_sha256": event.plaintext_sha256,
                "ciphertext_size": event.ciphertext_size,
                "ciphertext_sha256": event.ciphertext_sha256,
                "encrypted_at": at,
            }
        case ReplicaWritten(target=t):
            return {f"replicas.{t}.key": event.key, f"replicas.{t}.written_at": at}
        case ReplicaVerified(target=t):
            return {
                f"replicas.{t}.verified_at": event.verified_at,
                f"replicas.{t}.sha256": event.ciphertext_sha256,
                f"replicas.{t}.repaired_from": event.repaired_from,
            }
        case ReplicaTiered(target=t):
            return {f"replicas.{t}.tier": event.tier, f"replicas.{t}.tiered_at": at}
    return None


def update_document(event: Event) -> Doc | None:
    """The whole upsert for an event: timestamps only ever move earlier (``$min``) and unset
    values are left alone, so replaying any event changes nothing."""
    fields = object_update(event)
    if fields is None:
        return None
    fields["created_at"] = event.produced_at
    return {
        "$set": {k: v for k, v in fields.items() if not k.endswith("_at") and v is not None},
        "$min": {k: v for k, v in fields.items() if k.endswith("_at")},
        "$setOnInsert": {"object_id": event.object_id, "version": event.version},
    }


async def create_indexes(db: AsyncDatabase[Doc]) -> None:
    await db["objects"].create_index([("tenant", ASCENDING), ("name", ASCENDING)])
    await db["audit"].create_index([("object_id", ASCENDING), ("seq", ASCENDING)])
    await db["deadletters"].create_index([("stage", ASCENDING)])


async def insert_new(
    db: AsyncDatabase[Doc], name: str, docs: Sequence[Doc], *, ordered: bool = False
) -> None:
    """Insert, ignoring documents whose ``_id`` exists already (a redelivery)."""
    if not docs:
        return
    try:
        await db[name].insert_many(list(docs), ordered=ordered)
    except BulkWriteError as exc:
        if any(err.get("code") != 11000 for err in exc.details.get("writeErrors", [])):
            raise


async def append_audit(db: AsyncDatabase[Doc], records: Iterable[AuditRecord]) -> int:
    """Chain and insert the records not stored yet; return how many were new.

    Every lookup is by ``_id`` (the only filter FerretDB's SQLite backend answers from an
    index). ``audit_heads`` holds each object's last (hash, seq); a head left stale by a crash
    between the two writes is caught up from the redelivered records found already stored.
    """
    unique = list({r.event_id: r for r in records}.values())
    if not unique:
        return 0
    stored = await asyncio.gather(
        *(db["audit"].find_one({"_id": r.event_id}, {"seq": 1, "hash": 1}) for r in unique)
    )
    heads: dict[str, tuple[str, int]] = {}
    docs = []
    for record, existing in zip(unique, stored, strict=True):
        if record.object_id not in heads:
            head = await db["audit_heads"].find_one({"_id": record.object_id})
            heads[record.object_id] = (head["hash"], head["seq"]) if head else (GENESIS, 0)
        prev, seq = heads[record.object_id]
        if existing is not None:
            if existing["seq"] > seq:
                heads[record.object_id] = (existing["hash"], existing["seq"])
            continue
        doc = {"_id": record.event_id, **record.model_dump(mode="python"), "seq": seq + 1}
        doc["prev_hash"], doc["hash"] = prev, record_hash(prev, doc)
        heads[record.object_id] = (doc["hash"], seq + 1)
        docs.append(doc)
    # Ordered: a failure part-way leaves a prefix of the chain, never a gap.
    await insert_new(db, "audit", docs, ordered=True)
    await bulk_upsert(
        db,
        "audit_heads",
        [
            UpdateOne({"_id": o}, {"$set": {"hash": h, "seq": n}}, upsert=True)
            for o, (h, n) in heads.items()
        ],
    )
    return len(docs)


async def bulk_upsert(db: AsyncDatabase[Doc], name: str, updates: Sequence[UpdateOne]) -> None:
    # FerretDB 1.24 held one SQLite connection per update of a command and deadlocked at 100
    # (patched in the stack's build); small commands keep other servers' latency low too.
    for start in range(0, len(updates), BULK_LIMIT):
        await db[name].bulk_write(list(updates[start : start + BULK_LIMIT]), ordered=True)


def step_of(event: Event) -> tuple[str, Emit] | None:
    """Which stage produced a chain event, as what step (for its audit record)."""
    match event:
        case ObjectAccepted():
            return "ingest", Emit(ACCEPTED, event)
        case ObjectEncrypted(only_targets=(target,)):
            return "replicate", Emit(REPLICATE[target], event, action="replica.requested")
        case ObjectEncrypted():
            return "encrypt", Emit(ENCRYPTED, event)
        case ReplicaWritten(target=target, scrub=True):
            return "scrub", Emit(REPLICATED[target], event, action="scrub.requested")
        case ReplicaWritten(target=target):
            return "replicate", Emit(REPLICATED[target], event)
        case ReplicaVerified():
            return "verify", Emit(VERIFIED, event)
        case ReplicaTiered():
            return "tier", Emit(TIERED, event)
    return None


async def write_batch(db: AsyncDatabase[Doc], events: Sequence[Event]) -> None:
    """Apply one batch of decoded events to MongoDB (idempotent)."""
    updates = [
        UpdateOne({"_id": doc_id(event)}, update, upsert=True)
        for event in events
        if (update := update_document(event)) is not None
    ]
    await bulk_upsert(db, "objects", updates)
    letters = [
        {"_id": e.event_id, **e.model_dump(mode="python")}
        for e in events
        if isinstance(e, DeadLetter)
    ]
    await insert_new(db, "deadletters", letters)
    # Every chain event is also a step of the trail: derived here, not only taken from the
    # audit topic, so the trail is as complete as the state it describes.
    trail = []
    for event in events:
        if isinstance(event, AuditRecord):
            trail.append(event)
        elif (step := step_of(event)) is not None:
            trail.append(step_record(*step))
    await append_audit(db, trail)
