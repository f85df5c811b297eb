"""delete: ``delete`` -> ``remove`` -> ``removed``.

``tombstone`` writes the version's tombstone in the key registry, destroying its data key in
the same update (``forget``: shredded; ``rm`` and retention: deleted), then asks each target
to remove the version. From then on encrypt, replicate, verify, scrub and restore refuse the
version, so no replay, retry or re-put can bring its key or its replicas back. ``remove``
deletes every key under the version's prefix in one target (a store that is down is retried
on its own; the others proceed).
Idempotency key: the version (tombstones only ever go up: deleted -> shredded) and, for each
removal, (version, target); removing what is gone already is harmless.
Scope: a request naming a key outside the version's own prefix, or a removal whose prefix is
not its version's, is refused whole (``Permanent``: dead-lettered, nothing deleted), so no
event can delete another version's or object's replicas, or staged uploads.
Holds: a version under retention or legal hold is refused the same way (the doors refuse it
first, ``workers.client.ops.request_removal``; this catches a request that got past them, a
replay or one sent before the hold), so no tombstone is written while it is held.
"""

from collections.abc import Sequence

from schemas.events import (
    AuditRecord,
    DeleteRequest,
    Outcome,
    ReplicaRemoval,
    ReplicaRemoved,
    safe_key,
)
from topics import AUDIT, REMOVE, REMOVED
from workers.core.holds import REMOVAL_REFUSED, refusal
from workers.deps import Deps, version_prefix
from workers.dispatch import Emit, stamp
from workers.errors import Permanent

STAGE = "delete"
TOMBSTONES = {"delete": "deleted", "forget": "shredded"}


async def tombstone(event: DeleteRequest, deps: Deps) -> Sequence[Emit]:
    unknown = set(event.targets) - set(deps.stores)
    if unknown:
        raise Permanent(f"targets not configured here: {sorted(unknown)}")
    prefix = version_prefix(event.tenant, event.object_id, event.version)
    check_keys(event.keys, prefix)
    await refuse_held(event, deps)
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
    if not own_prefix(event.prefix, event.object_id, event.version):
        raise Permanent("removal prefix is not the version's own")
    check_keys(event.keys, event.prefix)
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


async def refuse_held(event: DeleteRequest, deps: Deps) -> None:
    """``Permanent`` naming the holds, while the version is held."""
    doc = await deps.catalog.document(event.object_id, event.version) or {}
    version = {
        "object_id": event.object_id,
        "version": event.version,
        "tenant": event.tenant,
        "name": doc.get("name", ""),
    }
    if (why := refusal(version, await deps.catalog.holds(version), deps.now())) is not None:
        raise Permanent(REMOVAL_REFUSED + why)


def own_prefix(prefix: str, object_id: str, version: int) -> bool:
    """``prefix`` is where ``object_id`` version ``version`` lives, under some tenant."""
    tenant = prefix.partition("/")[0]
    return bool(tenant) and prefix == version_prefix(tenant, object_id, version)


def check_keys(keys: Sequence[str], prefix: str) -> None:
    """Raise ``Permanent`` unless every key is a safe key under ``prefix``."""
    if any(not under(key, prefix) for key in keys):
        raise Permanent("keys outside the version's own prefix")


def under(key: str, prefix: str) -> bool:
    """``key`` is below ``prefix`` and names no '.' or '..' segment or other unsafe text."""
    try:
        return safe_key(key) == key and key.startswith(prefix)
    except ValueError:
        return False
