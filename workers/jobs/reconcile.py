"""The reconcile: the sink leader's job that re-drives what stopped moving, pending versions
and removals (the decisions: ``workers.core.reconcile``), through the retry agent."""

import uuid
from datetime import datetime, timedelta

from pymongo import UpdateOne

from schemas.events import DeleteRequest, RecordRef, RetryRequest, event_id
from topics import DELETE, RETRY
from workers.client.identity import worker_actor
from workers.client.kafka import produce_events
from workers.client.ops import delete_request
from workers.client.state import Doc, State
from workers.core.reconcile import (
    MODES,
    redrive,
    redrive_removal,
    removal_done,
    stalled,
    stalled_removals,
)
from workers.settings import Settings

RECONCILER = worker_actor("sink")  # the reconcile runs on the sink's leader


async def reconcile(settings: Settings, state: State, now: datetime) -> int:
    """Re-drive every stalled pending version and every stalled removal
    (``workers.core.reconcile``); return how many events were sent."""
    return await reconcile_pending(settings, state, now) + await reconcile_removals(
        settings, state, now
    )


def retry_request(
    doc: Doc, ref: dict[str, object], run_id: str, now: datetime, reason: str
) -> RetryRequest:
    """Send the record at ``ref`` again, through the retry agent."""
    return RetryRequest(
        kind=RetryRequest.KIND,
        v=RetryRequest.VERSION,
        event_id=event_id(
            RetryRequest.KIND, doc["object_id"], doc["version"], run_id, str(ref["topic"])
        ),
        object_id=doc["object_id"],
        version=doc["version"],
        correlation_id=doc.get("request_id") or run_id,
        produced_at=now,
        actor=RECONCILER.name,
        topic=str(ref["topic"]),
        not_before=now,
        reason=reason,
        record=RecordRef(**ref),  # type: ignore[arg-type]
    )


async def reconcile_removals(settings: Settings, state: State, now: datetime) -> int:
    """Re-drive every delete or forget that is not done and stopped moving: a request with
    no tombstone, or a tombstone with a target whose ``replica.removed`` has not come. Its
    recorded events go through the retry agent (a request nothing recorded is sent anew);
    the version is marked ``removal_redriven_at`` so it waits a whole bound again. A removal
    found done is marked ``<mode>_settled`` and not looked at again. Return how many events
    were sent."""
    after = timedelta(seconds=settings.reconcile_after_s)
    run_id = uuid.uuid4().hex
    reason = f"reconcile: removal with no step for {settings.reconcile_after_s:g} s"
    query = {
        "$or": [
            {f"{m}_requested_at": {"$exists": True}, f"{m}_settled": {"$exists": False}}
            for m in MODES
        ]
    }
    retries: list[RetryRequest] = []
    anew: list[DeleteRequest] = []
    marks: list[UpdateOne] = []
    async for doc in state.db["objects"].find(query):
        if settled := {f"{m}_settled": True for m in MODES if removal_done(doc, m)}:
            marks.append(UpdateOne({"_id": doc["_id"]}, {"$set": settled}))
        modes = stalled_removals(doc, now, after)
        for mode in modes:
            refs, fresh = redrive_removal(doc, mode)
            retries += [retry_request(doc, ref, run_id, now, reason) for ref in refs]
            if fresh and doc.get("targets") and doc.get("tenant"):
                anew.append(delete_request(doc, mode, reason, RECONCILER, run_id))
        if modes:
            marks.append(UpdateOne({"_id": doc["_id"]}, {"$set": {"removal_redriven_at": now}}))
    if retries:
        await produce_events(settings, RETRY, retries)
    if anew:
        await produce_events(settings, DELETE, anew)
    if marks:
        await state.db["objects"].bulk_write(marks, ordered=False)
    return len(retries) + len(anew)


async def reconcile_pending(settings: Settings, state: State, now: datetime) -> int:
    """Re-drive every stalled pending version (``workers.core.reconcile``): its recorded
    events go to the retry agent, which reads them again from the broker and re-delivers them;
    the version is marked ``redriven_at`` so it waits a whole bound again. Return how many
    events were sent."""
    after = timedelta(seconds=settings.reconcile_after_s)
    run_id = uuid.uuid4().hex
    stalled_docs = [
        doc
        async for doc in state.db["objects"].find({"state": "pending"})
        if stalled(doc, now, after)
    ]
    reason = f"reconcile: pending with no step for {settings.reconcile_after_s:g} s"
    requests = [
        retry_request(doc, ref, run_id, now, reason) for doc in stalled_docs for ref in redrive(doc)
    ]
    if requests:
        await produce_events(settings, RETRY, requests)
        marked = [
            UpdateOne({"_id": d["_id"]}, {"$set": {"redriven_at": now}}) for d in stalled_docs
        ]
        await state.db["objects"].bulk_write(marked, ordered=False)
    return len(requests)
