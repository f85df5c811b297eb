"""One data key per object version, ever: racing encrypts, rotation, tombstones."""

import asyncio
import os
from collections.abc import AsyncIterator
from dataclasses import replace

import pytest

from schemas.events import DeleteRequest, ObjectAccepted
from tests.unit.agents.conftest import inline_request
from tests.unit.agents.test_handlers import plaintext_of, run_chain
from workers.agents import delete, encrypt, ingest, replicate, tier, verify
from workers.deps import Deps, version_prefix
from workers.dispatch import stamp
from workers.errors import NotFound, Retryable
from workers.kms.keyregistry import (
    WRAP_MAX_AGE_S,
    DataKeyRecord,
    MemoryKeyRegistry,
    rotate_all,
)


class InterleavingRegistry(MemoryKeyRegistry):
    """Yields to the event loop in every call, so two encrypts interleave at each step."""

    async def get(self, object_id: str, version: int) -> DataKeyRecord | None:
        await asyncio.sleep(0)
        return await super().get(object_id, version)

    async def insert(self, record: DataKeyRecord) -> DataKeyRecord:
        await asyncio.sleep(0)
        return await super().insert(record)

    async def record_written(self, object_id: str, version: int, written: dict) -> DataKeyRecord:  # type: ignore[type-arg]
        await asyncio.sleep(0)
        return await super().record_written(object_id, version, written)


async def accepted_of(data: bytes, deps: Deps) -> ObjectAccepted:
    (accepted,) = await ingest.handle(inline_request(data), deps)
    assert isinstance(accepted.event, ObjectAccepted)
    return accepted.event


async def keys_under(deps: Deps, target: str, prefix: str) -> list[str]:
    return [info.key async for info in deps.store(target).list(prefix)]


async def test_redelivered_encrypt_does_not_write_again(deps: Deps) -> None:
    accepted = await accepted_of(os.urandom(9000), deps)
    first, *_ = await encrypt.handle(accepted, deps)
    stored = b"".join([c async for c in deps.store("s3").read(first.event.key)])
    again, *_ = await encrypt.handle(accepted, deps)
    assert again.event == first.event.model_copy(update={"produced_at": again.event.produced_at})
    assert b"".join([c async for c in deps.store("s3").read(first.event.key)]) == stored


async def test_a_recorded_write_is_re_announced_never_re_encrypted(deps: Deps) -> None:
    accepted = await accepted_of(b"a" * 5000, deps)
    first, *_ = await encrypt.handle(accepted, deps)
    record = await deps.registry.get(accepted.object_id, accepted.version)
    await deps.store("s3").delete(first.event.key)  # the primary lost it
    again, *_ = await encrypt.handle(accepted, deps)
    assert again.event.key == first.event.key
    assert again.event.ciphertext_sha256 == first.event.ciphertext_sha256
    assert await deps.registry.get(accepted.object_id, accepted.version) == record
    prefix = version_prefix("default", accepted.object_id, accepted.version)
    assert await keys_under(deps, "s3", prefix) == []  # nothing new written


async def test_racing_encrypts_share_one_key_and_one_recorded_write(deps: Deps) -> None:
    deps.registry = InterleavingRegistry()
    data = os.urandom(20_000)
    accepted = await accepted_of(data, deps)
    a, b = await asyncio.gather(encrypt.handle(accepted, deps), encrypt.handle(accepted, deps))
    one, two = a[0], b[0]
    assert one.event.key == two.event.key
    assert one.event.ciphertext_sha256 == two.event.ciphertext_sha256
    prefix = version_prefix("default", accepted.object_id, accepted.version)
    assert await keys_under(deps, "s3", prefix) == [one.event.key]  # the loser removed its own
    assert await plaintext_of(deps, "s3", one.event) == data


async def test_a_slow_wrap_is_not_registered(deps: Deps) -> None:
    ticks = iter([0.0, WRAP_MAX_AGE_S + 1])
    deps.clock = lambda: next(ticks)
    accepted = await accepted_of(b"late", deps)
    with pytest.raises(Retryable, match="wrapping the data key took over"):
        await encrypt.handle(accepted, deps)
    assert await deps.registry.get(accepted.object_id, accepted.version) is None


async def test_rotation_rewraps_keys_without_touching_ciphertext(deps: Deps) -> None:
    data = os.urandom(20_000)
    out = await run_chain(inline_request(data), deps)
    (enc,) = out["encrypted"]
    before = {t: b"".join([c async for c in deps.store(t).read(enc.key)]) for t in deps.stores}
    old = await deps.registry.get(enc.object_id, 1)
    newest, rewrapped = await rotate_all(deps.registry, deps.kek)
    assert [r.object_id for r in rewrapped] == [enc.object_id]
    record = await deps.registry.get(enc.object_id, 1)
    assert record is not None and old is not None
    assert record.kek_key_id == newest != old.kek_key_id and record.wrapped != old.wrapped
    after = {t: b"".join([c async for c in deps.store(t).read(enc.key)]) for t in deps.stores}
    assert after == before
    await deps.kek.disable(1)  # type: ignore[attr-defined]
    for target in deps.stores:
        assert await plaintext_of(deps, target, enc) == data


async def test_disable_old_waits_out_a_wrap_made_before_the_rotation(deps: Deps) -> None:
    """A key wrapped under the old KEK version but registered mid-rotation is re-wrapped too,
    before the old version is disabled: nothing is left undecryptable."""
    out = await run_chain(inline_request(b"before"), deps)
    straggler = inline_request(b"in flight", name="late.bin")
    late_key = os.urandom(32)
    kek_key_id, wrapped = await deps.kek.wrap(late_key)  # wrapped before the rotation
    clock = [0.0]
    waits = []

    async def wait(seconds: float) -> None:  # the encrypt registers its key meanwhile
        waits.append(seconds)
        clock[0] += seconds
        record = DataKeyRecord(straggler.object_id, 1, kek_key_id, wrapped, deps.now())
        await deps.registry.insert(record)

    newest, _ = await rotate_all(
        deps.registry, deps.kek, disable_old=True, clock=lambda: clock[0], wait=wait
    )
    assert waits == [WRAP_MAX_AGE_S]
    records = [r async for r in deps.registry.all()]
    assert {r.kek_key_id for r in records} == {newest}
    late = await deps.registry.get(straggler.object_id, 1)
    assert late is not None and late.wrapped is not None
    assert await deps.kek.unwrap(newest, late.wrapped) == late_key
    (enc,) = out["encrypted"]
    assert await plaintext_of(deps, "gcs", enc) == b"before"


async def test_a_rewrap_is_a_compare_and_set(deps: Deps) -> None:
    await run_chain(inline_request(b"x"), deps)
    (record,) = [r async for r in deps.registry.all()]
    assert record.kek_key_id is not None and record.wrapped is not None
    kek_key_id, wrapped = await deps.kek.rewrap(record.kek_key_id, record.wrapped)
    assert await deps.registry.rewrap(record, kek_key_id, wrapped)
    assert not await deps.registry.rewrap(record, kek_key_id, wrapped)  # read before: stale


def forget_request(accepted: ObjectAccepted, mode: str = "forget") -> DeleteRequest:
    return stamp(  # type: ignore[return-value]
        DeleteRequest,
        accepted,
        mode,
        mode=mode,
        tenant="default",
        targets=("s3", "azure", "gcs"),
    )


async def tombstone(deps: Deps, accepted: ObjectAccepted, mode: str = "forget") -> None:
    outs = await delete.tombstone(forget_request(accepted, mode), deps)
    for out in outs:
        if out.topic.suffix == "remove":
            await delete.remove(out.event, deps)  # type: ignore[arg-type]


async def test_forget_makes_every_replica_unreadable_and_nothing_brings_it_back(
    deps: Deps,
) -> None:
    request = inline_request(b"secret " * 1000)
    out = await run_chain(request, deps)
    (enc,) = out["encrypted"]
    (replayed,) = await ingest.handle(request, deps)  # the same request: the same version
    accepted = replayed.event
    assert isinstance(accepted, ObjectAccepted) and accepted.version == 1
    await tombstone(deps, accepted)
    prefix = version_prefix("default", enc.object_id, 1)
    for target in deps.stores:
        assert await keys_under(deps, target, prefix) == []
        with pytest.raises(NotFound):
            await plaintext_of(deps, target, enc)
    record = await deps.registry.get(enc.object_id, 1)
    assert record is not None and record.tombstone == "shredded" and record.wrapped is None
    # A replay of every step: no key, no replica, no verification, no repair.
    assert await encrypt.handle(accepted, deps) == []
    assert await deps.registry.get(enc.object_id, 1) == record
    for one in replicate.per_target(enc):
        assert await replicate.handle(one, deps) == []
    for written in out["written"]:
        assert await verify.handle(written, deps) == []
    for verified in out["verified"]:
        assert await tier.handle(verified, deps) == []
    for target in deps.stores:
        assert await keys_under(deps, target, prefix) == []


async def test_shredded_outranks_deleted(deps: Deps) -> None:
    accepted = await accepted_of(b"x", deps)
    await tombstone(deps, accepted, "delete")
    assert (await deps.registry.get(accepted.object_id, 1)).tombstone == "deleted"  # type: ignore[union-attr]
    await tombstone(deps, accepted, "forget")
    await tombstone(deps, accepted, "delete")
    assert (await deps.registry.get(accepted.object_id, 1)).tombstone == "shredded"  # type: ignore[union-attr]


async def test_a_version_tombstoned_before_encrypt_never_gets_a_key(deps: Deps) -> None:
    accepted = await accepted_of(b"too late", deps)
    await tombstone(deps, accepted, "delete")
    assert await encrypt.handle(accepted, deps) == []
    record = await deps.registry.get(accepted.object_id, 1)
    assert record is not None and record.wrapped is None and record.written is None


async def test_a_copy_racing_a_delete_removes_what_it_wrote(deps: Deps) -> None:
    """replicate checks the tombstone again after copying: a delete that landed during the
    copy leaves no replica behind."""
    accepted = await accepted_of(os.urandom(5000), deps)
    encrypted, *_ = await encrypt.handle(accepted, deps)
    # As if azure was detached from encrypt's pass: replicate copies it.
    detached = encrypted.event.model_copy(update={"written_targets": ("s3", "gcs")})
    (azure_copy,) = replicate.per_target(detached)
    await deps.store("azure").delete(encrypted.event.key)
    store = deps.store("azure")
    write = store.write

    async def write_then_delete_lands(key: str, chunks: AsyncIterator[bytes], **kw: object):  # type: ignore[no-untyped-def]
        result = await write(key, chunks, **kw)  # type: ignore[arg-type]
        await deps.registry.tombstone(accepted.object_id, 1, "deleted")
        return result

    store.write = write_then_delete_lands  # type: ignore[method-assign]
    assert await replicate.handle(azure_copy, deps) == []
    assert await keys_under(deps, "azure", version_prefix("default", accepted.object_id, 1)) == []


def test_record_repr_shows_no_key_material() -> None:
    record = DataKeyRecord("o", 1, "local:k:v1", b"wrapped-secret", None)  # type: ignore[arg-type]
    assert "wrapped-secret" not in repr(replace(record))
