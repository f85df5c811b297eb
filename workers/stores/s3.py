"""S3 (SeaweedFS locally) through aiobotocore.

Every write is SSE-KMS with ``settings.s3_kms_key_id`` and every PutObject/UploadPart carries
its SHA-256, so the service rejects bytes damaged in transit (BadDigest). The ChecksumSHA256 the
service returns for the object (for multipart, the composite of its part checksums) must equal
the one computed here from the bytes sent: that is the store digest verify trusts.
"""

import asyncio
import base64
import hashlib
from collections.abc import AsyncIterable, AsyncIterator, Iterator, Mapping, Sequence
from contextlib import AsyncExitStack, contextmanager, suppress
from datetime import datetime
from typing import Any

import aiohttp
from aiobotocore.config import AioConfig
from aiobotocore.session import AioSession, ClientCreatorContext
from botocore import exceptions as boto
from botocore.exceptions import ClientError

from workers.core.digests import S3_SHA256, s3_checksum_sha256, store_digest
from workers.errors import AccessDenied, Fatal, MovingDataError, NotFound, Permanent, Retryable
from workers.settings import Settings
from workers.stores import fixed_blocks, overlapped, prepend
from workers.stores.base import ObjectInfo, Tier, WriteResult

MiB = 1024 * 1024
DEFAULT_PART_SIZE = 8 * MiB
MIN_PART_SIZE = 5 * MiB  # S3's minimum for every part but the last
# Parts are independent requests: two in flight keep the connection busy while one is answered.
PARTS_IN_FLIGHT = 2
_READ_CHUNK = 1 * MiB

_STORAGE_CLASS = {
    Tier.HOT: "STANDARD",
    Tier.WARM: "STANDARD_IA",
    Tier.COLD: "GLACIER_IR",
    Tier.ARCHIVE: "DEEP_ARCHIVE",
}
_TIER = {cls: tier for tier, cls in _STORAGE_CLASS.items()}

_NOT_FOUND = {"NoSuchKey", "NoSuchBucket", "NoSuchUpload", "NotFound", "404"}
# Besides 429 and 5xx. BadDigest: bytes damaged in transit; PreconditionFailed: the object
# changed during set_tier; RequestTimeout and Throttling come back as 400 on S3.
_RETRYABLE = {"BadDigest", "PreconditionFailed", "RequestTimeout", "Throttling", "SlowDown"}
_SDK_ERRORS = (boto.BotoCoreError, ClientError, aiohttp.ClientError, OSError)
# Refused or reset connections and timeouts; then bodies cut short or damaged on the way.
_NETWORK_ERRORS = (boto.ConnectionError, boto.HTTPClientError, aiohttp.ClientError, OSError)
_DAMAGED = (boto.IncompleteReadError, boto.FlexibleChecksumError)

# A few SDK retries per request (rclone's "low-level retries") so one failed part does not
# restart a whole upload; what still fails is handed to the dispatcher as Retryable.
_CONFIG = AioConfig(
    connect_timeout=10, read_timeout=60, retries={"mode": "standard", "max_attempts": 3}
)
# Credentials missing, half-set or naming an unknown profile: no request can succeed.
_NO_CREDENTIALS = (boto.NoCredentialsError, boto.PartialCredentialsError, boto.ProfileNotFound)


def _keys(settings: Settings) -> tuple[str, str] | None:
    """The access and secret key to sign with; ``None`` leaves them to the AWS default chain."""
    access, secret = settings.s3_access_key, settings.s3_secret_key
    if access is not None and secret is not None:
        return access.get_secret_value(), secret.get_secret_value()
    if access is not None or secret is not None:
        raise Fatal("set both MOVINGDATA_S3_ACCESS_KEY and MOVINGDATA_S3_SECRET_KEY, or neither")
    if settings.s3_url is not None:
        return None
    from workers.stack.services import SeaweedFS  # only the local stack generates keys

    try:
        return SeaweedFS(settings).credentials()
    except (OSError, KeyError) as exc:
        raise Fatal("no S3 credentials: set MOVINGDATA_S3_* or start the local stack") from exc


def s3_client(settings: Settings, config: AioConfig | None = None) -> ClientCreatorContext:
    """An aiobotocore S3 client (an async context) signing with the keys from settings.

    Without keys: against the local stack (``s3_url`` unset) the keys it generated, else the
    AWS default chain (environment, shared config and credentials files read with
    ``s3_profile``, container or instance role, IRSA web identity).
    """
    secrets = {}
    if (keys := _keys(settings)) is not None:
        secrets = {"aws_access_key_id": keys[0], "aws_secret_access_key": keys[1]}
    return AioSession(profile=settings.s3_profile).create_client(
        "s3",
        endpoint_url=settings.s3_endpoint,
        region_name=settings.s3_region,
        config=config,
        **secrets,
    )


def _code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def _translate(exc: BaseException, what: str) -> MovingDataError:
    """Map an SDK or network error to the project's tree (cf. rclone's ``shouldRetry``)."""
    if isinstance(exc, ClientError):
        code = _code(exc)
        status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0))
        message = f"s3 {what}: {code or status}"
        if code in _NOT_FOUND or status == 404:
            return NotFound(message)
        refused = code.startswith(("KMS.", "Authorization")) or code == "InvalidObjectState"
        if status in (401, 403) or refused:
            return AccessDenied("s3", message)
        if code in _RETRYABLE or status == 429 or status >= 500:
            return Retryable(message)
        return Permanent(message)
    message = f"s3 {what}: {type(exc).__name__}"
    if isinstance(exc, _NO_CREDENTIALS):
        return Fatal(message)
    if isinstance(exc, _NETWORK_ERRORS + _DAMAGED):
        return Retryable(message)
    return Permanent(message)  # e.g. ParamValidationError: this call can never succeed


@contextmanager
def _boundary(what: str) -> Iterator[None]:
    """Translate SDK and network errors raised inside, keeping the original as the cause."""
    try:
        yield
    except _SDK_ERRORS as exc:
        raise _translate(exc, what) from exc


def _b64(digest: bytes) -> str:
    return base64.b64encode(digest).decode()


def _confirmed(key: str, ours: str, reported: str | None) -> str | None:
    """Our checksum as a store digest when the service reported the same one; ``None`` when it
    reported none (nothing confirmed); ``Retryable`` when it reported another."""
    if reported is None:
        return None
    if reported != ours:
        raise Retryable(f"s3 write {key}: stored ChecksumSHA256 differs from the bytes sent")
    return store_digest(S3_SHA256, ours)


def _listed(obj: Mapping[str, Any]) -> ObjectInfo:
    """An object of a listing. Its ETag is no MD5 of a multipart or an SSE-KMS object: no
    digest from it."""
    tier = _TIER.get(obj.get("StorageClass", "STANDARD"))
    modified = obj.get("LastModified")
    return ObjectInfo(obj["Key"], obj["Size"], tier, {}, modified, f"etag:{obj['ETag']}")


class S3Store:
    """One S3 bucket. Objects under ``part_size`` go up in one PutObject, larger ones multipart.

    ``list()`` leaves metadata empty (ListObjectsV2 does not return it): use ``stat()``.
    """

    name = "s3"

    def __init__(
        self, bucket: str, settings: Settings, *, part_size: int = DEFAULT_PART_SIZE
    ) -> None:
        if part_size < MIN_PART_SIZE:
            raise ValueError(f"S3 part_size must be at least {MIN_PART_SIZE} bytes")
        self.bucket = bucket
        self.url = f"s3://{bucket}"
        self.part_size = part_size
        self._settings = settings
        self._sse = {"ServerSideEncryption": "aws:kms", "SSEKMSKeyId": settings.s3_kms_key_id}
        self._stack = AsyncExitStack()
        self._s3: Any = None  # aiobotocore clients are untyped
        self._lock = asyncio.Lock()
        self._holds: bool | None = None  # Object Lock on the bucket (can_hold), once known

    async def _client(self) -> Any:
        async with self._lock:
            if self._s3 is None:
                with _boundary("open client"):  # resolves credentials, reads the AWS files
                    client = s3_client(self._settings, _CONFIG)
                    self._s3 = await self._stack.enter_async_context(client)
            return self._s3

    async def ensure_container(self) -> None:
        """Create the bucket unless it already exists."""
        s3 = await self._client()
        args: dict[str, Any] = {"Bucket": self.bucket}
        if self._settings.s3_region != "us-east-1":  # the one region that takes no constraint
            args["CreateBucketConfiguration"] = {"LocationConstraint": self._settings.s3_region}
        with _boundary("create bucket"):
            try:
                await s3.create_bucket(**args)
            except ClientError as exc:
                if _code(exc) not in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists"):
                    raise

    async def check(self) -> None:
        """HeadBucket: ``Fatal`` if our credentials are refused for our own bucket."""
        s3 = await self._client()
        try:
            with _boundary("check bucket"):
                await s3.head_bucket(Bucket=self.bucket)
        except AccessDenied as exc:
            raise Fatal(f"the S3 store refuses this worker's credentials: {exc}") from exc

    async def stat(self, key: str) -> ObjectInfo:
        """HeadObject: size, tier (``None`` for classes outside the tier map) and metadata."""
        s3 = await self._client()
        with _boundary(f"stat {key}"):
            head = await s3.head_object(Bucket=self.bucket, Key=key)
        tier = _TIER.get(head.get("StorageClass", "STANDARD"))  # AWS omits it for STANDARD
        return ObjectInfo(
            key, head["ContentLength"], tier, head.get("Metadata", {}), head.get("LastModified")
        )

    async def stored_digest(self, key: str) -> str | None:
        """HeadObject with ChecksumMode: the ChecksumSHA256 the service validated on upload."""
        s3 = await self._client()
        with _boundary(f"stat {key}"):
            head = await s3.head_object(Bucket=self.bucket, Key=key, ChecksumMode="ENABLED")
        reported = head.get("ChecksumSHA256")
        return store_digest(S3_SHA256, reported) if reported else None

    async def read(self, key: str, start: int = 0, end: int | None = None) -> AsyncIterator[bytes]:
        """GetObject with a Range, streamed; bytes past the end are simply absent."""
        if end is not None and end <= start:
            await self.stat(key)  # nothing to read, but a missing key is still NotFound
            return
        s3 = await self._client()
        args = {"Bucket": self.bucket, "Key": key}
        if start or end is not None:  # no Range at all for a whole read: empty objects have none
            args["Range"] = f"bytes={start}-{'' if end is None else end - 1}"
        with _boundary(f"read {key}"):
            try:
                response = await s3.get_object(**args)
            except ClientError as exc:
                if _code(exc) == "InvalidRange":  # start at or past the end of an existing object
                    return
                raise
            async with response["Body"] as body:
                async for chunk in body.iter_chunks(_READ_CHUNK):
                    yield chunk

    async def write(
        self,
        key: str,
        chunks: AsyncIterable[bytes],
        *,
        metadata: Mapping[str, str] | None = None,
        tier: Tier | None = None,
    ) -> WriteResult:
        """PutObject below ``part_size``, else a multipart upload aborted on any failure."""
        s3 = await self._client()
        target = {
            "Bucket": self.bucket,
            "Key": key,
            "Metadata": dict(metadata or {}),
            "StorageClass": _STORAGE_CLASS[tier or Tier.HOT],
            **self._sse,
        }
        blocks = fixed_blocks(chunks, self.part_size)
        first, last = await anext(blocks)
        if last:
            sha = hashlib.sha256(first)
            checksum = _b64(sha.digest())
            with _boundary(f"put {key}"):
                put = await s3.put_object(Body=first, ChecksumSHA256=checksum, **target)
            confirmed = _confirmed(key, checksum, put.get("ChecksumSHA256"))
            return WriteResult(key, len(first), sha.hexdigest(), confirmed)

        with _boundary(f"start multipart upload {key}"):
            created = await s3.create_multipart_upload(ChecksumAlgorithm="SHA256", **target)
        upload = {"Bucket": self.bucket, "Key": key, "UploadId": created["UploadId"]}
        sha, size = hashlib.sha256(), 0

        async def send(index: int, block: bytes, _last: bool) -> dict[str, Any]:
            nonlocal size
            sha.update(block)  # before the first await: sends start in order
            size += len(block)
            return await self._upload_part(s3, upload, index + 1, block)

        every_block = prepend((first, False), blocks)
        del first  # held until sent, not for the whole upload
        try:
            parts = await overlapped(every_block, send, most=PARTS_IN_FLIGHT)
            with _boundary(f"complete multipart upload {key}"):
                done = await s3.complete_multipart_upload(
                    MultipartUpload={"Parts": parts}, **upload
                )
        except BaseException:
            # An unfinished upload keeps (and bills) its parts until it is aborted.
            with suppress(Exception):
                await s3.abort_multipart_upload(**upload)
            raise
        composite = s3_checksum_sha256([base64.b64decode(p["ChecksumSHA256"]) for p in parts])
        confirmed = _confirmed(key, composite, done.get("ChecksumSHA256"))
        return WriteResult(key, size, sha.hexdigest(), confirmed)

    async def _upload_part(
        self, s3: Any, upload: dict[str, str], number: int, data: bytes
    ) -> dict[str, Any]:
        checksum = _b64(hashlib.sha256(data).digest())
        with _boundary(f"upload part {number} of {upload['Key']}"):
            done = await s3.upload_part(
                PartNumber=number, Body=data, ChecksumSHA256=checksum, **upload
            )
        return {"PartNumber": number, "ETag": done["ETag"], "ChecksumSHA256": checksum}

    async def delete(self, key: str) -> None:
        """DeleteObject; an absent key (or bucket) is fine. In an Object Lock bucket, every
        version of the key (a plain delete would only hide it behind a delete marker): a held
        one is refused (``AccessDenied``)."""
        s3 = await self._client()
        if await self.can_hold():
            pages = s3.get_paginator("list_object_versions").paginate(
                Bucket=self.bucket, Prefix=key
            )
            with _boundary(f"delete {key}"):
                async for page in pages:
                    for found in [*page.get("Versions", []), *page.get("DeleteMarkers", [])]:
                        if found["Key"] == key:
                            await s3.delete_object(
                                Bucket=self.bucket, Key=key, VersionId=found["VersionId"]
                            )
            return
        with suppress(NotFound), _boundary(f"delete {key}"):
            await s3.delete_object(Bucket=self.bucket, Key=key)

    async def can_hold(self) -> bool:
        """GetObjectLockConfiguration: Object Lock enabled on the bucket (none: 404)."""
        if self._holds is None:
            s3 = await self._client()
            found: dict[str, Any] = {}
            with suppress(NotFound), _boundary("object lock configuration"):
                found = await s3.get_object_lock_configuration(Bucket=self.bucket)
            enabled = found.get("ObjectLockConfiguration", {}).get("ObjectLockEnabled")
            self._holds = enabled == "Enabled"
        return self._holds

    async def hold(self, key: str, retain_until: datetime | None, legal_hold: bool) -> None:
        """PutObjectRetention (COMPLIANCE: nobody shortens it, S3 refuses) and
        PutObjectLegalHold."""
        s3 = await self._client()
        with _boundary(f"hold {key}"):
            if retain_until is not None:
                retention = {"Mode": "COMPLIANCE", "RetainUntilDate": retain_until}
                await s3.put_object_retention(Bucket=self.bucket, Key=key, Retention=retention)
            status = {"Status": "ON" if legal_hold else "OFF"}
            await s3.put_object_legal_hold(Bucket=self.bucket, Key=key, LegalHold=status)

    async def list(self, prefix: str = "") -> AsyncIterator[ObjectInfo]:
        """ListObjectsV2 pages under ``prefix`` (metadata empty, see the class docstring)."""
        s3 = await self._client()
        pages = s3.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=prefix)
        with _boundary(f"list {prefix!r}"):
            async for page in pages:
                for obj in page.get("Contents", []):
                    yield _listed(obj)

    async def list_after(self, prefix: str, after: str, limit: int) -> Sequence[ObjectInfo]:
        """One ListObjectsV2 request: up to ``limit`` objects under ``prefix`` past ``after``."""
        s3 = await self._client()
        start = {"StartAfter": after} if after else {}
        with _boundary(f"list {prefix!r} after {after!r}"):
            page = await s3.list_objects_v2(
                Bucket=self.bucket, Prefix=prefix, MaxKeys=limit, **start
            )
        return [_listed(obj) for obj in page.get("Contents", [])]

    async def abort_uploads(self, prefix: str, older_than: datetime) -> int:
        """AbortMultipartUpload of each upload ListMultipartUploads names under ``prefix``
        initiated before ``older_than`` (one gone meanwhile is fine)."""
        s3 = await self._client()
        pages = s3.get_paginator("list_multipart_uploads").paginate(
            Bucket=self.bucket, Prefix=prefix
        )
        with _boundary(f"list uploads {prefix!r}"):
            stale = [
                {"Bucket": self.bucket, "Key": upload["Key"], "UploadId": upload["UploadId"]}
                async for page in pages
                for upload in page.get("Uploads", [])
                if upload["Initiated"] < older_than
            ]
        for upload in stale:
            with suppress(NotFound), _boundary(f"abort upload of {upload['Key']}"):
                await s3.abort_multipart_upload(**upload)
        return len(stale)

    async def set_tier(self, key: str, tier: Tier) -> None:
        """Copy the object onto itself with the new StorageClass (and SSE-KMS again).

        CopyObject stops at 5 GiB; bigger objects would need UploadPartCopy.
        """
        s3 = await self._client()
        with _boundary(f"set tier of {key}"):
            head = await s3.head_object(Bucket=self.bucket, Key=key)
            # SeaweedFS refuses a self-copy that changes only StorageClass under
            # MetadataDirective=COPY (AWS allows it). REPLACE with the metadata just read works
            # on both; CopySourceIfMatch makes sure it is still the object we read.
            await s3.copy_object(
                Bucket=self.bucket,
                Key=key,
                CopySource={"Bucket": self.bucket, "Key": key},
                CopySourceIfMatch=head["ETag"],
                MetadataDirective="REPLACE",
                Metadata=head.get("Metadata", {}),
                ContentType=head.get("ContentType", "binary/octet-stream"),
                StorageClass=_STORAGE_CLASS[tier],
                **self._sse,
            )

    async def rehydrate(self, key: str) -> Tier | None:
        """RestoreObject (standard retrieval, a readable copy for a day beside the archived
        one); a restore already in progress is not an error. SeaweedFS has no RestoreObject
        (MethodNotAllowed) and serves archived objects directly."""
        s3 = await self._client()
        request = {"Days": 1, "GlacierJobParameters": {"Tier": "Standard"}}
        with _boundary(f"rehydrate {key}"):
            try:
                await s3.restore_object(Bucket=self.bucket, Key=key, RestoreRequest=request)
            except ClientError as exc:
                if _code(exc) != "RestoreAlreadyInProgress":
                    raise
        return None

    async def close(self) -> None:
        """Close the client; the next call opens a new one."""
        async with self._lock:
            self._s3 = None
            stack, self._stack = self._stack, AsyncExitStack()
            await stack.aclose()
