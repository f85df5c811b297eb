"""Operations on stored versions: remove, forget, scrub, and the audit records of key work
done outside the agents."""

import asyncio
import time
import uuid
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime

from pymongo.asynchronous.database import AsyncDatabase

from schemas.events import (
    AuditRecord,
    DeleteRequest,
    Outcome,
    Placement,
    ReplicaWritten,
    event_id,
)
from topics import AUDIT, DELETE, REPLICATED
from workers.catalog import covering
from workers.client.identity import Actor, worker_actor
from workers.client.kafka import produce_all, produce_events
from workers.client.state import Doc, State
from workers.core.holds import refusal
from workers.core.scrub import scrubbable
from workers.core.versions import doc_id
from workers.errors import MovingDataError
from workers.settings import Settings

TOMBSTONE = {"delete": "deleted", "forget": "shredded"}


class Held(MovingDataError):
    """A removal refused: a version is under retention or legal hold (the message says which)."""


async def refusals(db: AsyncDatabase[Doc], docs: Sequence[Doc], now: datetime) -> dict[str, str]:
    """Why each held version may not be removed now, by its ``_id`` (none held: empty)."""
    holds = await covering(db, docs)
    return {
        doc_id(d["object_id"], d["version"]): why
        for d in docs
        if (why := refusal(d, holds, now)) is not None
    }


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
    settings: Settings,
    docs: Sequence[Doc],
    mode: str,
    reason: str,
    *,
    actor: Actor,
    db: AsyncDatabase[Doc] | None = None,
) -> int:
    """Send a delete (or forget) of each version through the chain, its intent audited first;
    ``Held``, nothing sent, if any version is held, whoever asks. ``db``: where the holds are
    read (default: a client of its own)."""
    if db is not None:
        held = await refusals(db, docs, datetime.now(UTC))
    else:
        state = State(settings)
        try:
            held = await refusals(state.db, docs, datetime.now(UTC))
        finally:
            await state.close()
    if held:
        raise Held("; ".join(held.values()))
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
