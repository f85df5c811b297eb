"""What is held cannot be deleted, at the store: a store that holds objects (``Holds``)
refuses to delete a held one until its legal hold is released and its retention passes, and
refuses to shorten the retention. S3 Object Lock against SeaweedFS; Azure and GCS where the
local emulator enforces holds, skipped with the emulator's own answer where it does not.
The stack's normal buckets never hold (a versioned bucket would turn deletes into markers)."""

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest

from tests.contract.conftest import make_store
from tests.stores import drop_locked_bucket, remove_container
from tests.waiting import wait_for
from workers.errors import AccessDenied, MovingDataError
from workers.settings import Settings
from workers.stores.base import Holds, ObjectStore
from workers.stores.s3 import S3Store, s3_client

RETAIN_S = 3.0
KEY = "default/o1/v1/w1"


async def body() -> AsyncIterator[bytes]:
    yield b"held" * 100


async def test_a_normal_bucket_holds_nothing(store: ObjectStore) -> None:
    assert not isinstance(store, Holds) or not await store.can_hold()


@pytest.fixture
async def locked_s3(settings: Settings, unique: str) -> AsyncIterator[S3Store]:
    """An S3 store on a bucket made with Object Lock, dropped once its retentions pass."""
    bucket = f"held-{unique}"
    async with s3_client(settings) as s3:
        await s3.create_bucket(Bucket=bucket, ObjectLockEnabledForBucket=True)
    store = make_store("s3", bucket, settings)
    assert isinstance(store, S3Store)
    yield store
    await store.close()
    await drop_locked_bucket(settings, bucket)


async def test_s3_refuses_to_delete_a_held_object(locked_s3: S3Store) -> None:
    store = locked_s3
    assert await store.can_hold()
    await store.write(KEY, body())
    until = datetime.now(UTC) + timedelta(seconds=RETAIN_S)
    await store.hold(KEY, until, legal_hold=True)
    with pytest.raises(AccessDenied):
        await store.delete(KEY)
    with pytest.raises(AccessDenied):  # COMPLIANCE: nobody shortens it
        await store.hold(KEY, until - timedelta(seconds=2), legal_hold=True)
    assert b"".join([c async for c in store.read(KEY)]) == b"held" * 100
    await store.hold(KEY, None, legal_hold=False)  # the legal hold released: retention stays

    async def deleted() -> bool:
        try:
            await store.delete(KEY)
        except AccessDenied:
            return False
        return True

    await wait_for(deleted, timeout_s=RETAIN_S + 30)
    assert [i async for i in store.list("default/")] == []


@pytest.mark.parametrize(("backend", "emulator"), [("azure", "Azurite"), ("gcs", "fake-gcs")])
async def test_the_emulators_holds_or_why_not(
    backend: str, emulator: str, settings: Settings, unique: str
) -> None:
    """Azure and GCS hold through the SDK's calls (immutability policy and legal hold; object
    retention and temporary hold); the local emulators are asked, and their answer is the
    skip's reason when they do not refuse the delete."""
    store = make_store(backend, unique, settings)
    assert isinstance(store, Holds)
    await store.ensure_container()
    try:
        await store.write(KEY, body())
        until = datetime.now(UTC) + timedelta(seconds=RETAIN_S)
        try:
            await store.hold(KEY, until, legal_hold=True)
        except MovingDataError as exc:
            answer = str(exc.__cause__ or exc).splitlines()[0]
            pytest.skip(f"{emulator} cannot hold an object: {answer}")
        try:
            await store.delete(KEY)
        except AccessDenied:
            return  # refused, as the cloud does
        lockable = await store.can_hold()
        pytest.skip(
            f"{emulator} took the hold and then deleted the held object (bucket holds: {lockable})"
        )
    finally:
        await remove_container(store, backend, unique, settings)
