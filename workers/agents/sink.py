"""sink: accepted, encrypted, replicated, verified, tiered, access, delete, remove(d), audit,
deadletter -> MongoDB.

Batched. ``objects`` holds one document per object version (``_id = object_id:vN``), upserted
with ``$set`` on fields each event owns, so redelivery and cross-topic reordering change
nothing; each touched version's ``state`` is then recomputed from its document alone
(``workers.core.versions.version_state``). A replica's tier is the newest ``tiered`` event's
(a stale redelivery is ignored), its verdict the latest check's (``latest_verdict``); a read
(``access``) is appended to the version's ``reads`` (the newest ``READS_KEPT``, once per
event) for the tiering policy. ``audit`` and ``deadletters`` are append-only with
``_id = event_id``; audit records are hash-chained per object (``seq``, ``prev_hash``,
``hash``) in arrival order. MongoDB being down is not the events' fault: the sink backs off
and retries the batch until it is back.
"""

import asyncio
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from pymongo import ASCENDING, DESCENDING, UpdateOne
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import BulkWriteError, PyMongoError

from schemas.events import (
    AuditRecord,
    DeadLetter,
    DeleteRequest,
    Event,
    ObjectAccepted,
    ObjectAccessed,
    ObjectEncrypted,
    RecordRef,
    ReplicaRemoval,
    ReplicaRemoved,
    ReplicaTiered,
    ReplicaVerified,
    ReplicaWritten,
)
from workers import metrics
from workers.audit.checkpoints import MOVED
from workers.audit.trail import step_of, step_record
from workers.core.auditchain import GENESIS, record_hash
from workers.core.holds import REMOVAL_REFUSED
from workers.core.versions import doc_id, version_state
from workers.dispatch import UNKNOWN_OBJECT
from workers.mongo import by_ids

STAGE = "sink"
SINK_INPUTS = (
    ObjectAccepted,
    ObjectAccessed,
    ObjectEncrypted,
    ReplicaWritten,
    ReplicaVerified,
    ReplicaTiered,
    DeleteRequest,
    ReplicaRemoval,
    ReplicaRemoved,
    AuditRecord,
    DeadLetter,
)
# The sink's own records: if MongoDB refuses one, it is logged, never dead-lettered (a dead
# letter and its audit record would come back to the sink and be refused again).
OWN_RECORDS = (AuditRecord, DeadLetter)
# A dead letter from one of these stages means the version will not be verified as it is.
FAILING_STAGES = frozenset({"encrypt", "replicate", "verify"})
Doc = dict[str, Any]
T = TypeVar("T")
BULK_LIMIT = 50
DUPLICATE_KEY = 11000
HEAD_IDS = 64  # ids of an object's latest records its head keeps (a version has about 14)
READS_KEPT = 256  # read times a version's document keeps for the tiering policy (the newest)
CHECKS_KEPT = 64  # ids of a replica's latest checks its document keeps (a replay is known)


def object_update(event: Event) -> Doc | None:
    """The ``$set`` an event applies to its ``objects`` document (None: not an object event)."""
    at = event.produced_at
    match event:
        case ObjectAccepted(placement=p, source=s):
            source = "staged" if s.staged else "inline" if s.inline_b64 is not None else None
            return {
                "name": p.name,
                "tenant": p.tenant,
                "tags": p.tags,
                "targets": list(p.targets),
                "mode": p.mode,
                "source": s.path or s.url or source,
                **({"source_fingerprint": s.fingerprint} if s.fingerprint else {}),
                **({"source_digests": s.digests} if s.digests else {}),
                "request_id": event.correlation_id,
                "requested_by": event.requested_by or None,
                "size": event.plaintext_size,
                "plaintext_sha256": event.plaintext_sha256,
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
                # set only when checked: a null would win ``$min`` over a time
                **({"key_checked_at": event.key_checked_at} if event.key_checked_at else {}),
            }
        case ReplicaWritten(target=t, scrub=False):
            return {
                f"replicas.{t}.key": event.key,
                f"replicas.{t}.written_at": at,
                # what the store confirmed: a scrub proves an archived replica by it
                f"replicas.{t}.store_digest": event.store_digest,
            }
        case ReplicaWritten(target=t):
            return {f"replicas.{t}.key": event.key}
        case ReplicaVerified(target=t, verdict="good"):
            update = {
                f"replicas.{t}.verified_at": event.verified_at,
                f"replicas.{t}.sha256": event.ciphertext_sha256,
                f"replicas.{t}.repaired_from": event.repaired_from,
                f"replicas.{t}.verified_by": event.mode,
            }
            if event.mode == "read-back":
                update[f"replicas.{t}.read_back_at"] = event.verified_at
            return update
        case ReplicaVerified():  # a bad verdict: ``latest_verdict`` records it
            return {}
        case ReplicaTiered():  # the tier itself: ``latest_tier``
            return {}
        case DeleteRequest(mode=mode):  # the intent, reconciled until it is done
            return {f"{mode}_requested_at": at}
        case ReplicaRemoval(mode=mode):  # sent once the tombstone is written
            return {"shredded_at" if mode == "forget" else "deleted_at": at}
        case ReplicaRemoved(target=t):
            return {f"replicas.{t}.removed_at": at}
        case DeadLetter(stage="delete") if event.reason.startswith(REMOVAL_REFUSED):
            return {"removal_refused_at": at, "removal_refusal": event.reason}  # not re-driven
        case DeadLetter(stage=stage) if stage in FAILING_STAGES:
            if event.object_id == UNKNOWN_OBJECT or event.version < 1:
                return None
            return {f"failures.{event.event_id}": event.reason, "failed_at": at}
    return None


def latest_tier(event: ReplicaTiered) -> UpdateOne:
    """Record the replica's tier unless this placement was recorded before (a replay emits it
    again, with a new time) or a newer one is recorded already."""
    at, prefix = event.produced_at, f"replicas.{event.target}"
    newer = [{f"{prefix}.tiered_at": {"$exists": False}}, {f"{prefix}.tiered_at": {"$lt": at}}]
    update = {
        f"{prefix}.tier": event.tier,
        f"{prefix}.tiered_at": at,
        f"{prefix}.tier_reason": event.reason,
    }
    selected = {
        "_id": doc_id(event.object_id, event.version),
        f"{prefix}.tier_events": {"$ne": event.event_id},
        "$or": newer,
    }
    return UpdateOne(selected, {"$set": update, "$push": {f"{prefix}.tier_events": event.event_id}})


def latest_verdict(event: ReplicaVerified) -> list[UpdateOne]:
    """Record the replica's verdict (and, a good one, its proof time) unless a later check's
    is recorded already, or this check was (a replay verifies again, later, under the same
    event id: the trail keeps the first, so must the state). A replica's verdict is its
    latest check's, whatever order the checks reach the sink in. The ids of the newest
    ``CHECKS_KEPT`` checks are kept; two updates, as for reads."""
    at, prefix = event.verified_at, f"replicas.{event.target}"
    ids = f"{prefix}.check_ids"
    selected = {"_id": doc_id(event.object_id, event.version), ids: {"$ne": event.event_id}}
    newer = [{f"{prefix}.checked_at": {"$exists": False}}, {f"{prefix}.checked_at": {"$lt": at}}]
    full = {**selected, "$or": newer, f"{ids}.{CHECKS_KEPT - 1}": {"$exists": True}}
    update = {f"{prefix}.verdict": event.verdict, f"{prefix}.checked_at": at}
    if event.verdict == "good":
        update[f"{prefix}.proven_at"] = at
    return [
        UpdateOne(full, {"$pop": {ids: -1}}),
        UpdateOne({**selected, "$or": newer}, {"$set": update, "$push": {ids: event.event_id}}),
    ]


def read_writes(event: ObjectAccessed) -> list[UpdateOne]:
    """Append one read to ``reads`` (dropping the oldest when ``READS_KEPT`` are kept), once
    per event. Two updates: ``$push`` with ``$slice`` is not applied by FerretDB."""
    new = {"_id": doc_id(event.object_id, event.version), "read_ids": {"$ne": event.event_id}}
    full = {**new, f"reads.{READS_KEPT - 1}": {"$exists": True}}
    push = {"reads": event.produced_at, "read_ids": event.event_id}
    return [
        UpdateOne(full, {"$pop": {"reads": -1, "read_ids": -1}}),
        UpdateOne(new, {"$push": push, "$max": {"last_read_at": event.produced_at}}),
    ]


def object_writes(event: Event) -> list[UpdateOne]:
    """Every write an event makes to its version's ``objects`` document, in order."""
    return batch_writes([event])


def ref_slot(event: Event) -> str | None:
    """The ``refs`` key of a chain event a stalled version may need again (None: others;
    ``workers.core.reconcile.redrive`` reads them)."""
    match event:
        case ObjectAccepted():
            return "accepted"
        case ObjectEncrypted(only_targets=()):
            return "encrypted"
        case ObjectEncrypted(only_targets=(target,)):
            return f"replicate_{target}"
        case ReplicaWritten(target=target, scrub=False):
            return f"replicated_{target}"
        case DeleteRequest(mode=mode):
            return f"{mode}_request"
        case ReplicaRemoval(mode=mode, target=target):
            return f"{mode}_remove_{target}"
    return None


def batch_writes(
    events: Iterable[Event], refs: Sequence[RecordRef | None] | None = None
) -> list[UpdateOne]:
    """A batch's writes to ``objects``: one upsert per version, every event's update merged
    into it (``merged``), then the filtered writes (a tier over an older placement, a read
    appended once) in event order. They own fields no upsert touches, so running them after
    the upserts ends where the events' own writes, one after another, would. ``refs``: where
    each event was read, kept for the chain events a stalled version may need again
    (``workers.core.reconcile``)."""
    upserts: dict[str, Doc] = {}
    filtered: list[UpdateOne] = []
    events = list(events)
    for event, ref in zip(events, refs or [None] * len(events), strict=True):
        if isinstance(event, ObjectAccessed):
            filtered += read_writes(event) if event.version >= 1 else []
            continue
        update = update_document(event)
        if update is None:
            continue
        if ref is not None and (name := ref_slot(event)) is not None:
            # the first copy read: a replay re-announcing an event adds copies further on (an
            # event is always on the same topic and partition, keyed by its object)
            update["$set"] |= {
                f"refs.{name}.topic": ref.topic,
                f"refs.{name}.partition": ref.partition,
            }
            update["$min"][f"refs.{name}.offset"] = ref.offset
        key = doc_id(event.object_id, event.version)
        upserts[key] = merged(upserts[key], update) if key in upserts else update
        if isinstance(event, ReplicaTiered):
            filtered.append(latest_tier(event))
        elif isinstance(event, ReplicaVerified):
            filtered += latest_verdict(event)
    writes = [UpdateOne({"_id": key}, update, upsert=True) for key, update in upserts.items()]
    return writes + filtered


def merged(first: Doc, then: Doc) -> Doc:
    """One update doing what ``first`` then ``then`` do: ``$set`` keeps the later value,
    ``$min`` the earlier time, ``$max`` the later one, ``$setOnInsert`` the first value."""
    out: Doc = {op: dict(fields) for op, fields in first.items()}
    for op, fields in then.items():
        into = out.setdefault(op, {})
        for name, value in fields.items():
            if name not in into or op == "$set":
                into[name] = value
            elif op == "$min":
                into[name] = min(into[name], value)
            elif op == "$max":
                into[name] = max(into[name], value)
    return out


# Events after which a version's state may differ (encrypted: its key check).
STATE_EVENTS = (ObjectAccepted, ObjectEncrypted, ReplicaVerified, ReplicaRemoval, DeadLetter)


# Timestamps of the latest occurrence (a replica is read back again by every scrub).
LATEST = ("read_back_at", "removal_refused_at")


def update_document(event: Event) -> Doc | None:
    """The whole upsert for an event: first-occurrence timestamps only ever move earlier
    (``$min``), latest-occurrence ones later (``$max``), and unset values are left alone, so
    replaying any event changes nothing."""
    fields = object_update(event)
    if fields is None or event.version < 1:
        return None
    fields["created_at"] = event.produced_at
    times = {k: v for k, v in fields.items() if k.endswith("_at")}
    update = {
        "$set": {k: v for k, v in fields.items() if k not in times and v is not None},
        "$min": {k: v for k, v in times.items() if not k.endswith(LATEST)},
        "$setOnInsert": {"object_id": event.object_id, "version": event.version},
    }
    if latest := {k: v for k, v in times.items() if k.endswith(LATEST)}:
        update["$max"] = latest
    return update


async def create_indexes(db: AsyncDatabase[Doc]) -> None:
    """The indexes of every query the CLI and the agents make (``_id`` lookups aside)."""
    objects = db["objects"]
    await objects.create_index([("object_id", ASCENDING), ("version", ASCENDING)])
    await objects.create_index([("tenant", ASCENDING), ("name", ASCENDING), ("version", ASCENDING)])
    await objects.create_index([("tenant", ASCENDING), ("state", ASCENDING), ("name", ASCENDING)])
    await objects.create_index([("state", ASCENDING)])  # the reconcile's pending, every tenant
    await db["deadletters"].create_index([("stage", ASCENDING)])
    await db["deadletters"].create_index([("correlation_id", ASCENDING)])
    await db["holds"].create_index([("tenant", ASCENDING), ("kind", ASCENDING)])  # a removal's
    await db["links"].create_index([("object_id", ASCENDING)])  # an object's share links
    await db["sync_pages"].create_index([("job", ASCENDING)])  # a sync job's pages
    await db["syncs"].create_index([("tenant", ASCENDING), ("created_at", ASCENDING)])
    # Unique: a second record at one place of a chain is refused, never stored. A database
    # from before it was unique has the same index without: replaced.
    chain = [("object_id", ASCENDING), ("seq", ASCENDING)]
    old = (await db["audit"].index_information()).get("object_id_1_seq_1")
    if old is not None and not old.get("unique"):
        await db["audit"].drop_index("object_id_1_seq_1")
    await db["audit"].create_index(chain, unique=True)


async def insert_new(db: AsyncDatabase[Doc], name: str, docs: Sequence[Doc]) -> None:
    """Insert, ignoring documents whose ``_id`` exists already (a redelivery)."""
    if not docs:
        return
    counted(name, len(docs))
    try:
        await db[name].insert_many(list(docs), ordered=False)
    except BulkWriteError as exc:
        if not only_duplicates(exc):
            raise


def only_duplicates(exc: BulkWriteError) -> bool:
    """Every document the bulk write refused has an ``_id`` or unique key stored already."""
    return all(err.get("code") == DUPLICATE_KEY for err in exc.details.get("writeErrors", []))


@dataclass(frozen=True, slots=True)
class Head:
    """The end of one object's chain: its last hash and seq, and its latest records' ids."""

    hash: str = GENESIS
    seq: int = 0
    ids: tuple[str, ...] = ()

    @classmethod
    def of(cls, doc: Doc | None) -> "Head":
        return cls(doc["hash"], doc["seq"], tuple(doc.get("ids", ()))) if doc else cls()

    def then(self, doc: Doc) -> "Head":
        return Head(doc["hash"], doc["seq"], (*self.ids, doc["_id"])[-HEAD_IDS:])


class ChainConflict(BulkWriteError):
    """A record to insert is stored already, or its place in the chain is taken."""


def chain(records: Iterable[AuditRecord], heads: dict[str, Head]) -> list[Doc]:
    """Link each record not among its object's head ids to the end of its chain (advances
    ``heads``); return the documents to insert, in order."""
    docs = []
    for record in records:
        head = heads[record.object_id]
        if record.event_id in head.ids:
            continue  # stored already: a redelivery, or the same step from the audit topic
        doc = {"_id": record.event_id, **record.model_dump(mode="python"), "seq": head.seq + 1}
        doc["prev_hash"] = head.hash
        doc["hash"] = record_hash(head.hash, doc)  # over every field but itself
        heads[record.object_id] = head.then(doc)
        docs.append(doc)
    return docs


class HeadCache:
    """The chain heads this sink process wrote last, by object id (the newest ``limit``).

    A cached head saves the batch its ``audit_heads`` lookup. It may be stale (another sink
    took the object over for a while): the unique indexes then refuse the insert, the
    ``ChainConflict`` slow path links the batch from what ``audit`` holds, and the heads it
    finds replace the cached ones. A head is cached only once it is written.
    """

    def __init__(self, limit: int = 100_000) -> None:
        self.limit = limit
        self.heads: dict[str, Head] = {}

    def get(self, object_id: str) -> Head | None:
        return self.heads.get(object_id)

    def put(self, heads: dict[str, Head]) -> None:
        for object_id, head in heads.items():
            self.heads.pop(object_id, None)  # now the newest
            self.heads[object_id] = head
        while len(self.heads) > self.limit:
            del self.heads[next(iter(self.heads))]  # the least recently written

    def forget(self, object_ids: Iterable[str]) -> None:
        for object_id in object_ids:
            self.heads.pop(object_id, None)


async def append_audit(
    db: AsyncDatabase[Doc], records: Iterable[AuditRecord], cache: HeadCache | None = None
) -> int:
    """Chain and insert the records not stored yet; return how many were new.

    Each object's head comes from ``cache`` or else from ``audit_heads`` (one query by
    ``_id`` for all the batch's heads not cached): its head names the latest records, so a
    redelivered record is recognised without a query. A head is written after its records,
    so a crash in between leaves it stale (a cached head is stale too when another sink
    wrote the chain meanwhile); the unique ``_id`` and (object_id, seq) indexes then refuse
    the insert instead of letting a record be stored twice or the chain fork, and the batch
    is linked again from what ``audit`` itself holds.
    """
    cache = cache if cache is not None else HeadCache(limit=0)
    unique = list({r.event_id: r for r in records}.values())
    objects = list(dict.fromkeys(r.object_id for r in unique))
    loaded = {o: h for o in objects if (h := cache.get(o)) is not None}
    unknown = [o for o in objects if o not in loaded]
    found = await by_ids(db["audit_heads"], unknown)
    loaded |= {o: Head.of(found.get(o)) for o in unknown}
    heads = dict(loaded)
    try:
        docs = await insert_chained(db, unique, heads)
    except ChainConflict:  # once more from what is stored; a second conflict is raised
        cache.forget(objects)
        heads = await stored_heads(db, unique)
        docs = await insert_chained(db, unique, heads)
    moved = [(o, h) for o, h in heads.items() if h != loaded[o]]
    await bulk_upsert(
        db,
        "audit_heads",
        [
            UpdateOne(
                {"_id": o},
                # dirty: the next checkpoint checks this head (workers.audit.checkpoints)
                {"$set": {"hash": h.hash, "seq": h.seq, "ids": list(h.ids), "dirty": MOVED}},
                upsert=True,
            )
            for o, h in moved
        ],
    )
    cache.put(heads)
    return len(docs)


async def insert_chained(
    db: AsyncDatabase[Doc], records: list[AuditRecord], heads: dict[str, Head]
) -> list[Doc]:
    docs = chain(records, heads)
    if docs:
        counted("audit", len(docs))
        try:  # ordered: a failure part-way leaves a prefix of the chain, never a gap
            await db["audit"].insert_many(docs, ordered=True)
        except BulkWriteError as exc:
            if only_duplicates(exc):
                raise ChainConflict(exc.details) from exc
            raise
    return docs


async def stored_heads(db: AsyncDatabase[Doc], records: list[AuditRecord]) -> dict[str, Head]:
    """Each object's head as ``audit`` holds it, with the ids of ``records`` stored already.

    The slow path (a query per record and a scan per object on FerretDB), taken only after a
    conflict: a crash between a batch's records and its heads, or two sinks on one object.
    """
    stored = await asyncio.gather(
        *(db["audit"].find_one({"_id": r.event_id}, {"_id": 1}) for r in records)
    )
    done = {r.event_id for r, s in zip(records, stored, strict=True) if s is not None}
    heads = {}
    for object_id in dict.fromkeys(r.object_id for r in records):
        last = await db["audit"].find_one({"object_id": object_id}, sort=[("seq", DESCENDING)])
        ids = tuple(r.event_id for r in records if r.object_id == object_id and r.event_id in done)
        heads[object_id] = Head(last["hash"], last["seq"], ids) if last else Head()
    return heads


async def bulk_upsert(db: AsyncDatabase[Doc], name: str, updates: Sequence[UpdateOne]) -> None:
    # FerretDB 1.24 held one SQLite connection per update of a command and deadlocked at 100
    # (patched in the stack's build); small commands keep other servers' latency low too.
    for start in range(0, len(updates), BULK_LIMIT):
        counted(name, len(updates[start : start + BULK_LIMIT]))
        await db[name].bulk_write(list(updates[start : start + BULK_LIMIT]), ordered=True)


def counted(collection: str, documents: int) -> None:
    """Count one write command of ``documents`` (``movingdata_sink_*``)."""
    metrics.SINK_REQUESTS.labels(collection).inc()
    metrics.SINK_WRITES.labels(collection).inc(documents)


def changes_state(event: Event) -> bool:
    return isinstance(event, STATE_EVENTS) and update_document(event) is not None


async def settle_states(db: AsyncDatabase[Doc], ids: Iterable[str]) -> None:
    """Recompute ``state`` of these versions from their documents (read in one query)."""
    docs = await by_ids(db["objects"], sorted(ids))
    updates = [
        UpdateOne({"_id": doc["_id"]}, {"$set": {"state": state}})
        for doc in docs.values()
        if doc.get("state") != (state := version_state(doc))
    ]
    await bulk_upsert(db, "objects", updates)


async def refused(
    write: Callable[[Sequence[T]], Awaitable[None]], items: Sequence[T]
) -> list[tuple[T, PyMongoError]]:
    """Write ``items``; if the database refuses (not transiently), split the batch in halves
    until the refused items are found, and return those with the error each got. Every write
    is idempotent, so the items of a half written twice change nothing."""
    if not items:
        return []
    try:
        await write(items)
        return []
    except PyMongoError as exc:
        if len(items) == 1:
            return [(items[0], exc)]
    middle = len(items) // 2
    return await refused(write, items[:middle]) + await refused(write, items[middle:])


async def write_batch(
    db: AsyncDatabase[Doc],
    events: Sequence[Event],
    heads: HeadCache | None = None,
    refs: Sequence[RecordRef | None] | None = None,
) -> None:
    """Apply one batch of decoded events to MongoDB (idempotent); ``heads``: this sink
    process's chain heads (``HeadCache``); ``refs``: where each event was read."""
    await bulk_upsert(db, "objects", batch_writes(events, refs))
    await settle_states(db, {doc_id(e.object_id, e.version) for e in events if changes_state(e)})
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
    await append_audit(db, trail, heads)
