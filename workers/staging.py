"""The staging area: where a client that shares no filesystem with the workers puts its bytes.

It is a prefix on one store (the S3 store by default, so SSE-KMS encrypts it at rest). The
client streams a file there under ``<prefix><tenant>/<request id>`` (``staged_key``), measuring
size and SHA-256 on the way, and sends the request only once the upload is complete; ingest and
encrypt accept a staged source only at the key of the request's own tenant and id, and encrypt
reads it once and deletes it after the ciphertext is recorded. ``sweep``, which every encrypt
worker runs on a timer, removes an upload older than the TTL only once nothing needs it: its
request is settled (its ciphertext recorded, its version deleted, or it repeated a version), or
no request references it (never sent, or no longer known). A request that is decided but not
settled, or dead-lettered, keeps its upload until it is resolved (a replay). Multipart uploads
under the prefix begun before the cutoff and never completed (a client that died) are aborted.
"""

import asyncio
from collections.abc import AsyncIterable, AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from workers.catalog import Catalog
from workers.core.digests import MultiDigest
from workers.errors import Permanent
from workers.kms.keyregistry import KeyRegistry, tombstoned
from workers.stores.base import ObjectStore

CHUNK = 1024 * 1024


@dataclass(frozen=True, slots=True)
class Staged:
    """An upload in the staging area and what the client measured while sending it."""

    key: str
    size: int
    sha256: str


def staged_key(prefix: str, tenant: str, request_id: str) -> str:
    """Where the upload of request ``request_id`` of ``tenant`` is staged."""
    return f"{prefix}{tenant}/{request_id}"


def check_staged(staged: str, prefix: str, tenant: str, request_id: str) -> None:
    """Raise ``Permanent`` unless ``staged`` is the staging key of this tenant's request."""
    if staged != staged_key(prefix, tenant, request_id):
        raise Permanent("staged source is not this request's upload in the staging area")


def request_of(key: str, prefix: str) -> str | None:
    """The request id a staged key names (None: not a key of the ``<tenant>/<id>`` form)."""
    tenant, _, request_id = key.removeprefix(prefix).partition("/")
    return request_id if key.startswith(prefix) and tenant and request_id else None


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


async def sweep(
    store: ObjectStore,
    prefix: str,
    older_than: datetime,
    catalog: Catalog,
    registry: KeyRegistry,
) -> int:
    """Delete the staged uploads last modified before ``older_than`` that nothing needs
    (``unneeded``) and abort the multipart uploads begun before it; return how many uploads
    were deleted."""
    stale = [
        info.key
        async for info in store.list(prefix)
        if info.modified is not None and info.modified < older_than
    ]
    requests = {key: request_of(key, prefix) for key in stale}
    settled = await unneeded([r for r in requests.values() if r is not None], catalog, registry)
    swept = [key for key, request in requests.items() if request is None or request in settled]
    for key in swept:
        await store.delete(key)
    await store.abort_uploads(prefix, older_than)
    return len(swept)


async def unneeded(request_ids: Sequence[str], catalog: Catalog, registry: KeyRegistry) -> set[str]:
    """The requests whose uploads nothing needs: settled, or referenced by no request.

    Decided: settled once it repeated a version, or its version's ciphertext is recorded or
    the version is tombstoned. Not decided: needed while a dead letter of it awaits a replay.
    """
    letters = await catalog.dead_lettered(request_ids)
    found = set()
    for request_id in request_ids:
        decision = await catalog.decision(request_id)
        if decision is None:
            if request_id not in letters:
                found.add(request_id)
            continue
        record = await registry.get(decision.object_id, decision.version)
        done = record is not None and (record.written is not None or tombstoned(record))
        if decision.unchanged or done:
            found.add(request_id)
    return found


def cutoff(now: datetime, ttl_s: float) -> datetime:
    return now - timedelta(seconds=ttl_s)
