"""Retention: retire the versions ``MOVINGDATA_RETAIN_VERSIONS`` no longer keeps.

Why a periodic job, and not the put: at put time the new version is not verified yet, so a
put could only guess which older versions it would replace, and a put that then fails (or a
version a scrub later finds degraded or lost) would have cost a good older version. Here the
decision is made after the fact, from the sink's present-tense states: each round, on the
sink group's leader, reads every version that is not gone, object by object
(``object_id, version`` order: one object's versions in memory at a time), and retires what
``workers.core.versions.to_retire`` says, which is only ever a version older than ``keep``
verified ones. A version newer than those (pending, failed, degraded, lost) never lets
anything go; once it is verified, the next round retires what it replaces.

A retirement is a delete through the chain (``ops.request_removal``: the intent audited as
the sink's worker, then the ``delete`` request, whose id is the version's, so asking twice
is asking once). The sink records the request (``delete_requested_at``), from which time the
version counts as gone here (``retention_view``) and the reconcile sees the removal through.
A version under retention or legal hold (``workers.client.holds``) is not retired while held.
"""

from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime

from pymongo import ASCENDING

from workers.client.identity import worker_actor
from workers.client.ops import refusals, request_removal
from workers.client.state import Doc, State
from workers.core.versions import GONE, VersionView, doc_id, retention_view, to_retire
from workers.settings import Settings

RETAINER = worker_actor("sink")  # the job runs on the sink's leader
BATCH = 500  # versions retired per fetch of their documents and send
FIELDS = ("object_id", "version", "state", "delete_requested_at", "forget_requested_at")


async def retire(settings: Settings, state: State) -> int:
    """One round; return how many versions were sent to be deleted."""
    keep = settings.retain_versions
    if keep <= 0:
        return 0
    reason = f"retention: keep {keep} verified versions"
    sent = 0
    ids: list[str] = []
    async for object_id, views in objects(state):
        ids += [doc_id(object_id, v) for v in to_retire(views, keep)]
        if len(ids) >= BATCH:
            sent += await delete(settings, state, ids, reason)
            ids = []
    return sent + await delete(settings, state, ids, reason)


async def objects(state: State) -> AsyncIterator[tuple[str, list[VersionView]]]:
    """Each object's versions that are not gone, as retention sees them."""
    cursor = (
        state.db["objects"]
        .find({"state": {"$nin": sorted(GONE)}}, dict.fromkeys(FIELDS, 1))
        .sort([("object_id", ASCENDING), ("version", ASCENDING)])
    )
    current: str | None = None
    views: list[VersionView] = []
    async for doc in cursor:
        if doc["object_id"] != current:
            if current is not None:
                yield current, views
            current, views = doc["object_id"], []
        views.append(retention_view(doc))
    if current is not None:
        yield current, views


async def delete(settings: Settings, state: State, ids: Sequence[str], reason: str) -> int:
    """Send a delete of each version through the chain (its document read again, whole); one
    the sink does not know the tenant and targets of yet waits for a later round, a held one
    until its hold is released or passes."""
    if not ids:
        return 0
    found = await state.versions(ids)
    docs: list[Doc] = [
        doc for i in ids if (doc := found.get(i)) and doc.get("tenant") and doc.get("targets")
    ]
    held = await refusals(state.db, docs, datetime.now(UTC))
    docs = [d for d in docs if doc_id(d["object_id"], d["version"]) not in held]
    if docs:
        await request_removal(settings, docs, "delete", reason, actor=RETAINER, db=state.db)
    return len(docs)
