"""An in-memory ``ObjectStore`` for unit tests: real logic over a dict of bytes, no mocks.

Buckets live in a process-wide table keyed by name, like a real service: two ``MemoryStore``
objects with the same name see the same objects (so ``open_store("memory://x")`` twice works),
and a bucket must be created with ``ensure_container`` before use, as in the clouds.
"""

import hashlib
from collections.abc import AsyncIterable, AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import ClassVar

from workers.errors import NotFound
from workers.stores.base import ObjectInfo, Tier, WriteResult

DEFAULT_PART_SIZE = 64 * 1024
_FLIP = bytes(b ^ 0xFF for b in range(256))  # translate table for corrupt_reads


@dataclass(frozen=True, slots=True)
class _Object:
    data: bytes
    metadata: Mapping[str, str]
    tier: Tier
    modified: datetime


def _listed(key: str, obj: _Object) -> ObjectInfo:
    md5 = hashlib.md5(obj.data, usedforsecurity=False).hexdigest()
    return ObjectInfo(
        key, len(obj.data), obj.tier, dict(obj.metadata), obj.modified, f"etag:{md5}", {"md5": md5}
    )


class MemoryStore:
    """A bucket held in process memory. Reads stream ``part_size`` chunks.

    Fault hook: ``corrupt_reads`` holds keys whose reads return every byte XOR-ed with 0xFF,
    to exercise integrity checks; it belongs to this object, not to the shared bucket.
    """

    name = "memory"
    _buckets: ClassVar[dict[str, dict[str, _Object]]] = {}

    def __init__(self, bucket: str, *, part_size: int = DEFAULT_PART_SIZE) -> None:
        self.bucket = bucket
        self.url = f"memory://{bucket}"
        self.part_size = part_size
        self.corrupt_reads: set[str] = set()

    def _objects(self) -> dict[str, _Object]:
        objects = self._buckets.get(self.bucket)
        if objects is None:
            raise NotFound(f"memory bucket {self.bucket} does not exist")
        return objects

    def _get(self, key: str) -> _Object:
        try:
            return self._objects()[key]
        except KeyError:
            raise NotFound(f"memory://{self.bucket}/{key} not found") from None

    async def ensure_container(self) -> None:
        """Create the bucket if missing."""
        self._buckets.setdefault(self.bucket, {})

    async def check(self) -> None:
        """The bucket exists (memory has no credentials)."""
        self._objects()

    async def stat(self, key: str) -> ObjectInfo:
        """Size, tier and metadata of ``key``."""
        obj = self._get(key)
        return ObjectInfo(key, len(obj.data), obj.tier, dict(obj.metadata), obj.modified)

    async def read(self, key: str, start: int = 0, end: int | None = None) -> AsyncIterator[bytes]:
        """Stream ``data[start:end]`` (clamped like a slice) in ``part_size`` chunks."""
        obj = self._get(key)
        data = obj.data[start:end]
        if key in self.corrupt_reads:
            data = data.translate(_FLIP)
        for offset in range(0, len(data), self.part_size):
            yield data[offset : offset + self.part_size]

    async def write(
        self,
        key: str,
        chunks: AsyncIterable[bytes],
        *,
        metadata: Mapping[str, str] | None = None,
        tier: Tier | None = None,
    ) -> WriteResult:
        """Collect ``chunks`` and store them atomically once the stream ends."""
        self._objects()  # a missing bucket fails before the source is consumed, as in the clouds
        parts: list[bytes] = []
        sha = hashlib.sha256()
        async for chunk in chunks:
            sha.update(chunk)
            parts.append(bytes(chunk))
        data = b"".join(parts)
        self._objects()[key] = _Object(
            data, dict(metadata or {}), tier or Tier.HOT, datetime.now(UTC)
        )
        return WriteResult(key, len(data), sha.hexdigest())

    async def delete(self, key: str) -> None:
        """Remove ``key`` if present (an absent bucket is fine too, as in the clouds)."""
        self._buckets.get(self.bucket, {}).pop(key, None)

    async def list(self, prefix: str = "") -> AsyncIterator[ObjectInfo]:
        """Objects whose key starts with ``prefix``, in key order (as the clouds list them)."""
        objects = self._objects()
        for key in sorted(k for k in objects if k.startswith(prefix)):
            obj = objects.get(key)
            if obj is not None:  # deleted while we were listing
                yield _listed(key, obj)

    async def list_after(self, prefix: str, after: str, limit: int) -> Sequence[ObjectInfo]:
        """Up to ``limit`` objects under ``prefix`` past ``after``, in key order."""
        objects = self._objects()
        keys = sorted(k for k in objects if k.startswith(prefix) and k > after)[:limit]
        return [_listed(key, objects[key]) for key in keys]

    async def set_tier(self, key: str, tier: Tier) -> None:
        """Change the tier of ``key`` in place."""
        obj = self._get(key)
        self._objects()[key] = _Object(obj.data, obj.metadata, tier, obj.modified)

    async def rehydrate(self, key: str) -> Tier | None:
        """Archived objects are read directly here."""
        self._get(key)
        return None

    async def abort_uploads(self, prefix: str, older_than: datetime) -> int:
        """None: a write here is complete or never happened."""
        return 0

    async def close(self) -> None:
        """Nothing to release."""
