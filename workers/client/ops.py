"""Operations on stored versions: remove, forget, scrub, reconcile, and the audit records of
key work done outside the agents."""

import asyncio
import time
import uuid
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, timedelta

from pymongo import UpdateOne

from schemas.events import (
    AuditRecord,
    DeleteRequest,
    Outcome,
    Placement,
    RecordRef,
    ReplicaWritten,
    RetryRequest,
    event_id,
)
from topics import AUDIT, DELETE, REPLICATED, RETRY
from workers.client.identity import Actor, worker_actor
from workers.client.kafka import produce_all, produce_events
from workers.client.state import Doc, State
from workers.core.reconcile import (
    MODES,
    redrive,
    redrive_removal,
    removal_done,
    stalled,
    stalled_removals,
)
from workers.core.scrub import scrubbable
from workers.core.versions import doc_id
from workers.settings import Settings

TOMBSTONE = {"delete": "deleted", "forget": "shredded"}
RECONCILER = worker_actor("sink")  # the reconcile runs on the sink's leader


def client_record(
    doc: Doc,
    action: str,
    detail: dict[str, object],
    run_id: str,
    outcome: Outcome = Outcome.OK,
    *,
    actor: Actor,
) -> AuditRecord:
    """An audit record of something a client did to one version (stage ``client``), naming
    who asked."""
    return AuditRecord(
        kind=AuditRecord.KIND,
        v=1,
        event_id=event_id(
            AuditRecord.KIND, doc["object_id"], doc["version"], "client", action, run_id
        ),
        object_id=doc["object_id"],
        version=doc["version"],
        correlation_id=run_id,
        produced_at=datetime.now(UTC),
        actor=actor.name,
        stage="client",
        action=action,
        outcome=outcome,
        detail={**detail, **actor.detail()},
    )


def delete_request(
    doc: Doc, mode: str, reason: str, actor: Actor, run_id: str | None = None
) -> DeleteRequest:
    """Remove one version everywhere; the id is the version's and the mode's, so asking
    twice is asking once. ``run_id``: the operation's correlation id (default: a fresh one)."""
    replicas = doc.get("replicas") or {}
    keys = {doc["key"]} if doc.get("key") else set()
    keys |= {r["key"] for r in replicas.values() if r.get("key")}
    return DeleteRequest(
        kind=DeleteRequest.KIND,
        v=1,
        event_id=event_id(DeleteRequest.KIND, doc["object_id"], doc["version"], mode),
        object_id=doc["object_id"],
        version=doc["version"],
        correlation_id=run_id or uuid.uuid4().hex,
        produced_at=datetime.now(UTC),
        mode=mode,  # type: ignore[arg-type]
        tenant=doc["tenant"],
        targets=tuple(doc["targets"]),
        keys=tuple(sorted(keys)),
        reason=reason,
        actor=actor.name,
    )


async def request_removal(
    settings: Settings, docs: Sequence[Doc], mode: str, reason: str, *, actor: Actor
) -> int:
    """Send a delete (or forget) of each version through the chain, its intent audited first."""
    run_id = actor.run_id()
    messages = []
    for doc in docs:
        intent = client_record(doc, f"{mode}.requested", {"reason": reason}, run_id, actor=actor)
        messages += [(AUDIT, intent), (DELETE, delete_request(doc, mode, reason, actor, run_id))]
    return await produce_all(settings, messages)


def removed_everywhere(doc: Doc | None, mode: str) -> bool:
    """The version carries the mode's tombstone and no target holds a replica any more."""
    if doc is None or doc.get("state") != TOMBSTONE[mode]:
        return False
    replicas = doc.get("replicas") or {}
    return all((replicas.get(t) or {}).get("removed_at") for t in doc.get("targets", ()))


async def wait_removed(state: State, docs: Sequence[Doc], mode: str, timeout_s: float) -> list[Doc]:
    """Wait until every version is removed everywhere; return those that are not (yet)."""
    ids = [doc_id(d["object_id"], d["version"]) for d in docs]
    deadline = time.monotonic() + timeout_s
    while True:
        found = await state.versions(ids)
        left = [
            d
            for d in docs
            if not removed_everywhere(found.get(doc_id(d["object_id"], d["version"])), mode)
        ]
        if not left or time.monotonic() > deadline:
            return left
        await asyncio.sleep(0.5)


SCHEDULED = worker_actor("sink")  # the scheduled scrub runs on the sink's leader


def scrub_requests(doc: Doc, run_id: str, actor: Actor = SCHEDULED) -> list[ReplicaWritten]:
    """Re-verification requests for every replica of one object version (the scrub), by
    ``actor`` (default: the scheduled scrub's worker)."""
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
            # what the store confirmed at the write: proves an archived replica (verify)
            store_digest=((doc.get("replicas") or {}).get(target) or {}).get("store_digest"),
            scrub=True,
            actor=actor.name,
        )
        for target in doc["targets"]
    ]


async def scrub(settings: Settings, docs: Iterable[Doc], *, actor: Actor) -> int:
    """Send every replica of ``docs`` back through verify, which repairs what it finds bad,
    each version's request audited first; deleted and shredded versions are left alone."""
    run_id = actor.run_id()
    chosen = [doc for doc in docs if scrubbable(doc)]
    asked = [
        client_record(d, "scrub", {"targets": d["targets"]}, run_id, actor=actor) for d in chosen
    ]
    await produce_events(settings, AUDIT, asked)
    events = [e for doc in chosen for e in scrub_requests(doc, run_id, actor)]
    return await send_scrub(settings, events)


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


async def send_scrub(settings: Settings, events: Sequence[ReplicaWritten]) -> int:
    """Send scrub requests, each on its target's topic."""
    for target, topic in REPLICATED.items():
        await produce_events(settings, topic, [e for e in events if e.target == target])
    return len(events)


async def audit_key_event(
    settings: Settings, object_id: str, version: int, action: str, detail: str, *, actor: Actor
) -> None:
    """An audit record for a key operation done outside the agents (rotate)."""
    record = AuditRecord(
        kind=AuditRecord.KIND,
        v=1,
        event_id=event_id(AuditRecord.KIND, object_id, version, "keys", action, detail),
        object_id=object_id,
        version=version,
        correlation_id=uuid.uuid4().hex,
        produced_at=datetime.now(UTC),
        actor=actor.name,
        stage="keys",
        action=action,
        outcome=Outcome.OK,
        detail={"by": detail, **actor.detail()},
    )
    await produce_events(settings, AUDIT, [record])
