"""Object store backends behind one protocol (``workers.stores.base.ObjectStore``).

``open_store`` turns a target URL into a store; backends are imported lazily so that using one
does not import every cloud SDK. ``fixed_blocks`` is the re-cutting step every uploading
backend shares (S3 parts, Azure blocks, GCS resumable chunks), and ``overlapped`` the way each
sends them: the next block is cut while the one before is being sent.
"""

import asyncio
from collections import deque
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable
from contextlib import suppress
from typing import TypeVar
from urllib.parse import urlsplit

from workers.errors import NotFound, Permanent
from workers.settings import Settings
from workers.stores.base import ObjectInfo, ObjectStore, ReportsDigest, Tier, WriteResult

T = TypeVar("T")
R = TypeVar("R")

__all__ = [
    "ObjectInfo",
    "ObjectStore",
    "ReportsDigest",
    "Tier",
    "WriteResult",
    "fixed_blocks",
    "holds",
    "open_store",
    "overlapped",
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
    at least one block. Each block is copied once, from the chunks it is cut from (kept as
    they came until then, so chunks shared with other readers are not copied for each): at
    most ``size`` bytes of chunks plus the block handed out are held.
    """
    pending: list[memoryview] = []
    held = 0
    async for chunk in chunks:
        view = memoryview(chunk)
        # Strictly more than a block: another byte follows, so this block is not the last.
        while held + len(view) > size:
            cut = size - held
            pending.append(view[:cut])
            view = view[cut:]
            yield b"".join(pending), False
            pending, held = [], 0
        if view:
            pending.append(view)
            held += len(view)
    yield b"".join(pending), True


async def prepend(first: T, rest: AsyncIterator[T]) -> AsyncIterator[T]:
    """``first``, then ``rest``: a block peeked at and put back. The caller drops its own
    reference to ``first`` once this holds it; this one is dropped once it is handed out."""
    held = [first]
    del first
    yield held.pop()
    async for item in rest:
        yield item


async def overlapped(
    blocks: AsyncIterable[tuple[bytes, bool]],
    send: Callable[[int, bytes, bool], Awaitable[R]],
    most: int = 1,
) -> list[R]:
    """``send(index, block, last)`` for every block in order, each sent while the next is cut:
    the upload of a part overlaps the encryption of the next rather than holding the stream
    (and, through the fan-out, every other store) until it is done.

    At most ``most`` sends are in flight and one block waits for them (``most + 1`` blocks
    held). Sends start in order, each running up to its first ``await`` before the next starts,
    so a send may hash its block there. A failed send is raised when its turn comes (the next
    block waits on it) or the stream ends; whatever fails, sends still in flight are cancelled
    before this returns.
    """
    results: list[R] = []
    sending: deque[asyncio.Future[R]] = deque()
    try:
        async for block, last in blocks:
            if len(sending) == most:
                results.append(await sending.popleft())
            sending.append(asyncio.ensure_future(send(len(results) + len(sending), block, last)))
            del block  # held by the send, and dropped when it is done
        while sending:
            results.append(await sending.popleft())
    finally:
        for future in sending:
            future.cancel()
        for future in sending:
            with suppress(asyncio.CancelledError, Exception):
                await future
    return results


async def holds(store: ObjectStore, key: str, size: int) -> bool:
    """True when ``store`` has ``key`` with ``size`` bytes (a cheap check; verify reads it)."""
    try:
        return (await store.stat(key)).size == size
    except NotFound:
        return False
