"""The checkpoint log's copy in an object-locked S3 bucket (``MOVINGDATA_AUDIT_LOCK_BUCKET``,
off unless set): each checkpoint the sink signs is also written there as one object, under
S3 Object Lock in COMPLIANCE mode for ``MOVINGDATA_AUDIT_LOCK_DAYS``, so no credential, the
sink's own or an administrator's, can delete or replace it before then. A database put back
to an older checkpoint is then caught by ``audit verify`` even when the audit topic's copy
is gone too (its retention ran out, or the broker was restored with the database).

S3 alone: Azure's immutability policies and GCS's retention policies are bucket settings of
their own, not written per object by this copy.
"""

from collections.abc import AsyncIterator, Mapping
from datetime import timedelta
from typing import Any

import orjson
from botocore.exceptions import BotoCoreError, ClientError

from workers.errors import Fatal, Retryable
from workers.settings import Settings
from workers.stores.s3 import s3_client


def key_of(settings: Settings, number: int) -> str:
    """One checkpoint's object: under the database's name, so fleets can share a bucket."""
    return f"{settings.mongo_database}/checkpoints/{number:012d}.json"


async def ensure(settings: Settings) -> None:
    """Create the bucket with Object Lock where it is missing; refuse one without it."""
    bucket = str(settings.audit_lock_bucket)
    async with s3_client(settings) as s3:
        try:
            await s3.create_bucket(Bucket=bucket, ObjectLockEnabledForBucket=True)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") not in (
                "BucketAlreadyOwnedByYou",
                "BucketAlreadyExists",
            ):
                raise Fatal(f"audit lock bucket {bucket}: {exc}") from exc
        try:
            found = await s3.get_object_lock_configuration(Bucket=bucket)
        except ClientError as exc:
            raise Fatal(f"audit lock bucket {bucket} has no Object Lock: {exc}") from exc
    if found.get("ObjectLockConfiguration", {}).get("ObjectLockEnabled") != "Enabled":
        raise Fatal(f"audit lock bucket {bucket} has no Object Lock enabled")


async def put(settings: Settings, detail: Mapping[str, Any], at: Any) -> None:
    """Write one checkpoint (its published detail), locked until ``at`` plus the retention."""
    body = orjson.dumps(dict(detail), option=orjson.OPT_SORT_KEYS)
    until = at + timedelta(days=settings.audit_lock_days)
    try:
        async with s3_client(settings) as s3:
            await s3.put_object(
                Bucket=str(settings.audit_lock_bucket),
                Key=key_of(settings, int(detail["number"])),
                Body=body,
                ContentType="application/json",
                ObjectLockMode="COMPLIANCE",
                ObjectLockRetainUntilDate=until,
                ChecksumAlgorithm="SHA256",
            )
    except (ClientError, BotoCoreError) as exc:
        raise Retryable(f"audit lock copy of checkpoint {detail['number']}: {exc}") from exc


async def records(settings: Settings) -> AsyncIterator[dict[str, Any]]:
    """Every checkpoint in the bucket for this database, by number: each key's oldest version
    (S3 lists a key's versions newest first), as a later one could only be a forgery written
    beside the locked one."""
    bucket = str(settings.audit_lock_bucket)
    prefix = key_of(settings, 0).rsplit("/", 1)[0] + "/"
    async with s3_client(settings) as s3:
        paginator = s3.get_paginator("list_object_versions")
        firsts: dict[str, str] = {}
        async for page in paginator.paginate(Bucket=bucket, Prefix=prefix):
            for version in page.get("Versions", []):
                firsts[version["Key"]] = version["VersionId"]  # the last listed: the oldest
        for key in sorted(firsts):
            got = await s3.get_object(Bucket=bucket, Key=key, VersionId=firsts[key])
            async with got["Body"] as stream:
                yield orjson.loads(await stream.read())
