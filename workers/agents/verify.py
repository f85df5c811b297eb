"""verify: ``replicated`` -> ``verified``.

Two modes (``settings.verify_mode``). ``store-digest``: a replica counts on the digest its
store confirmed when it was written, which is the store's digest of the bytes it received and
equal to ours computed from the bytes sent, themselves the ciphertext encrypt recorded (see
``WriteResult``). A confirmation in answer to the write of the step just before (encrypt's
one pass, replicate's copy: ``written_now``) is taken with no digest asked of the store once a
stat finds the replica there at the ciphertext's size, unless the version is tombstoned (its
replicas are removed after that); no clock decides it (the event's time is the producing
host's, not this one's). One recorded earlier and announced again (a redelivery), or a
replica the stat does not find as written, counts only if the store reports the same digest
now. A store that cannot report one (no
``ReportsDigest``), a write that confirmed nothing, a digest that differs, and every scrub
fall back to ``read-back``: read the replica back and recompute its SHA-256; it counts only
when it matches the digest encrypt recorded. A missing or mismatching replica is repaired
from another copy that hashes correctly (each candidate tried once), then read back again.
When no copy can repair it, a first verification retries (other replicas may be in flight);
a scrub reports its verdict (``damaged`` or ``missing``), which makes the version degraded
or lost until a later check finds it good. A scrub of a replica the store will not read
(archived) proves it by the store's digest against the one recorded at its write, without
rehydration; with no digest to compare it is left for later (``movingdata_scrub_unproven``:
the scheduled scrub rehydrates it within its daily budget, ``workers.jobs.scrub``); one the
store refuses to read otherwise is ``unreadable``.
Idempotency key: (object, version, target); re-verifying is harmless. A deleted or shredded
version is never repaired (checked before, and after a repair wrote). Its tombstone is not
looked up for a replica the store reports or returns intact: one read before its removal is
reported verified, and changes nothing (the tombstone decides the version's state,
``removed_at`` its replicas').
"""

import hashlib
from collections.abc import Sequence

from schemas.events import ReplicaVerified, ReplicaWritten, Verdict, VerifyMode
from topics import VERIFIED
from workers import metrics
from workers.core.digests import digests_match
from workers.deps import Deps
from workers.dispatch import Emit, stamp
from workers.errors import AccessDenied, IntegrityError, NotFound, Retryable
from workers.kms.keyregistry import gone
from workers.stores.base import ObjectStore, ReportsDigest, Tier

STAGE = "verify"


async def replica_sha256(store: ObjectStore, key: str) -> str | None:
    """SHA-256 of the stored bytes, or None when the replica is missing."""
    digest = hashlib.sha256()
    try:
        async for chunk in store.read(key):
            digest.update(chunk)
    except NotFound:
        return None
    return digest.hexdigest()


async def fresh(event: ReplicaWritten, store: ObjectStore) -> bool:
    """The store's digest came in its answer to the write just before, and the replica is
    there now at the ciphertext's size (a stat: cheaper than its digest, never a read)."""
    if not event.written_now:
        return False
    try:
        info = await store.stat(event.key)
    except NotFound:
        return False
    return info.size == event.ciphertext_size


def confirmed(event: ReplicaWritten, store: ObjectStore) -> bool:
    """The store confirmed a digest, and store-digest mode may count on it (not a scrub)."""
    return not event.scrub and event.store_digest is not None and isinstance(store, ReportsDigest)


async def store_confirms(event: ReplicaWritten, store: ObjectStore) -> bool:
    """The store's digest of the replica now is the one it confirmed when it was written."""
    if not confirmed(event, store):
        return False
    try:
        reported = await store.stored_digest(event.key)
    except NotFound:
        return False  # read back: missing, so repaired
    return digests_match(event.store_digest, reported)


async def repair(event: ReplicaWritten, deps: Deps) -> str | None:
    """Copy a good replica over the bad one; return the source target used (None: no
    intact copy, checked with each candidate once)."""
    target = deps.store(event.target)
    for candidate in event.placement.targets:
        if candidate == event.target:
            continue
        try:
            written = await target.write(event.key, deps.store(candidate).read(event.key))
        except (NotFound, AccessDenied):  # absent, or archived: not a source now
            continue
        if written.sha256 == event.ciphertext_sha256:
            return candidate
    return None


async def archived_proof(event: ReplicaWritten, store: ObjectStore) -> Verdict | None:
    """A scrub's verdict on a replica the store will not read back (archived) from the digest
    the store reports, without rehydrating it: good when it is the one recorded at the write,
    damaged when it differs; None when there is nothing to compare."""
    if event.store_digest is None or not isinstance(store, ReportsDigest):
        return None
    try:
        reported = await store.stored_digest(event.key)
    except NotFound:
        return "missing"
    if reported is None:
        return None
    return "good" if digests_match(event.store_digest, reported) else "damaged"


async def handle(event: ReplicaWritten, deps: Deps) -> Sequence[Emit]:
    store = deps.store(event.target)
    repaired_from = None
    mode: VerifyMode = "read-back"
    verdict: Verdict = "good"
    by_digest = deps.settings.verify_mode == "store-digest"
    if by_digest and confirmed(event, store) and await fresh(event, store):
        # The store's answer to the write just before, and the replica is there: no digest
        # to ask. A replica we removed since is one of a deleted or shredded version, whose
        # tombstone is written first; bytes the store damages later are the scrub's to find.
        if await gone(deps.registry, event.object_id, event.version):
            return []
        mode = "store-digest"
    elif by_digest and await store_confirms(event, store):
        mode = "store-digest"
    else:
        try:
            found = await replica_sha256(store, event.key)
        except AccessDenied:
            if not event.scrub:
                raise
            if (await store.stat(event.key)).tier != Tier.ARCHIVE:
                verdict = "unreadable"  # the store refuses to hand it back
            # Archived: proven by the store's digest where it reports one; else left for a
            # read-back once it is readable (the scheduled scrub moves on to other replicas).
            elif (proof := await archived_proof(event, store)) is None:
                metrics.SCRUB_UNPROVEN.labels(event.target).inc()
                return []
            else:
                mode, verdict = "store-digest", proof
            found = None
        if verdict == "good" and mode == "read-back" and found != event.ciphertext_sha256:
            if await gone(deps.registry, event.object_id, event.version):
                return []  # removed, or being removed
            metrics.VERIFY_FAILURES.labels(event.target).inc()
            repaired_from = await repair(event, deps)
            if repaired_from is None:
                if not event.scrub:  # other replicas may still be in flight: try again later
                    raise Retryable(f"no intact copy to repair {event.target} from")
                verdict = "missing" if found is None else "damaged"
            else:
                metrics.REPAIRS.labels(event.target).inc()
                if await gone(deps.registry, event.object_id, event.version):
                    await store.delete(event.key)
                    return []
                if await replica_sha256(store, event.key) != event.ciphertext_sha256:
                    raise IntegrityError(f"{event.target} replica still differs after repair")
    # A scrub's verification is a step of its own: its id names the scrub request.
    parts = (event.target, event.event_id) if event.scrub else (event.target,)
    verified = stamp(
        ReplicaVerified,
        event,
        *parts,
        placement=event.placement,
        target=event.target,
        key=event.key,
        ciphertext_sha256=event.ciphertext_sha256,
        ciphertext_size=event.ciphertext_size,
        verified_at=deps.now(),
        repaired_from=repaired_from,
        scrub=event.scrub,
        mode=mode,
        verdict=verdict,
    )
    return [Emit(VERIFIED, verified, action=verified.step)]  # type: ignore[attr-defined]
