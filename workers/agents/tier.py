"""tier: ``verified`` -> ``tiered``.

Places each verified replica in its initial tier (a ``tier`` tag, else the configured
default) and changes the store's storage class when that is not hot. The cost-based engine
(DESIGN §6) will also consume ``access`` here.
Idempotency key: (object, version, target); setting the same tier twice is harmless. A
deleted or shredded version has no replica left to tier.
"""

from collections.abc import Sequence

from schemas.events import ReplicaTiered, ReplicaVerified
from topics import TIERED
from workers.core.tiering import initial_tier
from workers.deps import Deps
from workers.dispatch import Emit, stamp
from workers.keyregistry import gone
from workers.stores.base import Tier

STAGE = "tier"


async def handle(event: ReplicaVerified, deps: Deps) -> Sequence[Emit]:
    if await gone(deps.registry, event.object_id, event.version):
        return []
    tier, reason = initial_tier(event.placement.tags, deps.settings.initial_tier)
    if tier != Tier.HOT:
        await deps.store(event.target).set_tier(event.key, Tier(tier))
    tiered = stamp(
        ReplicaTiered,
        event,
        event.target,
        target=event.target,
        key=event.key,
        tier=tier,
        reason=reason,
    )
    return [Emit(TIERED, tiered)]
