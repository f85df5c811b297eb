"""delete: ``delete`` -> ``remove`` -> ``removed``.

``tombstone`` writes the version's tombstone in the key registry, destroying its data key in
the same update (``forget``: shredded; ``rm`` and retention: deleted), then asks each target
to remove the version. From then on encrypt, replicate, verify, scrub and restore refuse the
version, so no replay, retry or re-put can bring its key or its replicas back. ``remove``
deletes every key under the version's prefix in one target (a store that is down is retried
on its own; the others proceed).
Idempotency key: the version (tombstones only ever go up: deleted -> shredded) and, for each
removal, (version, target); removing what is gone already is harmless.
"""

from collections.abc import Sequence

from schemas.events import AuditRecord, DeleteRequest, Outcome, ReplicaRemoval, ReplicaRemoved
from topics import AUDIT, REMOVE, REMOVED
from workers.deps import Deps, version_prefix
from workers.dispatch import Emit, stamp
from workers.errors import Permanent

STAGE = "delete"
TOMBSTONES = {"delete": "deleted", "forget": "shredded"}


async def tombstone(event: DeleteRequest, deps: Deps) -> Sequence[Emit]:
    unknown = set(event.targets) - set(deps.stores)
    if unknown:
        raise Permanent(f"targets not configured here: {sorted(unknown)}")
    mark = TOMBSTONES[event.mode]
    await deps.registry.tombstone(event.object_id, event.version, mark)  # type: ignore[arg-type]
    record = stamp(
        AuditRecord,
        event,
        "tombstone",
        event.event_id,
        stage=STAGE,
        action=f"version.{mark}",
        outcome=Outcome.OK,
        detail={"data_key": "destroyed", "reason": event.reason},
    )
    prefix = version_prefix(event.tenant, event.object_id, event.version)
    removals = [
        stamp(
            ReplicaRemoval,
            event,
            event.event_id,
            target,
            mode=event.mode,
            target=target,
            prefix=prefix,
            keys=event.keys,
        )
        for target in event.targets
    ]
    return [Emit(AUDIT, record), *(Emit(REMOVE, r) for r in removals)]


async def remove(event: ReplicaRemoval, deps: Deps) -> Sequence[Emit]:
    store = deps.store(event.target)
    keys = {*event.keys, *[info.key async for info in store.list(event.prefix)]}
    for key in sorted(keys):
        await store.delete(key)
    removed = stamp(
        ReplicaRemoved,
        event,
        event.event_id,
        mode=event.mode,
        target=event.target,
        keys_removed=len(keys),
    )
    return [Emit(REMOVED, removed)]
