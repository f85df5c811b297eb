"""The checkpoint log's locked copy rests on S3 Object Lock: against the real local S3
(SeaweedFS), a checkpoint written under COMPLIANCE retention cannot be deleted, even by the
keys that wrote it, until the retention passes; a forgery written beside it does not replace
it for ``audit verify``; a bucket without Object Lock is refused."""

from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest
from botocore.exceptions import ClientError

from tests.stores import drop_locked_bucket
from workers.audit import lockcopy
from workers.errors import Fatal
from workers.settings import Settings
from workers.stores.s3 import s3_client

RETAIN_S = 4.0


@pytest.fixture
async def locked(settings: Settings, unique: str) -> AsyncIterator[Settings]:
    s = settings.model_copy(
        update={"audit_lock_bucket": f"lock-{unique}", "audit_lock_days": RETAIN_S / 86400}
    )
    await lockcopy.ensure(s)
    yield s
    await drop_locked_bucket(s, str(s.audit_lock_bucket))


def checkpoint(number: int, digest: str) -> dict[str, object]:
    return {"number": number, "digest": digest, "prev": "0" * 64, "root": "r", "size": 1}


async def test_a_locked_checkpoint_cannot_be_deleted_or_replaced(locked: Settings) -> None:
    await lockcopy.put(locked, checkpoint(1, "a" * 64), datetime.now(UTC))
    await lockcopy.put(locked, checkpoint(2, "b" * 64), datetime.now(UTC))
    bucket, key = str(locked.audit_lock_bucket), lockcopy.key_of(locked, 1)
    async with s3_client(locked) as s3:
        first = (await s3.list_object_versions(Bucket=bucket, Prefix=key))["Versions"][0]
        with pytest.raises(ClientError) as refused:
            await s3.delete_object(Bucket=bucket, Key=key, VersionId=first["VersionId"])
        assert refused.value.response["Error"]["Code"] == "AccessDenied"
        # A forgery written beside it: a newer version of the same key.
        await s3.put_object(Bucket=bucket, Key=key, Body=b'{"number": 1, "digest": "forged"}')
    found = [r async for r in lockcopy.records(locked)]
    assert [(r["number"], r["digest"]) for r in found] == [(1, "a" * 64), (2, "b" * 64)]


async def test_a_bucket_without_object_lock_is_refused(settings: Settings, unique: str) -> None:
    s = settings.model_copy(update={"audit_lock_bucket": f"plain-{unique}"})
    async with s3_client(s) as s3:
        await s3.create_bucket(Bucket=str(s.audit_lock_bucket))
        try:
            with pytest.raises(Fatal, match="Object Lock"):
                await lockcopy.ensure(s)
        finally:
            await s3.delete_bucket(Bucket=str(s.audit_lock_bucket))
