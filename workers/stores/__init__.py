"""Object store backends behind one protocol (``workers.stores.base.ObjectStore``).

``open_store`` turns a target URL into a store; backends are imported lazily so that using one
does not import every cloud SDK. ``fixed_blocks`` is the re-cutting step every uploading
backend shares (S3 parts, Azure blocks, GCS resumable chunks).
"""

from collections.abc import AsyncIterable, AsyncIterator
from urllib.parse import urlsplit

from workers.errors import NotFound, Permanent
from workers.settings import Settings
from workers.stores.base import ObjectInfo, ObjectStore, ReportsDigest, Tier, WriteResult

__all__ = [
    "ObjectInfo",
    "ObjectStore",
    "ReportsDigest",
    "Tier",
    "WriteResult",
    "fixed_blocks",
    "holds",
    "open_store",
]


def open_store(url: str, settings: Settings) -> ObjectStore:
    """The store for ``s3://bucket``, ``azure://container``, ``gs://bucket`` or ``memory://name``.

    Raises ``Permanent`` for any other scheme or a URL with a path, query or credentials.
    """
    parts = urlsplit(url)
    name = parts.netloc
    # Messages never echo the URL: a mistyped one may carry credentials.
    if not name or "@" in name or parts.path not in ("", "/") or parts.query or parts.fragment:
        raise Permanent(f"store URL must be <scheme>://<bucket> (scheme {parts.scheme!r})")
    match parts.scheme:
        case "s3":
            from workers.stores.s3 import S3Store

            return S3Store(name, settings)
        case "azure":
            from workers.stores.azure import AzureBlobStore

            return AzureBlobStore(name, settings)
        case "gs":
            from workers.stores.gcs import GCSStore

            return GCSStore(name, settings)
        case "memory":
            from workers.stores.memory import MemoryStore

            return MemoryStore(name)
    raise Permanent(f"unsupported store URL scheme {parts.scheme!r}")


async def fixed_blocks(
    chunks: AsyncIterable[bytes], size: int
) -> AsyncIterator[tuple[bytes, bool]]:
    """Re-cut a byte stream into ``size``-byte blocks, flagging the last one.

    The last block may be shorter, and is empty only for an empty stream, so callers always get
    at least one block. Besides the block handed out, at most ``size`` bytes plus one incoming
    chunk are buffered.
    """
    buf = bytearray()
    async for chunk in chunks:
        buf += chunk
        start = 0
        # Strictly more than a block left: another byte follows, so this block is not the last.
        while len(buf) - start > size:
            yield bytes(buf[start : start + size]), False
            start += size
        del buf[:start]  # once per chunk, so a huge chunk is not shifted once per block
    yield bytes(buf), True


async def holds(store: ObjectStore, key: str, size: int) -> bool:
    """True when ``store`` has ``key`` with ``size`` bytes (a cheap check; verify reads it)."""
    try:
        return (await store.stat(key)).size == size
    except NotFound:
        return False
