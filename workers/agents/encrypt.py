"""encrypt: ``accepted`` -> ``encrypted``.

Reads the source as a stream, encrypts it with a fresh data key (envelope encryption: the
key is wrapped by the KEK and kept in the key registry; the ciphertext header names it) and
writes the ciphertext to the primary target, recording plaintext and ciphertext SHA-256 in
the same pass.
Idempotency key: the object version. Its data key is registered (wrapped) before the first
byte is written; once the write completed, a redelivery re-announces it without writing again.
"""

import asyncio
from collections.abc import AsyncIterator, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from schemas.events import ObjectAccepted, ObjectEncrypted, Source
from topics import ENCRYPTED
from workers.core.digests import MultiDigest
from workers.core.envelope import (
    FERNET_MAX_BYTES,
    Algorithm,
    Header,
    StreamEncryptor,
    associated_data,
    fernet_encrypt,
    new_data_key,
)
from workers.deps import Deps, object_key
from workers.dispatch import Emit, stamp
from workers.errors import Permanent
from workers.keyregistry import DataKeyRecord, key_ref
from workers.stores import holds, open_store

STAGE = "encrypt"


async def read_source(source: Source, deps: Deps) -> AsyncIterator[bytes]:
    """The plaintext as chunks of ``settings.chunk_size``: file, store object or inline."""
    size = deps.settings.chunk_size
    if source.inline_b64 is not None:
        yield source.inline_bytes()
    elif source.path is not None:
        try:
            handle = await asyncio.to_thread(Path(source.path).open, "rb")
        except OSError as exc:
            raise Permanent(f"cannot open source: {exc.strerror}") from None
        with handle:
            while chunk := await asyncio.to_thread(handle.read, size):
                yield chunk
    else:
        assert source.url is not None
        base, key = split_url(source.url)
        store = open_store(base, deps.settings)
        try:
            async for chunk in store.read(key):
                yield chunk
        finally:
            await store.close()


def split_url(url: str) -> tuple[str, str]:
    """``s3://bucket/some/key`` -> (``s3://bucket``, ``some/key``)."""
    scheme, rest = url.split("://", 1)
    bucket, key = rest.split("/", 1)
    return f"{scheme}://{bucket}", key


async def data_key_for(
    event: ObjectAccepted, deps: Deps, record: DataKeyRecord | None
) -> tuple[bytes, DataKeyRecord]:
    """The version's data key: the registered ``record``'s on a redelivery, else a fresh one.

    A fresh key is registered (wrapped) before any ciphertext made with it exists.
    """
    if record is not None:
        return await deps.kek.unwrap(record.kek_key_id, record.wrapped), record
    data_key = new_data_key(deps.rng)
    kek_key_id, wrapped = await deps.kek.wrap(data_key)
    record = DataKeyRecord(event.object_id, event.version, kek_key_id, wrapped, deps.now())
    await deps.registry.put(record)
    return data_key, record


async def already_written(record: DataKeyRecord | None, deps: Deps) -> dict[str, Any] | None:
    """What a previous delivery wrote, if that ciphertext is still in the primary store."""
    if record is None or record.written is None:
        return None
    written = record.written
    store = deps.store(written["primary"])
    return written if await holds(store, written["key"], written["ciphertext_size"]) else None


async def handle(event: ObjectAccepted, deps: Deps) -> Sequence[Emit]:
    placement = event.placement
    record = await deps.registry.get(event.object_id, event.version)
    written = await already_written(record, deps)
    if written is None:
        written = await encrypt_to_primary(event, deps, record)
    encrypted = stamp(ObjectEncrypted, event, event.event_id, placement=placement, **written)
    return [Emit(ENCRYPTED, encrypted)]


async def encrypt_to_primary(
    event: ObjectAccepted, deps: Deps, record: DataKeyRecord | None
) -> dict[str, Any]:
    """Stream source -> encryptor -> primary store; record and return what was written."""
    placement = event.placement
    primary = placement.targets[0]
    key = object_key(placement.tenant, event.object_id, event.version)
    data_key, record = await data_key_for(event, deps, record)
    aad = associated_data(event.object_id, event.version)
    ref = key_ref(event.object_id, event.version)  # the header names the key, never carries it
    plain = MultiDigest()  # the ciphertext's SHA-256 is computed by the store write

    async def ciphertext() -> AsyncIterator[bytes]:
        if placement.mode == "fernet":
            body = b"".join([chunk async for chunk in read_source(event.source, deps)])
            if len(body) > FERNET_MAX_BYTES:
                raise Permanent(f"fernet mode is for objects up to {FERNET_MAX_BYTES} bytes")
            plain.update(body)
            header = Header(Algorithm.FERNET, ref, b"", chunk_size=0)
            yield fernet_encrypt(
                data_key, header, aad, body, iv=deps.rng(16), now=int(deps.now().timestamp())
            )
            return
        header = Header(
            Algorithm.AES256GCM_CHUNKED,
            ref,
            b"",
            chunk_size=deps.settings.chunk_size,
            nonce_prefix=deps.rng(7),
        )
        encryptor = StreamEncryptor(data_key, header, aad)
        async for chunk in read_source(event.source, deps):
            plain.update(chunk)
            if out := encryptor.update(chunk):
                yield out
        yield encryptor.finalize()

    result = await deps.store(primary).write(
        key, ciphertext(), metadata={"object_id": event.object_id, "key_id": record.kek_key_id}
    )
    written = {
        "primary": primary,
        "key": key,
        "key_id": record.kek_key_id,
        "algorithm": "fernet" if placement.mode == "fernet" else "aes256gcm-chunked",
        "plaintext_size": plain.size,
        "plaintext_sha256": plain.sha256_hex,
        "ciphertext_size": result.size,
        "ciphertext_sha256": result.sha256,
    }
    await deps.registry.put(replace(record, written=written))
    return written
