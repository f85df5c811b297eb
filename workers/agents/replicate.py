"""replicate: ``encrypted`` -> ``replicate.<target>`` -> ``replicated.<target>``.

``fan_out`` splits an encrypted object into one event per target encrypt did not write in its
one pass (a target detached as down or slow; every target, for events from before the one
pass), each on its target's own topic; ``handle`` copies the ciphertext to that target as a
stream, from the primary store (or, if the primary lost it, from another replica; verify
checks what arrived either way). In events from before the one pass, the primary itself is
reported as written too, so verify checks every replica the same way.
A store that is down or slow only holds back its own topic: the others keep their pace, and
its retries name only it.
Idempotency key: the store key, identical in every target; a replica already present with the
recorded size is not copied again. A tombstoned version is never copied: the check runs before
the copy and again after it, so a copy racing a delete removes what it wrote.
"""

from collections.abc import Sequence

from schemas.events import Event, ObjectEncrypted, ReplicaWritten, event_id
from topics import REPLICATE, REPLICATED
from workers.deps import Deps
from workers.dispatch import Emit, stamp
from workers.errors import NotFound, Retryable
from workers.kms.keyregistry import gone
from workers.stores import holds

STAGE = "replicate"


def per_target(event: ObjectEncrypted) -> list[ObjectEncrypted]:
    """One event per target still to replicate, each naming only its target (own id)."""
    if event.only_targets and len(event.only_targets) == 1:
        return [event]  # already one target's event (a retry): keep its id
    targets = event.only_targets or event.placement.targets
    # Encrypt announced the targets it wrote in its one pass; the detached ones remain.
    targets = tuple(t for t in targets if t not in event.written_targets)
    return [
        event.model_copy(
            update={
                "only_targets": (target,),
                "event_id": event_id(
                    event.kind, event.object_id, event.version, event.event_id, target
                ),
            }
        )
        for target in targets
    ]


async def fan_out(event: ObjectEncrypted, deps: Deps) -> Sequence[Emit]:
    return [
        Emit(REPLICATE[one.only_targets[0]], one, action="replica.requested")
        for one in per_target(event)
    ]


async def copy(event: ObjectEncrypted, target: str, deps: Deps) -> str | None:
    """Copy the ciphertext into ``target`` from the primary, else from any other replica;
    return what the target confirmed (its store digest) if the bytes sent were the ciphertext
    encrypt recorded, else None (verify then reads the replica back)."""
    sources = [event.primary, *(t for t in event.placement.targets if t != event.primary)]
    for source in sources:
        if source == target:
            continue
        try:
            written = await deps.store(target).write(
                event.key,
                deps.store(source).read(event.key),
                metadata={"object_id": event.object_id, "key_id": event.key_id},
            )
        except NotFound:
            continue
        if written.sha256 == event.ciphertext_sha256:
            return written.store_digest
        return None
    raise Retryable(f"no replica to copy into {target} from yet")


async def handle(event: ObjectEncrypted, deps: Deps) -> Sequence[Emit]:
    (target,) = event.only_targets
    if await gone(deps.registry, event.object_id, event.version):
        return []
    store = deps.store(target)
    # The primary's write was confirmed by encrypt, earlier (verify asks the store again); a
    # replica already there with the right size (a redelivery) confirmed nothing this time,
    # so verify reads it back; a copy's confirmation is this step's own.
    confirmed, copied = (event.store_digest if target == event.primary else None), False
    if target != event.primary and not await holds(store, event.key, event.ciphertext_size):
        confirmed, copied = await copy(event, target, deps), True
        if await gone(deps.registry, event.object_id, event.version):
            await store.delete(event.key)
            return []
    return [Emit(REPLICATED[target], replica_written(event, target, confirmed, now=copied))]


def replica_written(
    event: ObjectEncrypted, target: str, confirmed: str | None, *, now: bool
) -> Event:
    """``ReplicaWritten`` of ``target`` (one id per target, whoever wrote it: replicate, or
    encrypt in its one pass); ``confirmed``: the digest the target confirmed, if any; ``now``:
    written by the step that sends it (``confirmed`` is then the target's answer to it)."""
    return stamp(
        ReplicaWritten,
        event,
        target,
        placement=event.placement,
        target=target,
        key=event.key,
        ciphertext_size=event.ciphertext_size,
        ciphertext_sha256=event.ciphertext_sha256,
        plaintext_sha256=event.plaintext_sha256,
        key_id=event.key_id,
        store_digest=confirmed,
        written_now=now,
    )
