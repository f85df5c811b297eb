"""The staging area: where a client that shares no filesystem with the workers puts its bytes.

It is a prefix on one store (the S3 store by default, so SSE-KMS encrypts it at rest). The
client streams a file there under its request id, measuring size and SHA-256 on the way, and
sends the request only once the upload is complete; encrypt reads it once and deletes it after
the ciphertext is recorded. Whatever is older than the TTL (an upload whose request was never
sent or was refused) is removed by ``sweep``, which every encrypt worker runs on a timer.
"""

import asyncio
from collections.abc import AsyncIterable, AsyncIterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from workers.core.digests import MultiDigest
from workers.stores.base import ObjectStore

CHUNK = 1024 * 1024


@dataclass(frozen=True, slots=True)
class Staged:
    """An upload in the staging area and what the client measured while sending it."""

    key: str
    size: int
    sha256: str


def staged_key(prefix: str, request_id: str) -> str:
    return f"{prefix}{request_id}"


async def file_chunks(path: Path, size: int = CHUNK) -> AsyncIterator[bytes]:
    """A file's bytes, read in a thread so the event loop keeps serving other uploads."""
    handle = await asyncio.to_thread(path.open, "rb")
    try:
        while chunk := await asyncio.to_thread(handle.read, size):
            yield chunk
    finally:
        handle.close()


async def upload(store: ObjectStore, key: str, chunks: AsyncIterable[bytes]) -> Staged:
    """Stream ``chunks`` to ``key``, measuring what was sent. A failure part-way leaves no
    object behind (the store aborts the upload), and the caller sends no request."""
    digest = MultiDigest()

    async def measured() -> AsyncIterator[bytes]:
        async for chunk in chunks:
            digest.update(chunk)
            yield chunk

    await store.write(key, measured(), metadata={"staged": "1"})
    return Staged(key, digest.size, digest.sha256_hex)


async def sweep(store: ObjectStore, prefix: str, older_than: datetime) -> int:
    """Delete staged uploads last modified before ``older_than``; return how many."""
    stale = [
        info.key
        async for info in store.list(prefix)
        if info.modified is not None and info.modified < older_than
    ]
    for key in stale:
        await store.delete(key)
    return len(stale)


def cutoff(now: datetime, ttl_s: float) -> datetime:
    return now - timedelta(seconds=ttl_s)
