"""scan: ``sync`` -> ``ingest``, ``delete`` and ``sync`` (the job's next page).

One page of a job's source listing (``MOVINGDATA_SYNC_PAGE`` keys past the page's ``after``) is
planned against what the versions of those names recorded (``workers.core.sync``): a put
request for each new or changed key (the URL, the fingerprint it was listed with), with
``delete`` a removal of each version of a name in the page's range that the source no longer
lists, and the next page. All of it is acknowledged with the page, so the topic is the job's
checkpoint: a scanner stopped part-way plans that page again, and nothing before it.
Idempotency key: (job, key, fingerprint) for each put (``core.sync.request_id``: a replan, a
redelivery or a second scanner lands on the version the first request made), the version
for each removal, (job, page) for the page's counts and the next page.
A cancelled job plans no further page.
"""

from collections import Counter
from collections.abc import Sequence

from schemas.events import IngestRequest, Placement, Source, SyncPage, event_id, object_id_for
from topics import DELETE, INGEST, SYNC
from workers.client.identity import Actor
from workers.client.ops import delete_request
from workers.core.sync import Action, Step, request_id
from workers.core.versions import doc_id
from workers.deps import Deps
from workers.dispatch import Emit, stamp
from workers.errors import Permanent
from workers.sync.plan import PagePlan, plan_page
from workers.sync.source import open_source

MOVES = frozenset({Action.NEW, Action.CHANGED})


async def handle(event: SyncPage, deps: Deps) -> Sequence[Emit]:
    if deps.syncs is None:
        raise Permanent("this worker keeps no sync jobs")
    job = await deps.syncs.start(event, deps.now()) if event.page == 0 else None
    job = job or await deps.syncs.job(event.correlation_id)
    if job is None or job["state"] != "listing":
        return []  # cancelled (or ended by a copy of this page): nothing more
    store, source_prefix = open_source(event.source, deps.settings)
    try:
        plan = await plan_page(event, store, source_prefix, deps.syncs, deps.settings.sync_page)
    finally:
        await store.close()
    moves = [step for step in plan.steps if step.action in MOVES]
    actor = Actor(event.actor)
    reason = f"sync {event.correlation_id}: gone from {event.source}"
    out = [Emit(INGEST, put(event, step)) for step in moves]
    out += [
        Emit(DELETE, delete_request(doc, "delete", reason, actor, event.correlation_id))
        for doc in plan.removals
    ]
    await deps.syncs.record_page(
        event,
        counts(plan),
        [doc_id(doc["object_id"], doc["version"]) for doc in plan.removals],
        plan.last,
        deps.now(),
    )
    if not plan.last:
        out.append(Emit(SYNC, next_page(event, plan.keys[-1])))
    return out


def counts(plan: PagePlan) -> dict[str, int]:
    """What a page planned, as the job's counters."""
    planned = Counter(step.action.value for step in plan.steps)
    moved = (s.listed.size for s in plan.steps if s.action in MOVES and s.listed is not None)
    return {
        "seen": len(plan.keys),
        **{action: planned[action] for action in ("new", "changed", "unchanged", "refused")},
        "delete": len(plan.removals),
        "bytes": sum(moved),
    }


def put(page: SyncPage, step: Step) -> IngestRequest:
    """The put request of one new or changed key, asked by whoever asked for the job."""
    assert step.listed is not None
    scheme, rest = page.source.split("://", 1)
    bucket = rest.split("/", 1)[0]
    fingerprint = step.listed.fingerprint
    request = request_id(page.correlation_id, step.listed.key, fingerprint)
    object_id = object_id_for(page.tenant, step.name)
    return IngestRequest(
        kind=IngestRequest.KIND,
        v=1,
        event_id=event_id(IngestRequest.KIND, object_id, 0, request),
        object_id=object_id,
        version=0,
        correlation_id=request,
        produced_at=page.produced_at,
        actor=page.actor,
        source=Source(
            url=f"{scheme}://{bucket}/{step.listed.key}",
            fingerprint=fingerprint,
            digests=dict(step.listed.digests),  # type: ignore[arg-type]
        ),
        placement=Placement(name=step.name, targets=page.targets, tenant=page.tenant),
        plaintext_size=None,
        plaintext_sha256=None,
    )


def next_page(page: SyncPage, after: str) -> SyncPage:
    """The job's next page, listed past ``after``."""
    job = page.model_dump(include={"source", "targets", "tenant", "prefix", "rules"})
    job |= {"delete": page.delete, "checksum": page.checksum, "actor": page.actor}
    return stamp(SyncPage, page, str(page.page + 1), page=page.page + 1, after=after, **job)  # type: ignore[return-value]
