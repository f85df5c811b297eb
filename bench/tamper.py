"""What an attacker with write access to the database does to the audit trail, for the soak
and the tamper tests: a chain rewritten consistently, a chain cut at its end. Each leaves the
chain and its head agreeing, so only the signed checkpoints can tell."""

from typing import Any

from pymongo import ASCENDING
from pymongo.asynchronous.database import AsyncDatabase

from workers.core.auditchain import record_hash

Doc = dict[str, Any]


async def chain_of(db: AsyncDatabase[Doc], object_id: str) -> list[Doc]:
    query = {"object_id": object_id}
    return [d async for d in db["audit"].find(query, sort=[("seq", ASCENDING)])]


async def rewrite(db: AsyncDatabase[Doc], object_id: str, at: int) -> str:
    """Edit the chain's record at index ``at``, re-hash every later one, move the head to
    match; return the new head hash."""
    chain = await chain_of(db, object_id)
    chain[at]["detail"] = {"forged": True}
    prev = chain[at - 1]["hash"]
    for record in chain[at:]:
        record["prev_hash"] = prev
        record["hash"] = prev = record_hash(prev, record)
        await db["audit"].replace_one({"_id": record["_id"]}, record)
    await db["audit_heads"].update_one({"_id": object_id}, {"$set": {"hash": prev}})
    return str(prev)


async def cut(db: AsyncDatabase[Doc], object_id: str) -> None:
    """Delete the chain's last record and move its head back to the one before."""
    chain = await chain_of(db, object_id)
    await db["audit"].delete_one({"_id": chain[-1]["_id"]})
    last = chain[-2]
    await db["audit_heads"].update_one(
        {"_id": object_id}, {"$set": {"seq": last["seq"], "hash": last["hash"]}}
    )
