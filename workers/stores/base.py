"""The one storage interface every backend implements, and its typed results.

Shape borrowed from rclone's ``fs.Fs``: a small required surface (stat, read, write, delete,
list) plus an optional tier capability. Backends translate their SDK's errors into
``workers.errors`` at the boundary and decide there which are retryable.
"""

from collections.abc import AsyncIterable, AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Protocol, runtime_checkable


class Tier(StrEnum):
    """Storage tiers, mapped per provider by each backend."""

    HOT = "hot"
    WARM = "warm"
    COLD = "cold"
    ARCHIVE = "archive"


@dataclass(frozen=True, slots=True)
class ObjectInfo:
    """What a store knows about one object."""

    key: str
    size: int
    tier: Tier | None = None
    metadata: Mapping[str, str] = field(default_factory=dict)
    modified: datetime | None = None  # when the object was last written (timezone-aware)
    # The store's own token for this content (``etag:<ETag>``, ``generation:<n>``), from a
    # listing: it changes when the object is rewritten; a sync compares it (``core.sync``).
    fingerprint: str | None = None
    # Content digests the listing reports (hex, by algorithm: ``md5``, ``crc32c``).
    digests: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class WriteResult:
    """The outcome of a write: size and SHA-256 of the bytes sent, computed while streaming.

    ``store_digest`` (``workers.core.digests`` form, ``<algorithm>:<value>``) is the digest the
    store computed from the bytes it received, which it checked or reported equal to the one we
    computed from the bytes we sent; ``None`` when the store confirmed nothing (verify then
    reads the replica back).
    """

    key: str
    size: int
    sha256: str
    store_digest: str | None = None


@runtime_checkable
class ObjectStore(Protocol):
    """An object store holding ciphertext. ``name`` is the target name: s3, azure, gcs, memory."""

    name: str
    url: str

    async def ensure_container(self) -> None:
        """Create the bucket/container if it does not exist (idempotent)."""

    async def check(self) -> None:
        """A cheap request on our own bucket: ``Fatal`` if our credentials are refused,
        ``Retryable`` if the store is unreachable (what a health check asks)."""

    async def stat(self, key: str) -> ObjectInfo:
        """Size, tier and metadata of ``key``; ``NotFound`` if absent."""

    def read(self, key: str, start: int = 0, end: int | None = None) -> AsyncIterator[bytes]:
        """Stream bytes ``[start, end)`` of ``key`` in chunks; ``NotFound`` if absent."""

    async def write(
        self,
        key: str,
        chunks: AsyncIterable[bytes],
        *,
        metadata: Mapping[str, str] | None = None,
        tier: Tier | None = None,
    ) -> WriteResult:
        """Stream ``chunks`` into ``key`` (multipart/blocks/resumable when large)."""

    async def delete(self, key: str) -> None:
        """Remove ``key``; deleting an absent key is not an error."""

    def list(self, prefix: str = "") -> AsyncIterator[ObjectInfo]:
        """Every object whose key starts with ``prefix``."""

    async def set_tier(self, key: str, tier: Tier) -> None:
        """Move ``key`` to ``tier`` (storage class change in place)."""

    async def rehydrate(self, key: str) -> Tier | None:
        """Start making an archived ``key`` readable (hours on S3 and Azure); the tier it is
        moving to, or None when it stays in its tier (a no-op where archives are read
        directly, a temporary readable copy on S3)."""

    async def abort_uploads(self, prefix: str, older_than: datetime) -> int:
        """Abort the uploads under ``prefix`` begun before ``older_than`` and never completed
        (a writer that died part-way); return how many. A store whose unfinished uploads
        expire on their own (Azure's uncommitted blocks, GCS's resumable sessions: a week)
        aborts none."""

    async def close(self) -> None:
        """Release connections."""


@runtime_checkable
class Holds(Protocol):
    """Optional capability: the store itself refuses to delete a held object (S3 Object Lock
    in COMPLIANCE mode and legal hold, Azure version-level immutability and legal hold, GCS
    object retention and temporary hold), in a bucket made for it only: ``can_hold`` says
    whether ours is. A normal bucket is never made one (versioning would turn deletes into
    delete markers)."""

    async def can_hold(self) -> bool:
        """Whether our bucket holds objects (checked once, then remembered)."""

    async def hold(self, key: str, retain_until: datetime | None, legal_hold: bool) -> None:
        """Retain ``key`` until ``retain_until`` (None: as it is; never shortened: the store
        refuses) and set its legal hold on or off; ``NotFound`` if absent."""


@runtime_checkable
class ListsAfter(Protocol):
    """Optional capability: one page of a listing starts past a key (S3's ``StartAfter``), so
    a sync resumes a listing where it stopped. Any other store is listed from its start and
    the keys up to ``after`` skipped (``workers.sync.source``)."""

    async def list_after(self, prefix: str, after: str, limit: int) -> Sequence[ObjectInfo]:
        """Up to ``limit`` objects under ``prefix`` whose keys sort after ``after``, in key
        order."""


@runtime_checkable
class ReportsDigest(Protocol):
    """Optional capability: the store reports a digest it computed from the bytes it stored.

    Only a backend whose store checks or computes that digest itself implements this; for any
    other, verify reads every replica back.
    """

    async def stored_digest(self, key: str) -> str | None:
        """The store's digest of ``key`` now (``<algorithm>:<value>``), ``None`` when it has
        none to report; ``NotFound`` if absent."""
