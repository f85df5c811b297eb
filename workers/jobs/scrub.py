"""The scheduled scrub: read back the replicas attempted longest ago, and publish coverage.

Each round streams the stored versions once (``select``: a few fields of each, keeping only
each replica's turn, then reading the chosen versions whole), sends the chosen replicas
through verify (``workers.core.scrub.pick``), marks each chosen replica's
``scrub_attempted_at`` (so a replica that cannot be proven now, archived say, goes to the back
of the line) and sets the coverage gauges: versions by state, the oldest live proof per store,
the lag past the window.

The chosen archived replicas no store digest proves are rehydrated within the day's budget
(``scrub_rehydrate_bytes_per_day``, ``workers.core.scrub.to_rehydrate``), kept in one
``budgets`` document every sink worker shares: reserved before the rehydrations start, so a
restart or a second leader never spends it twice (a failed start costs its share). Each sets
``readable_at`` (the start plus the store's rehydration time), from when the replica is read
back first; one moved to another tier (Azure: Cold) is a ``tiered`` event, by the scrub.
"""

import logging
import uuid
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from pymongo import UpdateOne
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.errors import DuplicateKeyError

from topics import TIERED
from workers import metrics
from workers.client.kafka import produce_all
from workers.client.ops import SCHEDULED, scrub_requests, send_scrub
from workers.client.restore import archived
from workers.client.state import Doc, State
from workers.core.scrub import (
    Coverage,
    Key,
    Tally,
    pick,
    replica_keys,
    replica_of,
    size_of,
    to_rehydrate,
)
from workers.core.versions import STATES
from workers.errors import MovingDataError
from workers.mongo import by_ids
from workers.settings import Settings
from workers.stores.base import ObjectStore
from workers.tiering.live import Tiering, recorded_tier, rehydrated

log = logging.getLogger("movingdata.scrub")
BUDGET = "scrub-rehydration"  # ``budgets`` document: bytes ``spent`` on the UTC ``day``
REASON = "rehydrated for the scheduled scrub's read-back"


async def scheduled_scrub(
    settings: Settings,
    state: State,
    stores: Mapping[str, ObjectStore],
    tiering: Tiering,
    now: datetime,
) -> int:
    """One round; return how many replicas were sent to be read back."""
    chosen, found = await select(settings, state, now)
    run_id = uuid.uuid4().hex
    events = [
        e for doc, target in chosen for e in scrub_requests(doc, run_id) if e.target == target
    ]
    await send_scrub(settings, events)
    if chosen:
        attempted = [
            UpdateOne({"_id": doc["_id"]}, {"$set": {f"replicas.{target}.scrub_attempted_at": now}})
            for doc, target in chosen
        ]
        await state.db["objects"].bulk_write(attempted, ordered=False)
    if settings.scrub_rehydrate_bytes_per_day > 0:
        await rehydrate(settings, state, stores, tiering, chosen, now, run_id)
    publish(found)
    return len(events)


FIELDS = {"state": 1, "ciphertext_sha256": 1, "targets": 1, "replicas": 1}


async def select(
    settings: Settings, state: State, now: datetime
) -> tuple[list[tuple[Doc, str]], Coverage]:
    """The replicas this round reads back (their versions whole) and the estate's coverage,
    from one streamed pass that keeps each replica's turn, not its document."""
    tally = Tally(now)
    keys: list[Key] = []
    async for doc in state.db["objects"].find({}, FIELDS):
        tally.add(doc)
        keys += replica_keys(doc, now)
    window = timedelta(days=settings.scrub_window_days)
    interval = timedelta(seconds=settings.scrub_interval_s)
    picked = pick(keys, settings.scrub_share, interval, window)
    docs = await by_ids(state.db["objects"], list(dict.fromkeys(v for v, _ in picked)))
    return [(docs[v], target) for v, target in picked if v in docs], tally.coverage(window)


async def rehydrate(
    settings: Settings,
    state: State,
    stores: Mapping[str, ObjectStore],
    tiering: Tiering,
    chosen: Sequence[tuple[Doc, str]],
    now: datetime,
    run_id: str,
) -> int:
    """Start the rehydrations of ``chosen``'s unproven archived replicas that today's budget
    has room for; return how many started."""
    budgets = state.db["budgets"]
    day = now.astimezone(UTC).date().isoformat()
    found = await budgets.find_one({"_id": BUDGET})
    spent = int(found["spent"]) if found is not None and found["day"] == day else 0
    plan = to_rehydrate(
        chosen,
        lambda doc, target: archived(doc, target, tiering),
        settings.scrub_rehydrate_bytes_per_day - spent,
        now,
    )
    for _, target in plan.deferred:
        metrics.SCRUB_REHYDRATIONS_DEFERRED.labels(target).inc()
    wanted = sum(size_of(doc) for doc, _ in plan.start)
    if not plan.start or not await claim(budgets, found, day, spent + wanted):
        return 0  # nothing fits, or another round spent from the budget since it was read
    readable: list[UpdateOne] = []
    tiered = []
    for doc, target in plan.start:
        replica = replica_of(doc, target)
        try:
            moved_to = await stores[target].rehydrate(replica["key"])
        except MovingDataError as exc:  # the replica's next turn tries again
            log.warning("scrub rehydration failed", extra={"error": str(exc)[:200]})
            continue
        metrics.SCRUB_REHYDRATIONS.labels(target).inc()
        hours = tiering.rehydration_hours(target, recorded_tier(replica))
        ready = {f"replicas.{target}.readable_at": now + timedelta(hours=hours)}
        readable.append(UpdateOne({"_id": doc["_id"]}, {"$set": ready}))
        if moved_to is not None:
            event = rehydrated(doc, target, moved_to, run_id, SCHEDULED.name, REASON, now)
            tiered.append((TIERED, event))
    if readable:
        await state.db["objects"].bulk_write(readable, ordered=False)
    if tiered:
        await produce_all(settings, tiered)
    log.info("scrub rehydrations started", extra={"stage": "sink", "events": len(readable)})
    return len(readable)


async def claim(
    budgets: AsyncCollection[Doc], found: Mapping[str, Any] | None, day: str, spent: int
) -> bool:
    """Record ``spent`` as ``day``'s, unless the budget document changed since it was read as
    ``found`` (every sink worker shares it: the first to record spends)."""
    if found is None:
        try:
            await budgets.insert_one({"_id": BUDGET, "day": day, "spent": spent})
        except DuplicateKeyError:
            return False
        return True
    done = await budgets.update_one(dict(found), {"$set": {"day": day, "spent": spent}})
    return done.matched_count == 1


def publish(found: Coverage) -> None:
    """Set the coverage gauges from the round's scan."""
    for name in STATES:
        metrics.VERSIONS.labels(name).set(found.versions.get(name, 0))
    for store, age in found.oldest_proof_s.items():
        metrics.OLDEST_PROOF.labels(store).set(age)
    metrics.SCRUB_BEHIND.set(found.behind_s)
