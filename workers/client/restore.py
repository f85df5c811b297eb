"""Restore: stream a verified replica back, decrypt it, check the plaintext SHA-256.

Plaintext is written only to the owner's chosen file, via a temporary name that is renamed
into place after the digest matched (a failed restore leaves nothing behind).
"""

import hashlib
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from schemas.events import ObjectAccessed, event_id
from topics import ACCESS
from workers.client.kafka import produce_events
from workers.core.envelope import FramingError, Header, associated_data, open_stream
from workers.errors import IntegrityError, NotFound
from workers.keyregistry import DataKeys
from workers.settings import Settings
from workers.stores.base import ObjectStore


@dataclass(frozen=True, slots=True)
class Restored:
    object_id: str
    version: int
    target: str
    size: int
    sha256: str


def pick_replica(doc: dict[str, Any], wanted: str | None) -> str:
    """The replica to read: the one asked for, else the primary, else any, if verified."""
    replicas = (doc.get("replicas") or {}).items()
    verified = [t for t, r in replicas if r.get("verified_at") and not r.get("removed_at")]
    if wanted is not None:
        if wanted not in verified:
            raise NotFound(f"no verified replica of {doc['_id']} in {wanted}")
        return wanted
    if not verified:
        raise NotFound(f"no verified replica of {doc['_id']} yet")
    return doc["primary"] if doc.get("primary") in verified else sorted(verified)[0]


async def decrypt_stream(
    chunks: AsyncIterator[bytes], keys: DataKeys, object_id: str, version: int
) -> AsyncIterator[bytes]:
    """Plaintext of a ciphertext stream; the header names the data key in the registry."""
    buffer = b""
    decryptor = None
    async for chunk in chunks:
        if decryptor is None:
            buffer += chunk
            parsed = Header.parse(buffer)
            if parsed is None:
                continue
            header, used = parsed
            data_key = await keys.for_header(header.key_id, object_id, version)
            decryptor = open_stream(data_key, header, associated_data(object_id, version))
            chunk, buffer = buffer[used:], b""
        if out := decryptor.update(chunk):
            yield out
    if decryptor is None:
        raise FramingError("ciphertext ends inside its header")
    if out := decryptor.finalize():
        yield out


async def restore_to_file(
    doc: dict[str, Any],
    store: ObjectStore,
    target: str,
    keys: DataKeys,
    out: Path,
    on_progress: Callable[[int], None] = lambda _: None,
) -> Restored:
    """Decrypt ``doc``'s replica in ``target`` into ``out``; ``on_progress`` gets byte counts."""
    digest = hashlib.sha256()
    size = 0
    partial = out.with_name(f".{out.name}.partial")
    try:
        with partial.open("wb") as fh:
            plaintext = decrypt_stream(
                store.read(doc["key"]), keys, doc["object_id"], doc["version"]
            )
            async for chunk in plaintext:
                digest.update(chunk)
                size += len(chunk)
                fh.write(chunk)
                on_progress(len(chunk))
        if digest.hexdigest() != doc["plaintext_sha256"]:
            raise IntegrityError("restored plaintext SHA-256 differs from the recorded one")
        partial.replace(out)
    finally:
        partial.unlink(missing_ok=True)
    return Restored(doc["object_id"], doc["version"], target, size, digest.hexdigest())


async def record_access(settings: Settings, doc: dict[str, Any], target: str, size: int) -> None:
    """Tell the tiering policy that the object was read (topic ``access``)."""
    accessed = ObjectAccessed(
        kind=ObjectAccessed.KIND,
        v=1,
        event_id=event_id(ObjectAccessed.KIND, doc["object_id"], doc["version"], uuid.uuid4().hex),
        object_id=doc["object_id"],
        version=doc["version"],
        correlation_id=uuid.uuid4().hex,
        produced_at=datetime.now(UTC),
        target=target,
        bytes_read=size,
    )
    await produce_events(settings, ACCESS, [accessed])
