"""Idempotent encrypt, key rotation without rewriting ciphertext, crypto-shredding."""

import os

import pytest

from tests.unit.agents.conftest import inline_request
from tests.unit.agents.test_handlers import plaintext_of, run_chain
from workers.agents import encrypt, ingest
from workers.deps import Deps
from workers.errors import NotFound
from workers.keyregistry import rotate_all


async def test_redelivered_encrypt_does_not_write_again(deps: Deps) -> None:
    (accepted,) = await ingest.handle(inline_request(os.urandom(9000)), deps)
    (first,) = await encrypt.handle(accepted.event, deps)
    stored = b"".join([c async for c in deps.store("s3").read(first.event.key)])
    (again,) = await encrypt.handle(accepted.event, deps)
    assert again.event == first.event.model_copy(update={"produced_at": again.event.produced_at})
    assert b"".join([c async for c in deps.store("s3").read(first.event.key)]) == stored


async def test_encrypt_after_a_lost_write_reuses_the_registered_key(deps: Deps) -> None:
    (accepted,) = await ingest.handle(inline_request(b"a" * 5000), deps)
    (first,) = await encrypt.handle(accepted.event, deps)
    record = await deps.registry.get(first.event.object_id, 1)
    await deps.store("s3").delete(first.event.key)
    (again,) = await encrypt.handle(accepted.event, deps)
    assert await deps.registry.get(first.event.object_id, 1) is not None
    assert (await deps.registry.get(first.event.object_id, 1)).kek_key_id == record.kek_key_id  # type: ignore[union-attr]
    assert await plaintext_of(deps, "s3", again.event) == b"a" * 5000


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


async def test_forgotten_key_makes_every_replica_unreadable(deps: Deps) -> None:
    out = await run_chain(inline_request(b"secret " * 1000), deps)
    (enc,) = out["encrypted"]
    assert await deps.registry.forget(enc.object_id, 1)
    for target in deps.stores:
        with pytest.raises(NotFound, match="never written or forgotten"):
            await plaintext_of(deps, target, enc)
