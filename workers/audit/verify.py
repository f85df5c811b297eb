"""``audit verify``: the chains, their heads, the signed heads and the checkpoint log, checked
in one streamed pass (constant memory: one chain at a time), and the log against the copy
published on the audit topic.

- The log: numbered from 1 with no gap, each checkpoint naming the digest of the one before,
  each digest what its fields give, the latest validly signed (through the links, it vouches
  for every one before), and the signed heads giving its Merkle root (for one chain: its
  signed head's inclusion proof against that root, read from its segment alone).
- Each chain: every link holds, it reaches its head (``chain_problem``), and it still holds
  its signed head's record (a chain rewritten or cut after it was signed).
- Published: every checkpoint seen on the audit topic, or in the object-locked bucket
  (``lockcopy``), is in the log with the same digest; one the log lacks means the database
  was put back to an older state.
"""

from collections.abc import AsyncIterator, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from pymongo import ASCENDING
from pymongo.asynchronous.database import AsyncDatabase

from workers.audit.checkpoints import (
    CHAIN,
    LOG,
    SIGNED,
    Heads,
    all_roots,
    by_id,
    changes_of,
    digest_of,
    flat_root,
    inclusion,
    merged,
    top_root,
)
from workers.core.auditchain import GENESIS, chain_problem, signed_problem

Doc = dict[str, Any]


@dataclass(slots=True)
class Verdict:
    """What ``audit verify`` found: chains checked, problems by object (or ``checkpoint``),
    and a line on the log."""

    chains: int = 0
    broken: dict[str, str] = field(default_factory=dict)
    log: str = "no checkpoint yet"


async def check_log(
    db: AsyncDatabase[Doc],
    signer: Any,
    published: Iterable[Mapping[str, Any]],
    locked: Iterable[Mapping[str, Any]] = (),
) -> tuple[Doc | None, list[str]]:
    """The latest checkpoint and what is wrong with the log (its root apart: ``root_problem``
    or ``proven``)."""
    problems: list[str] = []
    prev, number, top = GENESIS, 0, None
    digests: dict[int, str] = {}
    async for doc in db[LOG].find({}, sort=[("_id", ASCENDING)]):
        number += 1
        if doc["_id"] != number:
            problems.append(f"checkpoint {number} is missing from the log (next: {doc['_id']})")
            number = doc["_id"]
        elif doc["prev"] != prev:
            problems.append(f"checkpoint {number} does not follow checkpoint {number - 1}")
        if digest_of(doc) != doc["digest"]:
            problems.append(f"checkpoint {number}'s fields do not give its digest")
        prev, top = doc["digest"], doc
        digests[number] = doc["digest"]
    if top is not None and not await signer.verify(top["digest"].encode(), top["signature"]):
        problems.append(f"checkpoint {top['_id']} is not validly signed")
    for copy, records in (("published", published), ("locked", locked)):
        for record in records:
            n, digest = record["number"], record["digest"]
            if n not in digests:
                problems.append(
                    f"checkpoint {n} was {copy} but the log does not hold it (rolled back)"
                )
            elif digests[n] != digest:
                problems.append(f"checkpoint {n} differs from the one {copy}")
    return top, problems


async def root_problem(
    db: AsyncDatabase[Doc], top: Mapping[str, Any], changes: Heads
) -> str | None:
    """Whether every signed head (``changes``: those ``top`` signed anew), re-hashed, gives
    the latest checkpoint's root."""
    if "segments" in top:
        found = top_root(await all_roots(db, changes))
    else:  # from before segments
        found = await flat_root(db, changes)
    if found != (top["root"], top["size"]):
        return f"the signed heads no longer give checkpoint {top['_id']}'s root"
    return None


async def proven(
    db: AsyncDatabase[Doc], top: Mapping[str, Any], object_id: str, changes: Heads
) -> str:
    """One chain's signed head proven in the latest checkpoint by its inclusion path: what
    was proven, or raise ``Unproven``."""
    if "segments" not in top:
        if (problem := await root_problem(db, top, changes)) is not None:
            raise Unproven(problem)
        return "its signed head is under the checkpoint's root (checked over every head)"
    proof = await inclusion(db, object_id, top, changes)
    if proof is False:
        raise Unproven(f"its segment as stored does not give checkpoint {top['_id']}'s root")
    if proof is True:
        return f"no head of it signed (its segment, as checkpoint {top['_id']} has it, holds none)"
    if proof.root() != top["root"]:
        raise Unproven(f"its signed head is not in checkpoint {top['_id']}'s root")
    hashes = len(proof.path) + len(proof.top_path)
    return f"its signed head is in checkpoint {top['_id']} (an inclusion path of {hashes} hashes)"


class Unproven(Exception):
    """A signed head the latest checkpoint's root does not include."""


async def chains(db: AsyncDatabase[Doc], only: str | None) -> AsyncIterator[tuple[str, list[Doc]]]:
    """Each object's chain, in seq order, one at a time."""
    query = {"object_id": only} if only else {}
    current: str | None = None
    records: list[Doc] = []
    async for doc in db["audit"].find(query, sort=[("object_id", ASCENDING), ("seq", ASCENDING)]):
        if doc["object_id"] != current:
            if current is not None:
                yield current, records
            current, records = doc["object_id"], []
        records.append(doc)
    if current is not None:
        yield current, records


async def verify(
    db: AsyncDatabase[Doc],
    signer: Any,
    published: Iterable[Mapping[str, Any]],
    only: str | None = None,
    locked: Iterable[Mapping[str, Any]] = (),
) -> Verdict:
    """Check the log (against its copies: ``published`` on the audit topic, ``locked`` in the
    object-locked bucket) and every chain (``only``: one object's) against its head and
    signed head."""
    out = Verdict()
    top, problems = await check_log(db, signer, published, locked)
    # The heads the latest checkpoint signed are as it recorded them (its changes), not as
    # audit_signed may hold them now.
    changes = await changes_of(db, top) if top is not None else {}
    proof = ""
    if top is not None and only is None:
        problems += [p for p in [await root_problem(db, top, changes)] if p is not None]
    elif top is not None and only is not None:
        try:
            proof = f"; {only}: " + await proven(db, top, only, changes)
        except Unproven as exc:
            out.broken[only] = str(exc)
    if problems:
        out.broken["checkpoint"] = "; ".join(problems)
    if top is not None:
        at = f"{top['at']:%Y-%m-%d %H:%M:%S}"
        out.log = f"checkpoint {top['_id']} of {at} UTC verified ({top['size']} heads){proof}"
    joined = merged(chains(db, only), by_id(db, "audit_heads", only), by_id(db, SIGNED, only))
    async for object_id, (records, head, signed) in joined:
        if object_id == CHAIN:
            continue
        if object_id in changes:
            signed = {"seq": changes[object_id][0], "hash": changes[object_id][1]}
        out.chains += records is not None
        # What was signed first: a rewrite after a checkpoint is the finding, whatever was
        # appended to the chain since.
        problem = signed_problem(records or [], signed) or chain_problem(records or [], head)
        if problem is not None:
            out.broken[object_id] = problem
    return out
