"""The checkpoint log: signed, append-only, checked against the chains before each signature.

Collections (MongoDB):
- ``audit_log``: one document per checkpoint, ``_id`` its number (1, 2, ...), never replaced:
  its time, the previous checkpoint's digest, the Merkle root over the signed heads and their
  count, the digest of all that (``checkpoint_digest``) and its signature.
- ``audit_signed``: the head each object's chain had when last signed (``_id`` its object id):
  one small document per object, so no document grows with the estate.
- ``audit_signed_changes``: the heads each checkpoint signed anew (``number``), written before
  the checkpoint and applied to ``audit_signed`` after it: a crash in between is completed by
  the next round, and a reader can tell which heads a checkpoint moved.

Before signing, the sink checks the log's latest checkpoint (its signature, and that the
signed heads still give its root), that the database has not gone back to an older
checkpoint than this process signed (a rollback), and that each moved head extends the head
signed before (``extension_problem``). A head that does not is not signed: the object keeps
its last signed head, and an alert record names it on the audit topic. Each checkpoint is
also published on the audit topic (the ``audit-checkpoints`` chain), outside the database:
``audit verify`` checks the database's log against it.
"""

import logging
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from pymongo import ASCENDING, DESCENDING, UpdateOne
from pymongo.asynchronous.database import AsyncDatabase

from schemas.events import AuditRecord, Outcome, event_id
from workers.audit.merkle import MerkleRoot, head_leaf
from workers.core.auditchain import GENESIS, checkpoint_digest, extension_problem
from workers.kms.keys import AuditSigner

log = logging.getLogger("movingdata.audit")

LOG, SIGNED, CHANGES = "audit_log", "audit_signed", "audit_signed_changes"
CHAIN = "audit-checkpoints"  # the object id the log is published under on the audit topic
Doc = dict[str, Any]
Heads = dict[str, tuple[int, str]]
Refused = dict[str, tuple[str, str]]  # object id -> (problem, the signed head it breaks)


@dataclass(frozen=True, slots=True)
class Signed:
    """The checkpoint this process signed last (what the database must not go back from)."""

    number: int
    digest: str


@dataclass(slots=True)
class Round:
    """What one round did: the checkpoint signed (None: nothing moved, or refused), the
    objects whose heads were refused (why, and the signed head they broke), and a problem
    that stopped the whole round."""

    signed: Doc | None = None
    refused: "Refused" = field(default_factory=dict)
    problem: str | None = None


async def create_indexes(db: AsyncDatabase[Doc]) -> None:
    await db[CHANGES].create_index([("number", ASCENDING)])


async def latest(db: AsyncDatabase[Doc]) -> Doc | None:
    return await db[LOG].find_one({}, sort=[("_id", DESCENDING)])


def digest_of(doc: Mapping[str, Any]) -> str:
    """The digest a checkpoint document's own fields give."""
    return checkpoint_digest(doc["_id"], doc["at"], doc["prev"], doc["root"], doc["size"])


async def changes_of(db: AsyncDatabase[Doc], number: int) -> Heads:
    return {
        d["object_id"]: (d["seq"], d["hash"]) async for d in db[CHANGES].find({"number": number})
    }


async def signed_heads(
    db: AsyncDatabase[Doc], overlay: Heads
) -> AsyncIterator[tuple[str, int, str]]:
    """Every signed head by object id, ``overlay`` taking the place of what is stored."""
    pending = sorted(overlay)
    at = 0
    async for doc in db[SIGNED].find({}, sort=[("_id", ASCENDING)]):
        while at < len(pending) and pending[at] < doc["_id"]:
            yield pending[at], *overlay[pending[at]]
            at += 1
        if at < len(pending) and pending[at] == doc["_id"]:
            at += 1
            yield doc["_id"], *overlay[doc["_id"]]
        else:
            yield doc["_id"], doc["seq"], doc["hash"]
    for object_id in pending[at:]:
        yield object_id, *overlay[object_id]


async def root_of(db: AsyncDatabase[Doc], overlay: Heads) -> tuple[str, int]:
    """The Merkle root over the signed heads with ``overlay`` applied, and their count:
    streamed, in constant memory."""
    tree = MerkleRoot()
    async for object_id, seq, hash_ in signed_heads(db, overlay):
        tree.add(head_leaf(object_id, seq, hash_))
    return tree.root(), tree.size


async def log_problem(
    db: AsyncDatabase[Doc], signer: AuditSigner, last: Signed | None
) -> tuple[Doc | None, str | None]:
    """The log's latest checkpoint, and what is wrong with it (None: it holds)."""
    top = await latest(db)
    if last is not None and (
        top is None
        or top["_id"] < last.number
        or (top["_id"] == last.number and top["digest"] != last.digest)
    ):
        found = "none" if top is None else f"checkpoint {top['_id']}"
        return (
            top,
            f"the checkpoint log went back: {last.number} was signed, the database holds {found}",
        )
    if top is None:
        return None, None
    if digest_of(top) != top["digest"] or not await signer.verify(
        top["digest"].encode(), top["signature"]
    ):
        return top, f"checkpoint {top['_id']} is not validly signed"
    changes = await changes_of(db, top["_id"])
    if await root_of(db, changes) != (top["root"], top["size"]):
        return top, f"the signed heads no longer give checkpoint {top['_id']}'s root"
    await apply(db, top["_id"], changes)  # done already, unless a crash came between
    return top, None


async def by_id(
    db: AsyncDatabase[Doc], name: str, only: str | None = None
) -> AsyncIterator[tuple[str, Doc]]:
    """A collection's documents (``only``: one) as (``_id``, document), sorted by ``_id``."""
    query = {"_id": only} if only else {}
    async for doc in db[name].find(query, {"ids": 0}, sort=[("_id", ASCENDING)]):
        yield doc["_id"], doc


async def merged(
    *streams: AsyncIterator[tuple[str, Any]],
) -> AsyncIterator[tuple[str, list[Any]]]:
    """Streams sorted by key, joined: each key once, with each stream's item (or None)."""
    heads = [await anext(s, None) for s in streams]
    while any(h is not None for h in heads):
        key = min(h[0] for h in heads if h is not None)
        items = []
        for n, h in enumerate(heads):
            if h is not None and h[0] == key:
                items.append(h[1])
                heads[n] = await anext(streams[n], None)
            else:
                items.append(None)
        yield key, items


async def joined(db: AsyncDatabase[Doc]) -> AsyncIterator[tuple[str, Doc | None, Doc | None]]:
    """(object id, head, signed head) of every object with either, by object id."""
    async for object_id, (head, signed) in merged(by_id(db, "audit_heads"), by_id(db, SIGNED)):
        yield object_id, head, signed


async def moved_heads(db: AsyncDatabase[Doc]) -> tuple[Heads, Refused]:
    """The heads that moved since they were signed and extend the signed ones, and the
    objects whose heads do not (why)."""
    moved: Heads = {}
    refused: Refused = {}
    async for object_id, head, signed in joined(db):
        before = (signed["seq"], signed["hash"]) if signed else None
        anchor = f"{before[0]}:{before[1]}" if before else "genesis"
        if object_id == CHAIN:
            continue
        if head is None:
            refused[object_id] = (f"its head is gone (signed at {anchor})", anchor)
            continue
        current = (head["seq"], head["hash"])
        if current == before:
            continue
        first = before[0] if before else 1
        query = {"object_id": object_id, "seq": {"$gte": first, "$lte": current[0]}}
        records = [r async for r in db["audit"].find(query, sort=[("seq", ASCENDING)])]
        if (problem := extension_problem(before, records, current)) is not None:
            refused[object_id] = (problem, anchor)
        else:
            moved[object_id] = current
    return moved, refused


async def apply(db: AsyncDatabase[Doc], number: int, heads: Heads) -> None:
    updates = [
        UpdateOne({"_id": o}, {"$set": {"seq": s, "hash": h, "number": number}}, upsert=True)
        for o, (s, h) in heads.items()
    ]
    for start in range(0, len(updates), 500):
        await db[SIGNED].bulk_write(updates[start : start + 500], ordered=False)


async def sign_next(
    db: AsyncDatabase[Doc], signer: AuditSigner, now: datetime, last: Signed | None
) -> Round:
    """Check the log and the moved heads; sign and append the next checkpoint if any head
    moved and extends its signed one."""
    top, problem = await log_problem(db, signer, last)
    if problem is not None:
        return Round(problem=problem)
    moved, refused = await moved_heads(db)
    if not moved:
        return Round(refused=refused)
    number = (top["_id"] if top else 0) + 1
    prev = top["digest"] if top else GENESIS
    root, size = await root_of(db, moved)
    at = now.astimezone(UTC).replace(microsecond=now.microsecond // 1000 * 1000)
    digest = checkpoint_digest(number, at, prev, root, size)
    doc = {
        "_id": number,
        "at": at,
        "prev": prev,
        "root": root,
        "size": size,
        "moved": len(moved),
        "digest": digest,
        "signature": await signer.sign(digest.encode()),
    }
    changes = [
        UpdateOne(
            {"_id": f"{number}:{o}"},
            {"$set": {"number": number, "object_id": o, "seq": s, "hash": h}},
            upsert=True,
        )
        for o, (s, h) in moved.items()
    ]
    for start in range(0, len(changes), 500):
        await db[CHANGES].bulk_write(changes[start : start + 500], ordered=False)
    await db[LOG].insert_one(doc)  # a second signer of the same number is refused here
    await apply(db, number, moved)
    return Round(signed=doc, refused=refused)


def published(doc: Mapping[str, Any], actor: str) -> AuditRecord:
    """A checkpoint as a record of the ``audit-checkpoints`` chain on the audit topic."""
    return AuditRecord(
        kind=AuditRecord.KIND,
        v=AuditRecord.VERSION,
        event_id=event_id(AuditRecord.KIND, CHAIN, 0, "checkpoint", str(doc["_id"])),
        object_id=CHAIN,
        version=0,
        correlation_id=f"checkpoint-{doc['_id']}",
        produced_at=doc["at"],
        actor=actor,
        stage="sink",
        action="checkpoint.signed",
        outcome=Outcome.OK,
        detail={k: doc[k] for k in ("prev", "root", "size", "digest", "signature")}
        | {"number": doc["_id"]},
    )


def refusal(object_id: str, why: tuple[str, str], now: datetime, actor: str) -> AuditRecord:
    """An alert: the sink refused to sign this object's head; one per signed head broken
    (the alert itself moves the head, and must not raise another)."""
    problem, anchor = why
    return AuditRecord(
        kind=AuditRecord.KIND,
        v=AuditRecord.VERSION,
        event_id=event_id(AuditRecord.KIND, object_id, 0, "checkpoint.refused", anchor),
        object_id=object_id,
        version=0,
        correlation_id="checkpoint",
        produced_at=now,
        actor=actor,
        stage="sink",
        action="checkpoint.refused",
        outcome=Outcome.FAILED,
        detail={"problem": problem},
    )


async def all_signed(db: AsyncDatabase[Doc], refused: frozenset[str] = frozenset()) -> bool:
    """Every chain's head as it stands is signed, but those of ``refused`` (tests and the
    soak wait on it)."""
    async for object_id, head, signed in joined(db):
        if object_id == CHAIN or object_id in refused:
            continue
        if (
            head is None
            or signed is None
            or (head["seq"], head["hash"])
            != (
                signed["seq"],
                signed["hash"],
            )
        ):
            return False
    return True
