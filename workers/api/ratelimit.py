"""Rate limits shared by every API replica: a fixed one-minute window per caller, counted in
the API's database (``api_rate``), so two replicas spend one budget. The caller is the
client's address until a token is known, then the token.

A window's count lives at ``_id = "<who>:<minute>"`` (FerretDB answers only equality on a
string key from an index): one atomic ``$inc`` with upsert a request. The first request of a
window removes the caller's previous one (FerretDB has no TTL index), so the collection holds
at most two documents per caller, one per caller that stopped."""

from dataclasses import dataclass

from pymongo import ReturnDocument
from pymongo.asynchronous.database import AsyncDatabase

from workers.client.state import Doc

WINDOW_S = 60
COLLECTION = "api_rate"


@dataclass(frozen=True)
class Budget:
    """What a caller's minute allows, answered as the ``RateLimit-*`` headers."""

    limit: int
    remaining: int
    reset: int  # seconds until the window ends
    allowed: bool

    def headers(self) -> dict[str, str]:
        return {
            "RateLimit-Limit": str(self.limit),
            "RateLimit-Remaining": str(self.remaining),
            "RateLimit-Reset": str(self.reset),
        }


def window(now: float) -> int:
    """The number of the minute ``now`` (seconds since the epoch) falls in."""
    return int(now // WINDOW_S)


def decide(count: int, per_minute: int, now: float) -> Budget:
    """The budget after the window's ``count``-th request (this one included)."""
    reset = WINDOW_S - int(now % WINDOW_S)
    return Budget(per_minute, max(0, per_minute - count), reset, count <= per_minute)


async def spend(db: AsyncDatabase[Doc], who: str, per_minute: int, now: float) -> Budget:
    """Count one request of ``who`` in this minute's window, and what is left of it."""
    minute = window(now)
    doc = await db[COLLECTION].find_one_and_update(
        {"_id": f"{who}:{minute}"},
        {"$inc": {"n": 1}},
        upsert=True,
        return_document=ReturnDocument.AFTER,
    )
    count = int(doc["n"]) if doc else 1
    if count == 1:
        await db[COLLECTION].delete_one({"_id": f"{who}:{minute - 1}"})
    return decide(count, per_minute, now)


async def spent(db: AsyncDatabase[Doc], who: str, per_minute: int, now: float) -> bool:
    """Whether ``who`` has used this minute's budget up already (nothing counted)."""
    doc = await db[COLLECTION].find_one({"_id": f"{who}:{window(now)}"})
    return doc is not None and int(doc["n"]) >= per_minute
