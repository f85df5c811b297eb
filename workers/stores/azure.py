"""Azure Blob Storage (Azurite locally) through azure-storage-blob's aio client.

Requests are signed as ``settings.azure_credential`` says: the account key (Azurite's public
one by default), a SAS token, or azure-identity's ``DefaultAzureCredential`` (Bearer tokens,
which the SDK sends over https only).

A blob of at most ``part_size`` bytes goes up in one Put Blob with the MD5 of the bytes sent,
which the service checks (a mismatch is refused) and keeps as the blob's Content-MD5: that MD5
is the store digest verify trusts. A larger one is staged in fixed-size blocks, each with a
transactional MD5 the service checks, then committed in one call with metadata and tier: a
failed write leaves no visible blob (Azure drops uncommitted blocks after a week). Its store
digest is the committed block list: every block in it was accepted only after the service
checked its MD5 against ours, so a blob committed with exactly our blocks holds our bytes.
(Azure keeps no MD5 of a committed block list, so a blob's Content-MD5 tells the two apart.)
"""

import base64
import hashlib
import io
import uuid
from collections.abc import AsyncIterable, AsyncIterator, Iterator, Mapping
from contextlib import contextmanager, suppress
from datetime import datetime

import aiohttp
from azure.core.credentials import AzureNamedKeyCredential, AzureSasCredential
from azure.core.exceptions import (
    AzureError,
    ClientAuthenticationError,
    HttpResponseError,
    IncompleteReadError,
    ResourceExistsError,
    ResourceNotFoundError,
    ServiceRequestError,
    ServiceResponseError,
)
from azure.identity.aio import DefaultAzureCredential
from azure.storage.blob import ImmutabilityPolicy, StandardBlobTier
from azure.storage.blob.aio import BlobServiceClient, ContainerClient, LinearRetry

from workers.core.digests import AZURE_BLOCKS, AZURE_MD5, block_list_digest, store_digest
from workers.errors import AccessDenied, Fatal, MovingDataError, NotFound, Permanent, Retryable
from workers.settings import Settings
from workers.stores import fixed_blocks, overlapped, prepend
from workers.stores.base import ObjectInfo, Tier, WriteResult

MiB = 1024 * 1024
DEFAULT_PART_SIZE = 4 * MiB
# Staged blocks are independent requests: two in flight keep a connection busy meanwhile.
BLOCKS_IN_FLIGHT = 2

_BLOB_TIER = {
    Tier.HOT: StandardBlobTier.HOT,
    Tier.WARM: StandardBlobTier.COOL,
    Tier.COLD: StandardBlobTier.COLD,
    Tier.ARCHIVE: StandardBlobTier.ARCHIVE,
}
_TIER = {blob_tier.value: tier for tier, blob_tier in _BLOB_TIER.items()}
_SDK_ERRORS = (AzureError, aiohttp.ClientError, OSError)


def _error_code(exc: HttpResponseError) -> str:
    code = getattr(exc, "error_code", None)  # unset on an answer the SDK could not parse
    return str(getattr(code, "value", code) or exc.status_code or "")


def _md5_mismatch(exc: HttpResponseError) -> bool:
    code = _error_code(exc)
    return code == "Md5Mismatch" or (code == "InvalidOperation" and "contentMD5" in str(exc))


def _translate(exc: BaseException, what: str) -> MovingDataError:
    """Map an SDK or network error to the project's tree."""
    if isinstance(exc, HttpResponseError):
        status = exc.status_code or 0
        message = f"azure {what}: {_error_code(exc)}"
        if isinstance(exc, ResourceNotFoundError) or status == 404:
            return NotFound(message)
        # BlobArchived (409): a read of a blob in the Archive tier, refused until rehydrated,
        # as S3 refuses one in Glacier (InvalidObjectState)
        archived = _error_code(exc) == "BlobArchived"
        if isinstance(exc, ClientAuthenticationError) or status in (401, 403) or archived:
            return AccessDenied("azure", message)
        # Md5Mismatch: a block damaged in transit (Azurite: InvalidOperation, "Provided
        # contentMD5 doesn't match."); IncompleteReadError: a body cut short.
        if isinstance(exc, IncompleteReadError) or _md5_mismatch(exc):
            return Retryable(message)
        if status in (408, 429) or status >= 500:
            return Retryable(message)
        return Permanent(message)
    message = f"azure {what}: {type(exc).__name__}"
    # Request not sent or response not received: refused connections, resets, timeouts.
    if isinstance(exc, ServiceRequestError | ServiceResponseError | aiohttp.ClientError | OSError):
        return Retryable(message)
    return Permanent(message)


@contextmanager
def _boundary(what: str) -> Iterator[None]:
    """Translate SDK and network errors raised inside, keeping the original as the cause."""
    try:
        yield
    except _SDK_ERRORS as exc:
        raise _translate(exc, what) from exc


Credential = AzureNamedKeyCredential | AzureSasCredential | DefaultAzureCredential


def _credential(settings: Settings) -> Credential:
    """What signs requests; ``Fatal`` when the chosen kind lacks what it needs."""
    match settings.azure_credential:
        case "key":
            key = settings.azure_key.get_secret_value()
            return AzureNamedKeyCredential(settings.azure_account, key)
        case "sas":
            if settings.azure_sas_token is None:
                raise Fatal("MOVINGDATA_AZURE_CREDENTIAL=sas needs MOVINGDATA_AZURE_SAS_TOKEN")
            return AzureSasCredential(settings.azure_sas_token.get_secret_value().removeprefix("?"))
        case "default":
            if not settings.azure_endpoint.startswith("https://"):
                raise Fatal(
                    "MOVINGDATA_AZURE_CREDENTIAL=default needs an https MOVINGDATA_AZURE_URL"
                )
            return DefaultAzureCredential()


class AzureBlobStore:
    """One blob container; ``part_size`` is the block size for uploads and download pieces."""

    name = "azure"

    def __init__(
        self, container: str, settings: Settings, *, part_size: int = DEFAULT_PART_SIZE
    ) -> None:
        self.container = container
        self.url = f"azure://{container}"
        self.part_size = part_size
        self._settings = settings
        self._service: BlobServiceClient | None = None
        self._credential: Credential | None = None
        self._holds: bool | None = None  # version-level immutability (can_hold), once known

    def _client(self) -> ContainerClient:
        if self._service is None:
            self._credential = _credential(self._settings)
            self._service = BlobServiceClient(
                self._settings.azure_endpoint,
                credential=self._credential,
                # Two quick SDK retries (the default backs off 15 s+); the dispatcher does the rest.
                retry_policy=LinearRetry(backoff=1, retry_total=2, random_jitter_range=0),
                connection_timeout=10,
                read_timeout=60,
                # Downloads fetch part_size pieces instead of a 32 MiB first GET: bounded memory.
                max_single_get_size=self.part_size,
                max_chunk_get_size=self.part_size,
            )
        return self._service.get_container_client(self.container)

    async def ensure_container(self) -> None:
        """Create the container unless it already exists."""
        with _boundary("create container"), suppress(ResourceExistsError):
            await self._client().create_container()

    async def check(self) -> None:
        """Container properties: ``Fatal`` if our credentials are refused for our container."""
        try:
            with _boundary("check container"):
                await self._client().get_container_properties()
        except AccessDenied as exc:
            raise Fatal(f"the Azure store refuses this worker's credentials: {exc}") from exc

    async def stat(self, key: str) -> ObjectInfo:
        """Blob properties: size, access tier and metadata."""
        with _boundary(f"stat {key}"):
            props = await self._client().get_blob_client(key).get_blob_properties()
        tier = _TIER.get(props.blob_tier)
        return ObjectInfo(key, props.size, tier, dict(props.metadata or {}), props.last_modified)

    async def read(self, key: str, start: int = 0, end: int | None = None) -> AsyncIterator[bytes]:
        """Download ``[start, end)`` in ``part_size`` pieces; bytes past the end are absent."""
        if end is not None and end <= start:
            await self.stat(key)  # nothing to read, but a missing key is still NotFound
            return
        # No range at all for a whole read: Azure answers 416 to "bytes=0-" on an empty blob.
        window: dict[str, int | None] = {}
        if start or end is not None:
            window = {"offset": start, "length": None if end is None else end - start}
        blob = self._client().get_blob_client(key)
        with _boundary(f"read {key}"):
            try:
                downloader = await blob.download_blob(**window)
            except HttpResponseError as exc:
                if exc.status_code == 416:  # start at or past the end of an existing blob
                    return
                raise
            async for chunk in downloader.chunks():
                yield chunk

    async def write(
        self,
        key: str,
        chunks: AsyncIterable[bytes],
        *,
        metadata: Mapping[str, str] | None = None,
        tier: Tier | None = None,
    ) -> WriteResult:
        """One Put Blob up to ``part_size``, else ``part_size`` blocks then one commit of the
        block list with metadata and tier."""
        blob = self._client().get_blob_client(key)
        options = {
            "metadata": dict(metadata or {}),
            "standard_blob_tier": _BLOB_TIER[tier or Tier.HOT],
        }
        blocks_in = fixed_blocks(chunks, self.part_size)
        first, last = await anext(blocks_in)
        if last:
            md5 = base64.b64encode(hashlib.md5(first, usedforsecurity=False).digest()).decode()
            with _boundary(f"put {key}"):
                # Our MD5 as Content-MD5: the service refuses other bytes (the SDK's
                # validate_content would hash the body a second time).
                put = await blob.upload_blob(
                    io.BytesIO(first),
                    length=len(first),
                    overwrite=True,
                    headers={"Content-MD5": md5},
                    **options,
                )
            stored = put.get("content_md5")  # the MD5 the service keeps for the blob
            if stored is not None and base64.b64encode(stored).decode() != md5:
                raise Retryable(f"azure put {key}: stored MD5 differs from the bytes sent")
            confirmed = None if stored is None else store_digest(AZURE_MD5, md5)
            return WriteResult(key, len(first), hashlib.sha256(first).hexdigest(), confirmed)
        sha = hashlib.sha256()
        # A per-write prefix keeps concurrent or retried writes of one key from mixing their
        # uncommitted blocks; the counter is fixed-width because Azure wants equal-length ids
        # (the SDK base64-encodes them).
        prefix = uuid.uuid4().hex

        async def stage(index: int, block: bytes, _last: bool) -> tuple[str, int]:
            sha.update(block)  # before the first await: stages start in order
            block_id = f"{prefix}-{index:06d}"
            with _boundary(f"stage block {index} of {key}"):
                # A BytesIO body: aiohttp warns about (and may stall the loop on) raw bytes > 1 MiB.
                await blob.stage_block(
                    block_id, io.BytesIO(block), length=len(block), validate_content=True
                )
            return block_id, len(block)

        every_block = prepend((first, False), blocks_in)
        del first  # held until staged, not for the whole upload
        blocks = await overlapped(every_block, stage, most=BLOCKS_IN_FLIGHT)
        with _boundary(f"commit {key}"):
            await blob.commit_block_list([block_id for block_id, _ in blocks], **options)
        # validate_content: the service refused any block whose MD5 was not ours.
        confirmed = store_digest(AZURE_BLOCKS, block_list_digest(blocks))
        size = sum(length for _, length in blocks)
        return WriteResult(key, size, sha.hexdigest(), confirmed)

    async def stored_digest(self, key: str) -> str | None:
        """The blob's Content-MD5 (a Put Blob), else its committed block list (ids, sizes)."""
        blob = self._client().get_blob_client(key)
        with _boundary(f"stat {key}"):
            md5 = (await blob.get_blob_properties()).content_settings.content_md5
        if md5:
            return store_digest(AZURE_MD5, base64.b64encode(md5).decode())
        with _boundary(f"stat {key}"):
            committed, _ = await blob.get_block_list("committed")
        return store_digest(AZURE_BLOCKS, block_list_digest([(b.id, b.size) for b in committed]))

    async def delete(self, key: str) -> None:
        """Delete the blob; an absent blob (or container) is fine."""
        with suppress(NotFound), _boundary(f"delete {key}"):
            await self._client().get_blob_client(key).delete_blob()

    async def can_hold(self) -> bool:
        """Container properties: version-level immutability (WORM) enabled."""
        if self._holds is None:
            with _boundary("container properties"):
                props = await self._client().get_container_properties()
            self._holds = bool(props.immutable_storage_with_versioning_enabled)
        return self._holds

    async def hold(self, key: str, retain_until: datetime | None, legal_hold: bool) -> None:
        """Set Blob Immutability Policy (locked: nobody shortens it) and Set Blob Legal Hold."""
        blob = self._client().get_blob_client(key)
        with _boundary(f"hold {key}"):
            if retain_until is not None:
                policy = ImmutabilityPolicy(expiry_time=retain_until, policy_mode="Locked")
                await blob.set_immutability_policy(policy)
            await blob.set_legal_hold(legal_hold)

    async def list(self, prefix: str = "") -> AsyncIterator[ObjectInfo]:
        """Blobs under ``prefix`` with their metadata (the SDK follows continuation tokens)."""
        blobs = self._client().list_blobs(name_starts_with=prefix or None, include=["metadata"])
        with _boundary(f"list {prefix!r}"):
            async for blob in blobs:
                tier = _TIER.get(blob.blob_tier)
                metadata = dict(blob.metadata or {})
                md5 = blob.content_settings.content_md5
                yield ObjectInfo(
                    blob.name,
                    blob.size,
                    tier,
                    metadata,
                    blob.last_modified,
                    f"etag:{blob.etag}",
                    {"md5": bytes(md5).hex()} if md5 else {},
                )

    async def set_tier(self, key: str, tier: Tier) -> None:
        """Set the standard blob tier (leaving Archive takes hours of rehydration on Azure)."""
        with _boundary(f"set tier of {key}"):
            await self._client().get_blob_client(key).set_standard_blob_tier(_BLOB_TIER[tier])

    async def rehydrate(self, key: str) -> Tier | None:
        """Move an archived blob to Cold (standard priority: up to 15 hours on Azure; at once
        on Azurite, which refuses reads of archived blobs as Azure does)."""
        blob = self._client().get_blob_client(key)
        with _boundary(f"rehydrate {key}"):
            await blob.set_standard_blob_tier(_BLOB_TIER[Tier.COLD], rehydrate_priority="Standard")
        return Tier.COLD

    async def abort_uploads(self, prefix: str, older_than: datetime) -> int:
        """None: Azure discards uncommitted blocks a week after they were staged."""
        return 0

    async def close(self) -> None:
        """Close the service client and its credential; the next call opens new ones."""
        service, self._service = self._service, None
        credential, self._credential = self._credential, None
        if service is not None:
            await service.close()
        if isinstance(credential, DefaultAzureCredential):  # the SDK leaves it open
            await credential.close()
