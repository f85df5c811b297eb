"""The checkpoint log: signed, append-only, checked against the chains before each signature.

Collections (MongoDB):
- ``audit_log``: one document per checkpoint, ``_id`` its number (1, 2, ...), never replaced:
  its time, the previous checkpoint's digest, the Merkle root over the signed heads and their
  count, the digest of all that (``checkpoint_digest``) and its signature; ``key``, its
  number in 12 digits, is what the latest is found by.
- ``audit_signed``: the head each object's chain had when last signed (``_id`` its object id,
  ``seg`` its segment in hex): one small document per object, so no document grows with the
  estate.
- ``audit_segments``: each segment's root (the RFC 6962 tree over its signed heads, by object
  id) and size. The checkpoint's root is the tree over the ``SEGMENTS`` segment roots, so a
  checkpoint re-hashes only the segments whose heads moved, and one chain is proven by two
  short inclusion paths (``inclusion``).
- ``audit_signed_changes``: the heads each checkpoint signed anew (``_id`` its number, 12
  digits, and the object id), written before the checkpoint and applied to ``audit_signed``
  after it: a crash in between is completed by the next round, and a reader can tell which
  heads a checkpoint moved.

A round reads by the indexes FerretDB on SQLite uses (equality and ``$in`` on strings, a
range on a string key): never a number or a boolean, and ``$in`` lists of at most 500.

A round costs what changed, not the estate: the sink marks each head it moves (``dirty``), and
the round checks those and a rolling share of the segments (``audit_sweep`` holds where it
is): each swept segment's signed heads must still give its root, and each of their heads must
be there and extend its signed one; the sweep moves on only after a clean round. A head
moved behind the sink's back (no mark) is thus found within one sweep of all segments;
``audit verify`` checks everything at once.

Before signing, the sink checks the log's latest checkpoint (its signature, and that the
segments' roots still give its root), that each segment it is about to re-hash still gives
its stored root from its stored heads (an edit there is never signed over), that the
database has not gone back to an older checkpoint than this process signed (a rollback),
and that each moved head extends the head signed before (``extension_problem``). A head
that does not is not signed:
the object keeps its last signed head, and an alert record names it on the audit topic. Each
checkpoint is also published on the audit topic (the ``audit-checkpoints`` chain), outside the
database: ``audit verify`` checks the database's log against it.

Checkpoints from before segments (no ``segments`` field) have a flat root over every head:
the first round checks it that way, then gives every signed head its segment.
"""

import hashlib
import logging
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from pymongo import ASCENDING, DESCENDING, UpdateOne
from pymongo.asynchronous.database import AsyncDatabase

from schemas.events import AuditRecord, Outcome, event_id
from workers.audit.merkle import (
    MerkleRoot,
    audit_path,
    head_leaf,
    leaf_hash,
    root_from_path,
    segment_leaf,
)
from workers.core.auditchain import GENESIS, checkpoint_digest, extension_problem
from workers.kms.keys import AuditSigner
from workers.mongo import IDS_PER_QUERY, by_ids

log = logging.getLogger("movingdata.audit")

LOG, SIGNED, CHANGES = "audit_log", "audit_signed", "audit_signed_changes"
SEGS, SWEEP = "audit_segments", "audit_sweep"
SEGMENTS = 4096  # ~250 heads a segment at a million objects; the top tree: 4,096 leaves
MOVED = "moved"  # audit_heads' ``dirty`` mark, set by the sink (a string: FerretDB indexes it)
CLAIMED = "checking"  # the mark while a round checks the head (a move since sets MOVED again)
MOVED_PER_ROUND = 10_000  # marked heads a round checks; the rest wait for the next rounds
CHAIN = "audit-checkpoints"  # the object id the log is published under on the audit topic
Doc = dict[str, Any]
Heads = dict[str, tuple[int, str]]
Roots = dict[int, tuple[str, int]]  # segment -> (root, size)
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
    await db[SIGNED].create_index([("seg", ASCENDING)])
    await db[LOG].create_index([("key", ASCENDING)])
    await db["audit_heads"].create_index([("dirty", ASCENDING)])


def segment_of(object_id: str) -> int:
    """The segment an object's signed head belongs to (by the hash of its id)."""
    return int.from_bytes(hashlib.sha256(object_id.encode()).digest()[:2], "big") % SEGMENTS


def seg_key(segment: int) -> str:
    """A segment as stored: three hex digits (sorted as the segments are)."""
    return f"{segment:03x}"


EMPTY = MerkleRoot().root()


def top_root(roots: Roots) -> tuple[str, int]:
    """The root over every segment's (root, size), empty ones included, and the head count."""
    tree = MerkleRoot()
    for segment in range(SEGMENTS):
        tree.add(segment_leaf(segment, *roots.get(segment, (EMPTY, 0))))
    return tree.root(), sum(size for _, size in roots.values())


def tree_of(heads: list[tuple[str, int, str]]) -> tuple[str, int]:
    """The root over heads (sorted by object id) and their count."""
    tree = MerkleRoot()
    for object_id, seq, hash_ in heads:
        tree.add(head_leaf(object_id, seq, hash_))
    return tree.root(), tree.size


async def segment_heads(
    db: AsyncDatabase[Doc], segment: int, overlay: Heads
) -> list[tuple[str, int, str]]:
    """One segment's signed heads by object id, those of ``overlay`` taking their place."""
    return overlaid((await segments_heads(db, [segment]))[segment], overlay, segment)


async def segments_heads(
    db: AsyncDatabase[Doc], segments: list[int]
) -> dict[int, dict[str, tuple[int, str]]]:
    """Each segment's signed heads, by object id: 64 segments a query."""
    found: dict[int, dict[str, tuple[int, str]]] = {s: {} for s in segments}
    for start in range(0, len(segments), 64):
        query = {"seg": {"$in": [seg_key(s) for s in segments[start : start + 64]]}}
        async for d in db[SIGNED].find(query, {"seq": 1, "hash": 1, "seg": 1}):
            found[int(d["seg"], 16)][d["_id"]] = (d["seq"], d["hash"])
    return found


def overlaid(
    heads: Mapping[str, tuple[int, str]], overlay: Heads, segment: int
) -> list[tuple[str, int, str]]:
    """One segment's heads with those of ``overlay`` in it taking their place, by object id."""
    merged = dict(heads) | {o: h for o, h in overlay.items() if segment_of(o) == segment}
    return [(o, *merged[o]) for o in sorted(merged)]


async def stored_roots(db: AsyncDatabase[Doc]) -> Roots:
    return {int(d["_id"], 16): (d["root"], d["size"]) async for d in db[SEGS].find({})}


async def roots_with(db: AsyncDatabase[Doc], overlay: Heads) -> tuple[Roots, int | None]:
    """The segments' roots with ``overlay`` applied (only its segments re-hashed), and the
    first of those segments whose stored heads no longer give its stored root (None: each
    does): a head edited there is not signed over."""
    roots = await stored_roots(db)
    touched = await segments_heads(db, sorted({segment_of(o) for o in overlay}))
    edited = next(
        (
            s
            for s, heads in touched.items()
            if tree_of(overlaid(heads, {}, s)) != roots.get(s, (EMPTY, 0))
        ),
        None,
    )
    return roots | {s: tree_of(overlaid(h, overlay, s)) for s, h in touched.items()}, edited


async def all_roots(db: AsyncDatabase[Doc], overlay: Heads) -> Roots:
    """Every segment's root from the signed heads themselves (streamed, one segment at a
    time), ``overlay`` applied: what ``audit verify`` checks the latest root with."""
    roots: Roots = {}
    segment, heads = -1, []
    cursor = db[SIGNED].find({}, sort=[("seg", ASCENDING), ("_id", ASCENDING)])
    async for doc in cursor:
        if int(doc["seg"], 16) != segment:
            if heads:
                roots[segment] = tree_of(heads)
            segment, heads = int(doc["seg"], 16), []
        heads.append((doc["_id"], doc["seq"], doc["hash"]))
    if heads:
        roots[segment] = tree_of(heads)
    for touched in sorted({segment_of(o) for o in overlay}):
        roots[touched] = tree_of(await segment_heads(db, touched, overlay))
    return roots


@dataclass(frozen=True, slots=True)
class Proof:
    """That one chain's signed head is in a checkpoint: its leaf and place in its segment's
    tree with the audit path to the segment's root, then the segment's place in the tree
    over segments with the path to the checkpoint's root (RFC 6962 inclusion proofs)."""

    leaf: bytes
    index: int
    size: int
    path: list[bytes]
    segment: int
    top_path: list[bytes]

    def root(self) -> str | None:
        """The checkpoint root this proof gives (None: it does not fit its trees)."""
        inner = root_from_path(self.leaf, self.index, self.size, self.path)
        if inner is None:
            return None
        leaf = segment_leaf(self.segment, inner, self.size)
        return root_from_path(leaf, self.segment, SEGMENTS, self.top_path)


async def inclusion(
    db: AsyncDatabase[Doc], object_id: str, top: Mapping[str, Any], changes: Heads
) -> Proof | bool:
    """The proof that ``object_id``'s signed head is in checkpoint ``top`` (``changes``: the
    heads it signed anew), read from one segment and the segments' roots; where none of its
    heads is signed, whether its segment as stored (without it) gives ``top``'s root, which
    proves it holds none."""
    segment = segment_of(object_id)
    heads = await segment_heads(db, segment, changes)
    roots = await stored_roots(db) | {segment: tree_of(heads)}
    at = next((n for n, h in enumerate(heads) if h[0] == object_id), None)
    if at is None:
        return top_root(roots) == (top["root"], top["size"])
    tops = [leaf_hash(segment_leaf(s, *roots.get(s, (EMPTY, 0)))) for s in range(SEGMENTS)]
    return Proof(
        leaf=head_leaf(*heads[at]),
        index=at,
        size=len(heads),
        path=audit_path([leaf_hash(head_leaf(*h)) for h in heads], at),
        segment=segment,
        top_path=audit_path(tops, segment),
    )


def log_key(number: int) -> str:
    return f"{number:012d}"


async def latest(db: AsyncDatabase[Doc], since: int = 0) -> Doc | None:
    """The log's newest checkpoint, read from checkpoint ``since`` on (what this process
    signed last: one or two documents, not the whole log)."""
    by_key = [("key", DESCENDING)]
    if (top := await db[LOG].find_one({"key": {"$gte": log_key(since)}}, sort=by_key)) is None:
        top = await db[LOG].find_one({}, sort=[("_id", DESCENDING)])  # none, or from before keys
    return top


def digest_of(doc: Mapping[str, Any]) -> str:
    """The digest a checkpoint document's own fields give."""
    return checkpoint_digest(doc["_id"], doc["at"], doc["prev"], doc["root"], doc["size"])


def change_id(number: int, object_id: str) -> str:
    return f"{log_key(number)}:{object_id}"


async def changes_of(db: AsyncDatabase[Doc], top: Mapping[str, Any]) -> Heads:
    """The heads checkpoint ``top`` signed anew (an ``_id`` range; by its number before
    segments)."""
    number = top["_id"]
    if "segments" in top:
        query: Doc = {"_id": {"$gte": change_id(number, ""), "$lt": f"{log_key(number)};"}}
    else:
        query = {"number": number}
    return {d["object_id"]: (d["seq"], d["hash"]) async for d in db[CHANGES].find(query)}


async def flat_root(db: AsyncDatabase[Doc], overlay: Heads) -> tuple[str, int]:
    """The root of a checkpoint from before segments: one tree over every signed head by
    object id, ``overlay`` applied (streamed)."""
    tree = MerkleRoot()
    stored = ((o, (d["seq"], d["hash"])) async for o, d in by_id(db, SIGNED))
    async for object_id, (head, over) in merged(stored, aiter_sorted(overlay)):
        tree.add(head_leaf(object_id, *(over or head)))
    return tree.root(), tree.size


async def aiter_sorted(heads: Heads) -> AsyncIterator[tuple[str, tuple[int, str]]]:
    for object_id in sorted(heads):
        yield object_id, heads[object_id]


async def log_problem(
    db: AsyncDatabase[Doc], signer: AuditSigner, last: Signed | None
) -> tuple[Doc | None, str | None]:
    """The log's latest checkpoint, and what is wrong with it (None: it holds)."""
    top = await latest(db, last.number if last else 0)
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
    changes = await changes_of(db, top)
    signed = (top["root"], top["size"])
    if "segments" not in top:  # from before segments: checked over every head, once
        if await flat_root(db, changes) != signed:
            return top, f"the signed heads no longer give checkpoint {top['_id']}'s root"
        await apply(db, top["_id"], changes, (await roots_with(db, changes))[0])
        await segment_all(db)
        return top, None
    if top_root(await stored_roots(db)) == signed:
        return top, None
    roots, _ = await roots_with(db, changes)  # a crash between the checkpoint and its heads?
    if top_root(roots) != signed:
        return top, f"the signed heads no longer give checkpoint {top['_id']}'s root"
    await apply(db, top["_id"], changes, roots)
    return top, None


async def segment_all(db: AsyncDatabase[Doc]) -> None:
    """Give every signed head its segment and every segment its root (once, after a
    checkpoint from before segments was checked the flat way)."""
    updates = [
        UpdateOne({"_id": d["_id"]}, {"$set": {"seg": seg_key(segment_of(d["_id"]))}})
        async for d in db[SIGNED].find({"seg": {"$exists": False}}, {"_id": 1})
    ]
    await bulk(db, SIGNED, updates)
    await save_roots(db, 0, await all_roots(db, {}))


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


@dataclass(slots=True)
class Found:
    """What one round's check of the candidate heads found: the heads that moved and extend
    their signed ones, those that do not (why), the marked heads that did not move, and a
    swept segment whose signed heads no longer give its root."""

    moved: Heads = field(default_factory=dict)
    refused: Refused = field(default_factory=dict)
    settled: Heads = field(default_factory=dict)
    problem: str | None = None


async def next_sweep(db: AsyncDatabase[Doc], count: int) -> list[int]:
    """The next ``count`` segments of the rolling sweep (wrapping)."""
    cursor = await db[SWEEP].find_one({"_id": "cursor"})
    first = int(cursor["next"]) if cursor else 0
    return [(first + n) % SEGMENTS for n in range(min(count, SEGMENTS))]


async def swept(db: AsyncDatabase[Doc], sweep: list[int]) -> None:
    """Move the sweep on past ``sweep``: only after a round that found nothing wrong there,
    so a segment found edited is found again each round until it is mended."""
    after = (sweep[-1] + 1) % SEGMENTS
    await db[SWEEP].update_one({"_id": "cursor"}, {"$set": {"next": after}}, upsert=True)


async def candidates(
    db: AsyncDatabase[Doc], sweep: list[int]
) -> tuple[dict[str, Doc | None], dict[str, Doc], str | None]:
    """The heads to check (the marked ones and the swept segments', None: gone), the signed
    heads of the same objects, and a swept segment that no longer gives its root."""
    query = {"dirty": {"$in": [MOVED, CLAIMED]}}
    cursor = db["audit_heads"].find(query, {"_id": 1}).limit(MOVED_PER_ROUND)
    marked = [d["_id"] async for d in cursor]
    await remark(db, marked, MOVED, {"$set": {"dirty": CLAIMED}})
    heads: dict[str, Doc | None] = dict(await by_ids(db["audit_heads"], marked))  # as claimed
    found = await segments_heads(db, sweep)
    stored = await stored_roots(db)
    for segment in sweep:
        if tree_of(overlaid(found[segment], {}, segment)) != stored.get(segment, (EMPTY, 0)):
            return heads, {}, f"segment {segment} differs"
    signed = {o: {"seq": h[0], "hash": h[1]} for mine in found.values() for o, h in mine.items()}
    unseen = [o for o in signed if o not in heads]
    found = await by_ids(db["audit_heads"], unseen)
    heads |= {o: found.get(o) for o in unseen}
    signed |= await by_ids(db[SIGNED], [o for o in heads if o not in signed])
    return heads, signed, None


async def moved_heads(db: AsyncDatabase[Doc], sweep: list[int]) -> Found:
    """The marked heads and the swept segments' heads, checked against their signed ones."""
    heads, signed_heads, problem = await candidates(db, sweep)
    found = Found(problem=problem)
    if problem is not None:
        return found
    checks: dict[str, tuple[tuple[int, str] | None, tuple[int, str], str]] = {}
    for object_id in sorted(heads):
        head, signed = heads[object_id], signed_heads.get(object_id)
        before = (signed["seq"], signed["hash"]) if signed else None
        anchor = f"{before[0]}:{before[1]}" if before else "genesis"
        if object_id == CHAIN:
            continue
        if head is None:
            found.refused[object_id] = (f"its head is gone (signed at {anchor})", anchor)
        elif (current := (head["seq"], head["hash"])) == before:
            if head.get("dirty"):
                found.settled[object_id] = current
        else:
            checks[object_id] = (before, current, anchor)
    ids = list(checks)
    for start in range(0, len(ids), IDS_PER_QUERY):  # 500 chains in memory at a time
        chunk = {o: checks[o] for o in ids[start : start + IDS_PER_QUERY]}
        chains = await records_from(db, {o: (b[0] if b else 1) for o, (b, _, _) in chunk.items()})
        for object_id, (before, current, anchor) in chunk.items():
            records = [r for r in chains.get(object_id, []) if r["seq"] <= current[0]]
            if (problem := extension_problem(before, records, current)) is not None:
                found.refused[object_id] = (problem, anchor)
            else:
                found.moved[object_id] = current
    return found


async def records_from(db: AsyncDatabase[Doc], first: Mapping[str, int]) -> dict[str, list[Doc]]:
    """Each object's chain records from its ``first`` seq on, in seq order: chains not
    signed before (from seq 1) read 500 objects a query, the others one range each."""
    chains: dict[str, list[Doc]] = {}
    new = [o for o, seq in first.items() if seq == 1]
    for start in range(0, len(new), IDS_PER_QUERY):
        query = {"object_id": {"$in": new[start : start + IDS_PER_QUERY]}}
        async for record in db["audit"].find(query):
            chains.setdefault(record["object_id"], []).append(record)
    for object_id, seq in first.items():
        if seq != 1:
            query = {"object_id": object_id, "seq": {"$gte": seq}}
            chains[object_id] = [r async for r in db["audit"].find(query)]
    for records in chains.values():
        records.sort(key=lambda r: r["seq"])
    return chains


async def bulk(db: AsyncDatabase[Doc], name: str, updates: list[UpdateOne]) -> None:
    for start in range(0, len(updates), 500):
        await db[name].bulk_write(updates[start : start + 500], ordered=False)


async def save_roots(db: AsyncDatabase[Doc], number: int, roots: Roots) -> None:
    await bulk(
        db,
        SEGS,
        [
            UpdateOne(
                {"_id": seg_key(s)}, {"$set": {"root": r, "size": n, "number": number}}, upsert=True
            )
            for s, (r, n) in roots.items()
        ],
    )


async def remark(db: AsyncDatabase[Doc], ids: list[str], mark: str, change: Doc) -> None:
    """Change the mark of these heads where it is still ``mark``: 500 a query."""
    for start in range(0, len(ids), IDS_PER_QUERY):
        chunk = ids[start : start + IDS_PER_QUERY]
        await db["audit_heads"].update_many({"_id": {"$in": chunk}, "dirty": mark}, change)


async def settle(db: AsyncDatabase[Doc], heads: Heads) -> None:
    """Clear the claimed mark of these heads (one the sink moved since is marked anew)."""
    await remark(db, list(heads), CLAIMED, {"$unset": {"dirty": ""}})


async def apply(db: AsyncDatabase[Doc], number: int, heads: Heads, roots: Roots) -> None:
    """Store checkpoint ``number``'s signed heads and the roots of the segments they are in
    (``roots``: every segment's, as the checkpoint has them); settle the heads."""
    await bulk(
        db,
        SIGNED,
        [
            UpdateOne(
                {"_id": o},
                {"$set": {"seq": s, "hash": h, "number": number, "seg": seg_key(segment_of(o))}},
                upsert=True,
            )
            for o, (s, h) in heads.items()
        ],
    )
    await save_roots(db, number, {s: roots[s] for s in {segment_of(o) for o in heads}})
    await settle(db, heads)


async def sign_next(
    db: AsyncDatabase[Doc],
    signer: AuditSigner,
    now: datetime,
    last: Signed | None,
    sweep: int = SEGMENTS,
) -> Round:
    """Check the log, the marked heads and the next ``sweep`` segments; sign and append the
    next checkpoint if any head moved and extends its signed one."""
    top, problem = await log_problem(db, signer, last)
    if problem is not None:
        return Round(problem=problem)
    segments = await next_sweep(db, sweep)
    found = await moved_heads(db, segments)
    if found.problem is None:
        roots, edited = await roots_with(db, found.moved)
        if edited is not None:
            found.problem = f"segment {edited} differs"
    if found.problem is not None:  # a signed head edited where no mark or checkpoint shows
        number = top["_id"] if top else 0
        return Round(
            problem=f"the signed heads no longer give checkpoint {number}'s root ({found.problem})"
        )
    await swept(db, segments)
    await settle(db, found.settled)
    moved = found.moved
    if not moved:
        return Round(refused=found.refused)
    number = (top["_id"] if top else 0) + 1
    prev = top["digest"] if top else GENESIS
    root, size = top_root(roots)
    at = now.astimezone(UTC).replace(microsecond=now.microsecond // 1000 * 1000)
    digest = checkpoint_digest(number, at, prev, root, size)
    doc = {
        "_id": number,
        "key": log_key(number),
        "at": at,
        "prev": prev,
        "root": root,
        "size": size,
        "segments": SEGMENTS,
        "moved": len(moved),
        "digest": digest,
        "signature": await signer.sign(digest.encode()),
    }
    stale = {"_id": {"$gte": change_id(number, ""), "$lt": f"{log_key(number)};"}}
    await db[CHANGES].delete_many(stale)  # an attempt at this number that never got signed
    await bulk(
        db,
        CHANGES,
        [
            UpdateOne(
                {"_id": change_id(number, o)},
                {"$set": {"number": number, "object_id": o, "seq": s, "hash": h}},
                upsert=True,
            )
            for o, (s, h) in moved.items()
        ],
    )
    await db[LOG].insert_one(doc)  # a second signer of the same number is refused here
    await apply(db, number, moved, roots)
    return Round(signed=doc, refused=found.refused)


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
