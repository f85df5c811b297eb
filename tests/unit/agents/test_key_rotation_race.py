"""The rotation guard covers wrap to registration: a rotation (with --disable-old) that runs
between a data key's wrap and its registration never leaves that key wrapped under a disabled
KEK version."""

import os

import pytest

from tests.unit.agents.conftest import inline_request
from tests.unit.agents.test_handlers import plaintext_of, run_chain
from workers.agents import encrypt, ingest
from workers.deps import Deps
from workers.errors import Permanent, Retryable
from workers.kms.keyregistry import (
    WRAP_MAX_AGE_S,
    DataKeyRecord,
    KeyRegistry,
    MemoryKeyRegistry,
    rotate_all,
)
from workers.kms.keys import KeyEncryptionKey


class RotatingDuringInsert(MemoryKeyRegistry):
    """The first insert is slow: the encrypt's clock passes ``late_by`` beyond the bound, and
    a whole ``keys rotate --disable-old`` runs (its listing cannot see the key yet) before
    the insert lands."""

    def __init__(self, kek: KeyEncryptionKey, clock: list[float], late_by: float) -> None:
        super().__init__()
        self.kek, self.clock, self.late_by = kek, clock, late_by
        self.rotated: str | None = None

    async def insert(self, record: DataKeyRecord) -> DataKeyRecord:
        if self.rotated is None:
            self.clock[0] += WRAP_MAX_AGE_S + self.late_by
            rotation_clock = [0.0]

            async def wait(seconds: float) -> None:
                rotation_clock[0] += seconds

            self.rotated, _ = await rotate_all(
                MemoryKeyRegistry(),  # the listing: this key is not registered yet
                self.kek,
                disable_old=True,
                clock=lambda: rotation_clock[0],
                wait=wait,
            )
        return await super().insert(record)


async def test_a_rotation_between_wrap_and_registration_leaves_no_key_under_a_disabled_kek(
    deps: Deps,
) -> None:
    clock = [0.0]
    deps.clock = lambda: clock[0]
    registry = deps.registry = RotatingDuringInsert(deps.kek, clock, late_by=1.0)
    data = os.urandom(10_000)
    out = await run_chain(inline_request(data), deps)
    (enc,) = out["encrypted"]
    assert registry.rotated == "local:movingdata:v2"
    record = await registry.get(enc.object_id, enc.version)
    assert record is not None and record.kek_key_id == registry.rotated
    with pytest.raises(Permanent, match="disabled"):  # the version the first wrap used
        await deps.kek.unwrap("local:movingdata:v1", b"\0" * 60)
    for target in deps.stores:  # restorable: the key is wrapped under the enabled version
        assert await plaintext_of(deps, target, enc) == data


async def test_a_late_registration_that_a_rotation_rewrapped_meanwhile_keeps_the_key(
    deps: Deps,
) -> None:
    """The encrypt's compare-and-set loses to a rotation's re-wrap of the same key: it uses
    the key as stored, which is its own data key."""
    clock = [0.0]
    deps.clock = lambda: clock[0]

    class RewrappedBeforeTheFix(MemoryKeyRegistry):
        async def rewrap(self, record: DataKeyRecord, kek_key_id: str, wrapped: bytes) -> bool:
            if record.kek_key_id == "local:movingdata:v1":  # the rotation's, first
                assert record.wrapped is not None
                rotated_id, rotated = await deps.kek.rewrap(record.kek_key_id, record.wrapped)
                assert await super().rewrap(record, rotated_id, rotated)
            return await super().rewrap(record, kek_key_id, wrapped)

    class Late(RewrappedBeforeTheFix):
        async def insert(self, record: DataKeyRecord) -> DataKeyRecord:
            clock[0] += WRAP_MAX_AGE_S + 1
            await deps.kek.rotate()
            return await super().insert(record)

    deps.registry = Late()
    data = os.urandom(3000)
    out = await run_chain(inline_request(data), deps)
    (enc,) = out["encrypted"]
    record = await deps.registry.get(enc.object_id, enc.version)
    assert record is not None and record.kek_key_id == "local:movingdata:v2"
    await deps.kek.disable_below(2)
    assert await plaintext_of(deps, "azure", enc) == data


async def test_registration_late_every_time_is_retried(deps: Deps) -> None:
    clock = [0.0]
    deps.clock = lambda: clock[0]

    class AlwaysLate(MemoryKeyRegistry):
        async def insert(self, record: DataKeyRecord) -> DataKeyRecord:
            clock[0] += WRAP_MAX_AGE_S + 1
            return await super().insert(record)

        async def rewrap(self, record: DataKeyRecord, kek_key_id: str, wrapped: bytes) -> bool:
            clock[0] += WRAP_MAX_AGE_S + 1
            return await super().rewrap(record, kek_key_id, wrapped)

    deps.registry = AlwaysLate()
    (accepted,) = await ingest.handle(inline_request(b"slow"), deps)
    with pytest.raises(Retryable, match="registering the data key took over"):
        await encrypt.handle(accepted.event, deps)  # type: ignore[arg-type]
    for target in deps.stores:  # nothing was written with the key
        assert [info.key async for info in deps.store(target).list("")] == []


async def test_the_disable_waits_the_bound_from_the_rotations_answer(deps: Deps) -> None:
    """A wrap asked for just before the rotation took effect may register up to the bound
    after it: the wait counts from the rotation's answer, not from before it was asked."""
    clock = [0.0]
    waits: list[float] = []
    kek = deps.kek
    rotate = kek.rotate

    async def slow_rotate() -> str:
        clock[0] += 4.0
        return await rotate()

    kek.rotate = slow_rotate  # type: ignore[method-assign]

    async def wait(seconds: float) -> None:
        waits.append(seconds)
        clock[0] += seconds

    registry: KeyRegistry = MemoryKeyRegistry()
    await rotate_all(registry, kek, disable_old=True, clock=lambda: clock[0], wait=wait)
    assert waits == [WRAP_MAX_AGE_S]
