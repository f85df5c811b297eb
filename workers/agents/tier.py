"""tier: ``verified``, ``retier``, ``access`` -> ``tiered``.

- ``verified``: a replica's initial tier (a ``tier`` tag, else the configured default). A
  scrub's verification changes no tier, but a replica the scrub repaired was written again in
  the hot tier: it is put back in the tier its document records.
- ``retier``: a change the policy decided (``workers.tiering.live``), applied per backend
  (``set_tier``) only when the store does not hold the replica in that tier already (stat
  first: a redelivery, or a change applied before a crash, costs no second copy).
- ``access``: a read of a version; the policy decides that version again as at the read, and
  the moves to a warmer tier are applied as above (a read burst after a long silence warms it
  at once; colder moves wait for the sweep). A read older than the replicas' latest placement
  decides nothing: that placement was decided knowing more.

Every placement is a ``tiered`` event; its audit record carries the reason and, for a policy
change, the expected cost delta. Idempotency key: (object, version, target, cause).
A deleted or shredded version has no replica left to tier.
"""

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from schemas.events import ObjectAccessed, ReplicaTiered, ReplicaVerified, TierChange
from topics import TIERED
from workers.core.prices import TIERS
from workers.core.tiering import initial_tier
from workers.core.versions import live_replicas, utc
from workers.deps import Deps
from workers.dispatch import Emit, stamp
from workers.kms.keyregistry import gone
from workers.stores.base import Tier
from workers.tiering.live import Tiering, changes, recorded_tier

STAGE = "tier"


async def place(deps: Deps, target: str, key: str, tier: str) -> bool:
    """Put the replica in ``tier`` unless the store holds it there already; True if moved."""
    store = deps.store(target)
    if (await store.stat(key)).tier == Tier(tier):
        return False
    await store.set_tier(key, Tier(tier))
    return True


async def handle(event: ReplicaVerified, deps: Deps) -> Sequence[Emit]:
    if event.verdict != "good" or (event.scrub and event.repaired_from is None):
        return []  # a bad replica, or a scrub's read-back: nothing to place
    if await gone(deps.registry, event.object_id, event.version):
        return []
    tier, reason = initial_tier(event.placement.tags, deps.settings.initial_tier)
    # A first placement in hot moves nothing, so it needs no look at the catalog: the sink
    # records each placement once, and a replay's copy changes nothing.
    if event.scrub or tier != Tier.HOT:
        doc = await deps.catalog.document(event.object_id, event.version)
        replica = ((doc or {}).get("replicas") or {}).get(event.target) or {}
        if event.scrub:
            tier, reason = recorded_tier(replica), "restored after a scrub repaired the replica"
            if not await place(deps, event.target, event.key, tier):
                return []
        elif replica.get("tiered_at"):  # placed already (a replay): a later change may stand
            return []
        else:
            await deps.store(event.target).set_tier(event.key, Tier(tier))
    parts = (event.target, event.event_id) if event.scrub else (event.target,)
    tiered = stamp(
        ReplicaTiered, event, *parts, target=event.target, key=event.key, tier=tier, reason=reason
    )
    return [Emit(TIERED, tiered)]


async def change(event: TierChange, deps: Deps) -> Sequence[Emit]:
    if await gone(deps.registry, event.object_id, event.version):
        return []
    return [await apply(event, deps)]


async def apply(event: TierChange, deps: Deps) -> Emit:
    """Place the replica as the change says and record the placement."""
    await place(deps, event.target, event.key, event.tier)
    tiered = stamp(
        ReplicaTiered,
        event,
        event.target,
        event.event_id,
        target=event.target,
        key=event.key,
        tier=event.tier,
        reason=event.reason,
        previous=event.previous,
        cost_before=event.cost_before,
        cost_after=event.cost_after,
    )
    return Emit(TIERED, tiered)


async def accessed(event: ObjectAccessed, deps: Deps) -> Sequence[Emit]:
    doc = await deps.catalog.document(event.object_id, event.version)
    if doc is None or await gone(deps.registry, event.object_id, event.version):
        return []
    tiering = Tiering.load(deps.settings)
    if not tiering.policy.decide_on_read or superseded(doc, event.produced_at):
        return []
    # as at the read, so a redelivered read decides the same; only warmer moves: a read
    # never sends a replica colder (that waits for the sweep)
    decision = tiering.decide(doc, event.produced_at, read_at=event.produced_at)
    if decision is None:
        return []
    moves = changes(doc, decision, event.event_id, "", deps.now())
    return [await apply(m, deps) for m in moves if TIERS.index(m.tier) < TIERS.index(m.previous)]


def superseded(doc: dict[str, Any], read_at: datetime) -> bool:
    """A placement was decided after this read (a sweep, an earlier read's move): the read
    is in the document's history for the next decisions, and decides nothing itself."""
    placed = [utc(r["tiered_at"]) for r in live_replicas(doc).values() if r.get("tiered_at")]
    return any(at > read_at for at in placed)
