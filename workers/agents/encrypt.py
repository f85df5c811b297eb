"""encrypt: ``accepted`` -> ``encrypted`` (and ``replicated.<target>`` for what it wrote).

Reads the source as a stream, once, encrypts it with the version's data key (envelope
encryption: the key is wrapped by the KEK and kept in the key registry; the ciphertext header
names it) and streams the ciphertext to every target at once (``workers.stores.fanout.tee``,
a bounded queue per target), recording plaintext and ciphertext SHA-256 in the same pass. A
target that fails or holds the others back is detached: replicate copies it later from a
replica this pass wrote. When the request carried the plaintext's size and SHA-256, what was
read must match them, or every write is abandoned before it completes ("source changed since
put").
Idempotency key: the object version. Its one data key is registered (insert if absent) and
unwrapped back from the registry once (``key_check``, recorded as ``key_checked_at``) before
the first byte is written; a second encrypt of the version uses that key, writes a key of its
own under the version's prefix in every target, and keeps it only if it records its write
first (else it deletes it everywhere). What is recorded names the targets that confirmed the
whole ciphertext, with their digests; once it is recorded, a redelivery re-announces it (the
same events) without reading the source again, so no target is ever written with a second
ciphertext: a target left out is copied, never re-encrypted. A tombstoned version (deleted,
shredded) is never encrypted again.
Lease: while its bytes keep moving, an encrypt renews the version's lease
(``encrypt_progress_at`` on its document, every quarter of ``reconcile_after_s`` at most), so
the reconcile does not re-drive a large object being encrypted; one that stops moving loses
it and is re-driven (``workers.core.reconcile``). Keys of losing attempts are collected: an
attempt that finds the version contended (its data key registered by another attempt) and
records its write, or a redelivery that finds a write recorded, deletes every other key
under the version's prefix (``collect_losers``); an attempt still writing then loses the
record and deletes its own key, so no losing attempt leaves a ciphertext behind, even one
that died half-way.
"""

import asyncio
import hmac
import logging
from collections.abc import AsyncIterator, Sequence
from dataclasses import replace
from datetime import datetime, timedelta
from functools import partial
from typing import Any

from schemas.events import ObjectAccepted, ObjectEncrypted
from topics import ENCRYPTED, REPLICATED
from workers.agents.replicate import replica_written
from workers.core.digests import MultiDigest
from workers.core.envelope import (
    FERNET_MAX_BYTES,
    Algorithm,
    Header,
    StreamEncryptor,
    associated_data,
    fernet_encrypt,
    new_data_key,
)
from workers.core.reconcile import progress_interval
from workers.deps import Deps, version_prefix
from workers.dispatch import Emit, stamp
from workers.errors import Fatal, IntegrityError, MovingDataError, Permanent, Retryable
from workers.kms.keyregistry import WRAP_MAX_AGE_S, DataKeyRecord, key_ref, tombstoned
from workers.sources import check_source, open_path, split_url
from workers.stores import WriteResult, open_store
from workers.stores.fanout import StalledTarget, Writer, tee

STAGE = "encrypt"
log = logging.getLogger("movingdata.encrypt")
# Wrap-and-register attempts for one data key (``register``) before the event is retried.
REGISTER_ROUNDS = 3


class SourceChanged(Permanent):
    """The bytes read are not the ones the client measured when it put them."""


async def read_source(event: ObjectAccepted, deps: Deps) -> AsyncIterator[bytes]:
    """The plaintext as chunks: a staged upload, a file, a store object or inline bytes;
    checked again as it is opened (``workers.sources``)."""
    source, size, settings = event.source, deps.settings.chunk_size, deps.settings
    check_source(source, event.placement.tenant, event.correlation_id, settings)
    if source.inline_b64 is not None:
        yield source.inline_bytes()
    elif source.path is not None:
        with await asyncio.to_thread(open_path, source.path, settings.source_roots) as handle:
            while chunk := await asyncio.to_thread(handle.read, size):
                yield chunk
    elif source.staged is not None:
        async for chunk in deps.staging.read(source.staged):
            yield chunk
    else:
        assert source.url is not None
        scheme, bucket, key = split_url(source.url)
        store = open_store(f"{scheme}://{bucket}", settings)
        try:
            async for chunk in store.read(key):
                yield chunk
        finally:
            await store.close()


def check_read(event: ObjectAccepted, plain: MultiDigest, *, final: bool) -> None:
    """Raise ``SourceChanged`` as soon as the bytes read cannot be the ones put."""
    expected = event.plaintext_size
    if expected is None:
        return
    if plain.size > expected or (final and plain.size != expected):
        raise SourceChanged(f"source changed since put: {plain.size} bytes read, {expected} put")
    if final and plain.sha256_hex != event.plaintext_sha256:
        raise SourceChanged("source changed since put: its SHA-256 differs from the one put")


async def data_key_for(
    event: ObjectAccepted, deps: Deps, record: DataKeyRecord | None
) -> tuple[bytes, DataKeyRecord] | None:
    """The version's one data key (None: the version is tombstoned).

    A fresh key is registered only if the version has none (``register``); if another
    encrypt registered one first, that one is used.
    """
    if record is None:
        data_key = new_data_key(deps.rng)
        record, mine = await register(event, deps, data_key)
        if mine:
            return data_key, record
    if tombstoned(record) or record.kek_key_id is None or record.wrapped is None:
        return None
    return await deps.kek.unwrap(record.kek_key_id, record.wrapped), record


async def register(
    event: ObjectAccepted, deps: Deps, data_key: bytes
) -> tuple[DataKeyRecord, bool]:
    """Register ``data_key`` as the version's key unless it has one: the record as stored,
    and whether it holds ``data_key`` (else another encrypt's key, or a tombstone).

    The rotation guard covers wrap to registration: ``keys rotate --disable-old`` disables
    the old KEK versions once a listing taken ``WRAP_MAX_AGE_S`` after the rotation finds no
    key under them, so a wrapping counts only if its registration is done within
    ``WRAP_MAX_AGE_S`` of the start of its wrap. A wrap that took longer is not registered
    (the event is retried). One registered later than that may be under a version disabled
    meanwhile: the same data key is wrapped again, under the current version, and replaces
    that wrapping by compare-and-set, until a registration lands within the bound. Nothing
    is encrypted with the key before.
    """
    began = deps.clock()
    kek_key_id, wrapped = await deps.kek.wrap(data_key)
    if deps.clock() - began > WRAP_MAX_AGE_S:
        raise Retryable(f"wrapping the data key took over {WRAP_MAX_AGE_S:.0f} s")
    mine = DataKeyRecord(event.object_id, event.version, kek_key_id, wrapped, deps.now())
    stored = await deps.registry.insert(mine)
    if stored.wrapped != wrapped:
        return stored, False  # another encrypt's key
    for _ in range(REGISTER_ROUNDS):
        if deps.clock() - began <= WRAP_MAX_AGE_S:
            return stored, True
        log.warning("data key registered late: wrapped again", extra=ids(event))
        began = deps.clock()
        kek_key_id, wrapped = await deps.kek.wrap(data_key)
        if not await deps.registry.rewrap(stored, kek_key_id, wrapped):
            # Re-wrapped by a rotation meanwhile (the same key, unwrapped by the caller), or
            # tombstoned: as stored now.
            current = await deps.registry.get(event.object_id, event.version)
            if current is None:
                raise Retryable("the data key registered is not in the registry")
            return current, False
        stored = replace(stored, kek_key_id=kek_key_id, wrapped=wrapped)
    raise Retryable(f"registering the data key took over {WRAP_MAX_AGE_S:.0f} s, every time")


async def key_check(event: ObjectAccepted, deps: Deps, data_key: bytes) -> str | None:
    """Unwrap the version's data key as the registry holds it, once, before a byte is
    encrypted with it: it must be ``data_key``, or nothing is written (``IntegrityError``).
    Returns when it was checked (ISO 8601, recorded with the write: a version is not
    verified without it), None when the version was tombstoned meanwhile."""
    record = await deps.registry.get(event.object_id, event.version)
    if record is None:
        raise Retryable("the version's data key is not in the registry yet")
    if tombstoned(record) or record.kek_key_id is None or record.wrapped is None:
        return None
    registered = await deps.kek.unwrap(record.kek_key_id, record.wrapped)
    if not hmac.compare_digest(registered, data_key):
        raise IntegrityError("the registered data key is not the one this encrypt holds")
    return deps.now().isoformat()


async def handle(event: ObjectAccepted, deps: Deps) -> Sequence[Emit]:
    record = await deps.registry.get(event.object_id, event.version)
    written = record.written if record is not None else None
    now = False
    if not tombstoned(record) and written is None:
        written, now = await encrypt_to_targets(event, deps, record)
    elif written is not None and not tombstoned(record):
        # A redelivery or a re-drive: an attempt that lost may have died before its clean-up.
        await collect_losers(event, deps, written["key"])
    if written is None or tombstoned(record):
        log.info("version is tombstoned: not encrypted", extra=ids(event))
        return []
    if event.source.staged is not None:  # the ciphertext is recorded: the upload has served
        await deps.staging.delete(event.source.staged)
    return announce(event, written, now=now)


def announce(event: ObjectAccepted, written: dict[str, Any], *, now: bool) -> list[Emit]:
    """The events of a recorded write: ``encrypted``, and ``replicated`` for each target the
    one pass wrote, with the digest it confirmed (replicate copies the others). The same
    events, ids included, each time a redelivery re-announces the write; ``now``: this pass
    wrote it (a re-announced digest is asked of the store again by verify)."""
    fields = {k: v for k, v in written.items() if k != "replicas"}
    if checked := fields.get("key_checked_at"):  # kept as text: exact through the registry
        fields["key_checked_at"] = datetime.fromisoformat(checked)
    replicas: dict[str, str | None] = written.get("replicas", {})
    done = tuple(t for t in event.placement.targets if t in replicas)
    encrypted = stamp(
        ObjectEncrypted,
        event,
        event.event_id,
        placement=event.placement,
        written_targets=done,
        **fields,
    )
    assert isinstance(encrypted, ObjectEncrypted)
    return [
        Emit(ENCRYPTED, encrypted),
        *(
            # Replicate's step, done in this pass: the sink names it the same way.
            Emit(
                REPLICATED[t],
                replica_written(encrypted, t, replicas[t], now=now),
                stage="replicate",
            )
            for t in done
        ),
    ]


def ids(event: ObjectAccepted) -> dict[str, object]:
    return {"stage": STAGE, "object_id": event.object_id, "version": event.version}


def detachable(error: BaseException) -> bool:
    """A target's write failed in a way replicate can take over: it is down, slow, refused
    this request or lost its bucket. Bad config or credentials (``Fatal``) and bugs are not."""
    return isinstance(error, StalledTarget) or (
        isinstance(error, MovingDataError) and not isinstance(error, Fatal)
    )


async def encrypt_to_targets(
    event: ObjectAccepted, deps: Deps, record: DataKeyRecord | None
) -> tuple[dict[str, Any] | None, bool]:
    """Stream source -> encryptor -> every target at once (``tee``); return what the registry
    records as written (None: the version was tombstoned), and whether it is this pass's.

    What is recorded names the targets that confirmed the whole ciphertext ("replicas", each
    with its store digest); the first of them in placement order is the primary. A target
    detached on the way is left to replicate. Nothing is recorded unless one target took it.
    """
    placement = event.placement
    contended = record is not None  # another attempt registered the key: it may write too
    keyed = await data_key_for(event, deps, record)
    if keyed is None:
        return None, False
    data_key, record = keyed
    key_checked_at = await key_check(event, deps, data_key)
    if key_checked_at is None:
        return None, False
    prefix = version_prefix(placement.tenant, event.object_id, event.version)
    key = prefix + deps.rng(6).hex()  # this attempt's own key: never overwrites another's
    aad = associated_data(event.object_id, event.version)
    ref = key_ref(event.object_id, event.version)  # the header names the key, never carries it
    plain, cipher = MultiDigest(), MultiDigest()

    async def encrypted() -> AsyncIterator[bytes]:
        if placement.mode == "fernet":
            body = b"".join([chunk async for chunk in read_source(event, deps)])
            if len(body) > FERNET_MAX_BYTES:
                raise Permanent(f"fernet mode is for objects up to {FERNET_MAX_BYTES} bytes")
            plain.update(body)
            check_read(event, plain, final=True)
            header = Header(Algorithm.FERNET, ref, b"", chunk_size=0)
            yield fernet_encrypt(
                data_key, header, aad, body, iv=deps.rng(16), now=int(deps.now().timestamp())
            )
            return
        header = Header(
            Algorithm.AES256GCM_CHUNKED,
            ref,
            b"",
            chunk_size=deps.settings.chunk_size,
            nonce_prefix=deps.rng(7),
        )
        encryptor = StreamEncryptor(data_key, header, aad)
        async for chunk in read_source(event, deps):
            plain.update(chunk)
            check_read(event, plain, final=False)
            if out := encryptor.update(chunk):
                yield out
        # Before the last bytes go out: no store commits a write whose stream fails here.
        check_read(event, plain, final=True)
        yield encryptor.finalize()

    lease = Lease(event, deps)

    async def ciphertext() -> AsyncIterator[bytes]:
        async for chunk in encrypted():
            cipher.update(chunk)  # once, for every target: the SHA-256 recorded
            await lease.moved()
            yield chunk

    assert record.kek_key_id is not None
    metadata = {"object_id": event.object_id, "key_id": record.kek_key_id}

    def writer(target: str) -> Writer[WriteResult]:
        return partial(deps.store(target).write, key, metadata=metadata)

    teed = await tee(
        ciphertext(),
        {t: writer(t) for t in placement.targets},
        depth=deps.settings.fanout_depth,
        stall_s=deps.settings.fanout_stall_s,
        min_rate=deps.settings.fanout_min_rate,
    )
    # A target counts only if it took exactly the bytes the digests are computed from.
    good = {
        t: r
        for t, r in teed.results.items()
        if (r.size, r.sha256) == (cipher.size, cipher.sha256_hex)
    }
    if failed := [e for e in teed.detached.values() if not detachable(e)]:
        await remove(deps, key, placement.targets)
        raise failed[0]
    for target in placement.targets:
        if target not in good:
            reason = teed.detached.get(target)
            log.info(
                "target detached: replicate copies it",
                extra={**ids(event), "target": target, "reason": str(reason)[:200]},
            )
    written_to = [t for t in placement.targets if t in good]
    if not written_to:
        await remove(deps, key, placement.targets)
        errors = [e for e in teed.detached.values() if isinstance(e, MovingDataError)]
        raise errors[0] if errors else Retryable("no target took the ciphertext")
    primary = written_to[0]
    written = {
        "primary": primary,
        "key": key,
        "key_id": record.kek_key_id,
        "algorithm": "fernet" if placement.mode == "fernet" else "aes256gcm-chunked",
        "plaintext_size": plain.size,
        "plaintext_sha256": plain.sha256_hex,
        "ciphertext_size": cipher.size,
        "ciphertext_sha256": cipher.sha256_hex,
        # Each bound to ciphertext_sha256: computed from the same bytes sent, in the same pass.
        "store_digest": good[primary].store_digest,
        "replicas": {t: good[t].store_digest for t in written_to},
        "key_checked_at": key_checked_at,
    }
    stored = await deps.registry.record_written(event.object_id, event.version, written)
    if stored.written != written or tombstoned(stored):
        # Another encrypt's write counts, or the version is gone: nothing of ours stays.
        await remove(deps, key, placement.targets)
    if tombstoned(stored):
        return None, False
    if contended and stored.written == written:
        await collect_losers(event, deps, key)
    return stored.written, stored.written == written


async def remove(deps: Deps, key: str, targets: Sequence[str]) -> None:
    """Delete this attempt's key from every target (a detached write may have landed too)."""
    await asyncio.gather(*(deps.store(t).delete(key) for t in targets))


async def collect_losers(event: ObjectAccepted, deps: Deps, winner: str) -> int:
    """Delete every key under the version's prefix but ``winner`` (the recorded write's) from
    every target; return how many. Best effort: a store that fails is logged and keeps them
    until the next redelivery, or the version's removal (which removes the whole prefix)."""
    prefix = version_prefix(event.placement.tenant, event.object_id, event.version)
    collected = 0
    for target in event.placement.targets:
        store = deps.store(target)
        try:
            losers = [info.key async for info in store.list(prefix) if info.key != winner]
            for key in losers:
                await store.delete(key)
                collected += 1
        except MovingDataError as exc:
            log.warning(
                "keys of losing attempts not collected",
                extra={**ids(event), "target": target, "error": str(exc)[:200]},
            )
    if collected:
        log.info("keys of losing attempts collected", extra={**ids(event), "keys": collected})
    return collected


class Lease:
    """The version's lease, renewed as the encrypt's bytes move: at most once per
    ``progress_interval`` of the reconcile's bound, never failing the encrypt."""

    RENEW_TIMEOUT_S = 5.0

    def __init__(self, event: ObjectAccepted, deps: Deps) -> None:
        self.event, self.deps = event, deps
        after = timedelta(seconds=deps.settings.reconcile_after_s)
        self.every_s = progress_interval(after).total_seconds()
        self.renewed = deps.clock()

    async def moved(self) -> None:
        """Some bytes moved: renew the lease if it is due."""
        if self.deps.clock() - self.renewed < self.every_s:
            return
        self.renewed = self.deps.clock()
        try:
            await asyncio.wait_for(
                self.deps.catalog.record_progress(
                    self.event.object_id, self.event.version, self.deps.now()
                ),
                self.RENEW_TIMEOUT_S,
            )
        except (MovingDataError, TimeoutError) as exc:  # the next renewal tries again
            log.warning("lease not renewed", extra={**ids(self.event), "error": str(exc)[:200]})
