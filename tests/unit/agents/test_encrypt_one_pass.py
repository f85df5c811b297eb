"""Encrypt's one pass: the ciphertext goes to every target at once; a target that fails or
stalls is detached and handed to replicate; a recorded write is re-announced, never
re-encrypted."""

import asyncio
import hashlib
import os
from collections.abc import AsyncIterable, Mapping
from datetime import timedelta

import pytest

from schemas.codec import decode
from schemas.events import AuditRecord, ObjectAccepted, ObjectEncrypted, ReplicaWritten
from tests.unit.agents.conftest import ListPublisher, inline_request
from topics import ACCEPTED
from workers.agents import encrypt, ingest, replicate, sink, verify
from workers.deps import Deps, version_prefix
from workers.dispatch import Dispatcher, MessageRef, step_record
from workers.errors import Fatal, Retryable
from workers.stores.base import Tier, WriteResult
from workers.stores.memory import MemoryStore


class Target(MemoryStore):
    """A memory bucket whose writes can fail, stall or confirm a digest (real writes else)."""

    def __init__(self, bucket: str, mode: str = "ok") -> None:
        super().__init__(bucket, part_size=1000)
        self.mode = mode
        self.writes = 0
        self.asked = 0  # stored_digest requests
        self.never = asyncio.Event()

    async def write(
        self,
        key: str,
        chunks: AsyncIterable[bytes],
        *,
        metadata: Mapping[str, str] | None = None,
        tier: Tier | None = None,
    ) -> WriteResult:
        self.writes += 1
        if self.mode == "down":
            raise Retryable("store unreachable")
        if self.mode == "fatal":
            raise Fatal("credentials refused")
        if self.mode == "stall":
            await self.never.wait()
        result = await super().write(key, chunks, metadata=metadata, tier=tier)
        return WriteResult(key, result.size, result.sha256, f"test:{result.sha256}")

    async def stored_digest(self, key: str) -> str | None:
        """What this "store" computed from the bytes it holds (``ReportsDigest``)."""
        self.asked += 1
        return f"test:{hashlib.sha256(await stored(self, key)).hexdigest()}"


@pytest.fixture
async def targets(deps: Deps, unique: str) -> dict[str, Target]:
    stores = {t: Target(f"{unique}-1p-{t}") for t in ("s3", "azure", "gcs")}
    for store in stores.values():
        await store.ensure_container()
    deps.stores = stores
    deps.settings = deps.settings.model_copy(update={"fanout_stall_s": 0.05, "fanout_depth": 2})
    return stores


async def accepted(deps: Deps, data: bytes) -> ObjectAccepted:
    (out,) = await ingest.handle(inline_request(data), deps)
    assert isinstance(out.event, ObjectAccepted)
    return out.event


async def stored(store: MemoryStore, key: str) -> bytes:
    return b"".join([c async for c in store.read(key)])


async def test_every_target_is_written_in_one_pass_with_its_confirmed_digest(
    deps: Deps, targets: dict[str, Target]
) -> None:
    event = await accepted(deps, os.urandom(20_000))
    encrypted, *written = await encrypt.handle(event, deps)
    enc = encrypted.event
    assert isinstance(enc, ObjectEncrypted)
    assert enc.written_targets == ("s3", "azure", "gcs") and enc.primary == "s3"
    assert [w.topic.suffix for w in written] == [f"replicated.{t}" for t in enc.written_targets]
    for out in written:
        replica = out.event
        assert isinstance(replica, ReplicaWritten)
        assert replica.store_digest == f"test:{enc.ciphertext_sha256}"
        data = await stored(targets[replica.target], enc.key)
        assert hashlib.sha256(data).hexdigest() == enc.ciphertext_sha256
        (verified,) = await verify.handle(replica, deps)
        assert verified.event.mode == "store-digest"  # type: ignore[attr-defined]
    assert await replicate.fan_out(enc, deps) == []  # nothing left to copy
    assert all(t.writes == 1 for t in targets.values())


@pytest.mark.parametrize("mode", ["down", "stall"])
async def test_a_down_or_stalled_target_is_detached_and_copied_by_replicate(
    deps: Deps, targets: dict[str, Target], mode: str
) -> None:
    targets["azure"].mode = mode
    event = await accepted(deps, os.urandom(30_000))
    encrypted, *written = await encrypt.handle(event, deps)
    enc = encrypted.event
    assert isinstance(enc, ObjectEncrypted)
    assert enc.written_targets == ("s3", "gcs")
    assert [w.event.target for w in written] == ["s3", "gcs"]  # type: ignore[attr-defined]
    prefix = version_prefix("default", event.object_id, event.version)
    assert [i.key async for i in targets["azure"].list(prefix)] == []  # nothing committed
    (request,) = await replicate.fan_out(enc, deps)
    assert request.topic.suffix == "replicate.azure"
    targets["azure"].mode = "ok"  # it came back
    (copied,) = await replicate.handle(request.event, deps)  # type: ignore[arg-type]
    assert copied.event.store_digest == f"test:{enc.ciphertext_sha256}"  # type: ignore[attr-defined]
    assert copied.event.written_now  # type: ignore[attr-defined]
    (held,) = await replicate.handle(request.event, deps)  # type: ignore[arg-type]
    assert not held.event.written_now  # type: ignore[attr-defined]  # a redelivery copies nothing
    assert await stored(targets["azure"], enc.key) == await stored(targets["s3"], enc.key)


async def test_the_primary_is_the_first_target_written(
    deps: Deps, targets: dict[str, Target]
) -> None:
    targets["s3"].mode = "down"
    encrypted, *_ = await encrypt.handle(await accepted(deps, b"p" * 5000), deps)
    assert encrypted.event.primary == "azure"  # type: ignore[attr-defined]
    (request,) = await replicate.fan_out(encrypted.event, deps)  # type: ignore[arg-type]
    assert request.topic.suffix == "replicate.s3"


async def test_no_target_written_records_nothing_and_retries(
    deps: Deps, targets: dict[str, Target]
) -> None:
    for target in targets.values():
        target.mode = "down"
    event = await accepted(deps, b"n" * 3000)
    with pytest.raises(Retryable, match="unreachable"):
        await encrypt.handle(event, deps)
    record = await deps.registry.get(event.object_id, event.version)
    assert record is not None and record.written is None


async def test_a_fatal_target_error_is_raised_and_leaves_nothing(
    deps: Deps, targets: dict[str, Target]
) -> None:
    targets["gcs"].mode = "fatal"
    event = await accepted(deps, b"f" * 3000)
    with pytest.raises(Fatal):
        await encrypt.handle(event, deps)
    record = await deps.registry.get(event.object_id, event.version)
    assert record is not None and record.written is None
    prefix = version_prefix("default", event.object_id, event.version)
    for target in targets.values():
        assert [i async for i in target.list(prefix)] == []


async def test_a_retry_after_the_write_was_recorded_copies_and_never_re_encrypts(
    deps: Deps, targets: dict[str, Target]
) -> None:
    targets["gcs"].mode = "down"
    event = await accepted(deps, os.urandom(12_000))
    first = await encrypt.handle(event, deps)
    targets["gcs"].mode = "ok"
    again = await encrypt.handle(event, deps)  # a redelivery: the write is recorded
    assert [o.event.event_id for o in again] == [o.event.event_id for o in first]
    assert [written_now(o.event) for o in first] == [None, True, True]
    assert [written_now(o.event) for o in again] == [None, False, False]  # re-announced
    unstamped = {"produced_at": None, "written_now": False}
    assert [o.event.model_copy(update=unstamped) for o in again] == [
        o.event.model_copy(update=unstamped) for o in first
    ]
    assert targets["gcs"].writes == 1  # the failed attempt only: gcs is left to replicate
    prefix = version_prefix("default", event.object_id, event.version)
    assert [i async for i in targets["gcs"].list(prefix)] == []
    enc = again[0].event
    assert isinstance(enc, ObjectEncrypted) and enc.written_targets == ("s3", "azure")


def written_now(event: object) -> bool | None:
    return event.written_now if isinstance(event, ReplicaWritten) else None


async def test_verify_takes_a_fresh_confirmation_and_asks_the_store_of_a_re_announced_one(
    deps: Deps, targets: dict[str, Target]
) -> None:
    event = await accepted(deps, os.urandom(8_000))
    _, *fresh = await encrypt.handle(event, deps)
    _, *again = await encrypt.handle(event, deps)  # a redelivery re-announces the write
    azure = next(o.event for o in fresh if o.event.target == "azure")  # type: ignore[attr-defined]
    reannounced = next(o.event for o in again if o.event.target == "azure")  # type: ignore[attr-defined]
    assert isinstance(azure, ReplicaWritten) and isinstance(reannounced, ReplicaWritten)
    (verified,) = await verify.handle(azure, deps)
    assert verified.event.mode == "store-digest"  # type: ignore[attr-defined]
    assert targets["azure"].asked == 0  # the write's own answer: no request
    await targets["azure"].delete(azure.key)  # lost since it was written
    (verified,) = await verify.handle(reannounced, deps)
    assert targets["azure"].asked == 1  # asked again, found missing: read back and repaired
    assert verified.event.repaired_from == "s3"  # type: ignore[attr-defined]
    assert await stored(targets["azure"], azure.key) == await stored(targets["s3"], azure.key)


async def test_a_confirmation_announced_long_ago_is_asked_of_the_store_again(
    deps: Deps, targets: dict[str, Target]
) -> None:
    """An event retried or re-driven later (the same record, ``written_now`` still set)
    whose replica was lost since: the stat does not find it, the store is asked again."""
    event = await accepted(deps, os.urandom(3_000))
    _, *fresh = await encrypt.handle(event, deps)
    gcs = next(o.event for o in fresh if o.event.target == "gcs")  # type: ignore[attr-defined]
    assert isinstance(gcs, ReplicaWritten) and gcs.written_now
    later = gcs.produced_at + timedelta(days=1)
    deps.now = lambda: later
    await targets["gcs"].delete(gcs.key)  # lost since it was written
    (verified,) = await verify.handle(gcs, deps)
    assert targets["gcs"].asked == 1
    assert verified.event.repaired_from == "s3"  # type: ignore[attr-defined]


async def test_a_fresh_confirmation_of_a_deleted_version_is_not_verified(
    deps: Deps, targets: dict[str, Target]
) -> None:
    event = await accepted(deps, os.urandom(3_000))
    _, *fresh = await encrypt.handle(event, deps)
    await deps.registry.tombstone(event.object_id, event.version, "deleted")
    for out in fresh:
        assert await verify.handle(out.event, deps) == []  # type: ignore[arg-type]
    assert all(t.asked == 0 for t in targets.values())


async def test_a_source_that_changed_commits_nothing_anywhere(
    deps: Deps, targets: dict[str, Target]
) -> None:
    event = await accepted(deps, b"measured" * 100)
    changed = event.model_copy(update={"plaintext_sha256": "0" * 64})
    with pytest.raises(encrypt.SourceChanged):
        await encrypt.handle(changed, deps)
    prefix = version_prefix("default", event.object_id, event.version)
    for target in targets.values():
        assert [i async for i in target.list(prefix)] == []


async def test_the_replicas_written_by_encrypt_are_replicate_steps_in_the_trail(
    deps: Deps, targets: dict[str, Target]
) -> None:
    """The sink rebuilds each one's record as a replicate step, so the dispatcher sends no
    copy (one labelled with encrypt's stage would differ, and be sent)."""
    request = inline_request(b"t" * 4000)
    (out,) = await ingest.handle(request, deps)
    publisher = ListPublisher()
    dispatcher = Dispatcher("encrypt", publisher)
    raw = (out.event.model_dump_json()).encode()
    ref = MessageRef(ACCEPTED.suffix, 0, 1)
    await dispatcher.run(
        raw,
        ref,
        lambda raw, _ref: decode(raw, ObjectAccepted),
        lambda e: encrypt.handle(e, deps),  # type: ignore[arg-type]
    )
    audits = [decode(v, AuditRecord) for v in publisher.on("audit")]
    for value in publisher.on("replicated.s3") + publisher.on("replicated.gcs"):
        replica = decode(value, ReplicaWritten)
        step = sink.step_of(replica)
        assert step is not None and step[0] == "replicate"
        rebuilt = step_record(*step)
        assert rebuilt.event_id not in {a.event_id for a in audits}
