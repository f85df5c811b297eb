"""A version is not verified until its registered data key has been unwrapped once: encrypt
unwraps the key as the registry holds it before writing a byte, and records when
(``key_checked_at``); the version's state requires it."""

import os
from dataclasses import replace
from datetime import UTC, datetime

import pytest

from schemas.events import ObjectEncrypted
from tests.unit.agents.conftest import inline_request
from tests.unit.agents.test_handlers import plaintext_of, run_chain
from workers.agents import encrypt, ingest
from workers.agents.sink import changes_state, update_document
from workers.core.versions import version_state
from workers.deps import Deps
from workers.dispatch import stamp
from workers.errors import IntegrityError, Permanent
from workers.kms.keyregistry import DataKeyRecord, MemoryKeyRegistry

GOOD = {"verified_at": 1, "verdict": "good", "checked_at": 1}
EVERY_REPLICA_GOOD = {"targets": ["s3", "gcs"], "replicas": {"s3": GOOD, "gcs": GOOD}}


def test_every_replica_good_is_not_verified_without_the_key_check() -> None:
    accepted = {**EVERY_REPLICA_GOOD, "accepted_at": 1}
    assert version_state(accepted) == "pending"  # the encryption and its key check not seen
    assert version_state({**accepted, "encrypted_at": 2, "key_checked_at": 2}) == "verified"
    # a document from before key checks: its encryption recorded with none
    assert version_state({**accepted, "encrypted_at": 2}) == "verified"
    assert version_state({**accepted, "key_checked_at": 2, "deleted_at": 3}) == "deleted"


async def test_encrypt_unwraps_the_registered_key_once_and_records_it(deps: Deps) -> None:
    unwraps: list[str] = []
    unwrap = deps.kek.unwrap

    async def counted(key_id: str, wrapped: bytes) -> bytes:
        unwraps.append(key_id)
        return await unwrap(key_id, wrapped)

    deps.kek.unwrap = counted  # type: ignore[method-assign]
    data = os.urandom(5000)
    (accepted,) = await ingest.handle(inline_request(data), deps)
    encrypted, *_ = await encrypt.handle(accepted.event, deps)  # type: ignore[arg-type]
    assert isinstance(encrypted.event, ObjectEncrypted)
    assert unwraps == ["local:movingdata:v1"]
    checked = encrypted.event.key_checked_at
    assert checked is not None and checked.tzinfo is not None
    again, *_ = await encrypt.handle(accepted.event, deps)  # type: ignore[arg-type]
    assert again.event.key_checked_at == checked  # re-announced as recorded, exactly


class StoresAnotherWrapping(MemoryKeyRegistry):
    """Answers an insert with the record asked for but keeps another key's wrapping (a lost
    or crossed write): what the registry holds is not what the encrypt holds."""

    def __init__(self, other: tuple[str, bytes]) -> None:
        super().__init__()
        self.other = other

    async def insert(self, record: DataKeyRecord) -> DataKeyRecord:
        await super().insert(replace(record, kek_key_id=self.other[0], wrapped=self.other[1]))
        return record


async def test_a_registered_key_other_than_the_one_held_is_never_written_with(
    deps: Deps,
) -> None:
    deps.registry = StoresAnotherWrapping(await deps.kek.wrap(os.urandom(32)))
    (accepted,) = await ingest.handle(inline_request(b"secret"), deps)
    with pytest.raises(IntegrityError, match="registered data key is not the one"):
        await encrypt.handle(accepted.event, deps)  # type: ignore[arg-type]
    for target in deps.stores:
        assert [info.key async for info in deps.store(target).list("")] == []


async def test_a_registered_key_that_cannot_be_unwrapped_is_never_written_with(
    deps: Deps,
) -> None:
    """Its KEK version disabled right after the registration (an operator, a rotation):
    nothing is encrypted with a key no restore could recover."""
    kek = deps.kek

    class DisabledAfterInsert(MemoryKeyRegistry):
        async def insert(self, record: DataKeyRecord) -> DataKeyRecord:
            stored = await super().insert(record)
            await kek.rotate()
            await kek.disable_below(2)
            return stored

    deps.registry = DisabledAfterInsert()
    (accepted,) = await ingest.handle(inline_request(b"never readable"), deps)
    with pytest.raises(Permanent, match="disabled"):
        await encrypt.handle(accepted.event, deps)  # type: ignore[arg-type]
    for target in deps.stores:
        assert [info.key async for info in deps.store(target).list("")] == []


async def test_the_chain_records_the_check_and_restores(deps: Deps) -> None:
    data = os.urandom(9000)
    out = await run_chain(inline_request(data), deps)
    (enc,) = out["encrypted"]
    assert enc.key_checked_at is not None
    assert await plaintext_of(deps, "gcs", enc) == data


def test_the_sink_records_the_key_check_and_recomputes_the_state() -> None:
    request = inline_request(b"x")
    at = datetime(2026, 12, 7, tzinfo=UTC)
    encrypted = stamp(ObjectEncrypted, request, "e", version=1, placement=request.placement,
                      primary="s3", key="k", key_id="local:k:v1", algorithm="aes256gcm-chunked",
                      plaintext_size=1, plaintext_sha256="0" * 64, ciphertext_sha256="1" * 64,
                      ciphertext_size=9, key_checked_at=at)  # fmt: skip
    update = update_document(encrypted)
    assert update is not None and update["$min"]["key_checked_at"] == at
    assert changes_state(encrypted)  # verified events may have come first
    before = encrypted.model_copy(update={"key_checked_at": None})  # an older encrypt's
    update = update_document(before)
    assert update is not None and "key_checked_at" not in update["$min"] | update["$set"]
