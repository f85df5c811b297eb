"""encrypt: ``accepted`` -> ``encrypted``.

Reads the source as a stream, encrypts it with the version's data key (envelope encryption:
the key is wrapped by the KEK and kept in the key registry; the ciphertext header names it)
and writes the ciphertext to the primary target, recording plaintext and ciphertext SHA-256 in
the same pass. When the request carried the plaintext's size and SHA-256, what was read must
match them, or the write is abandoned before it completes ("source changed since put").
Idempotency key: the object version. Its one data key is registered (insert if absent) before
the first byte is written; a second encrypt of the version uses that key, writes a key of its
own under the version's prefix, and keeps it only if it records its write first. Once a write
is recorded, a redelivery re-announces it without reading the source again. A tombstoned
version (deleted, shredded) is never encrypted again.
"""

import asyncio
import logging
from collections.abc import AsyncIterator, Sequence
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
from workers.deps import Deps, version_prefix
from workers.dispatch import Emit, stamp
from workers.errors import Permanent, Retryable
from workers.keyregistry import WRAP_MAX_AGE_S, DataKeyRecord, key_ref, tombstoned
from workers.stores import open_store

STAGE = "encrypt"
log = logging.getLogger("movingdata.encrypt")


class SourceChanged(Permanent):
    """The bytes read are not the ones the client measured when it put them."""


async def read_source(source: Source, deps: Deps) -> AsyncIterator[bytes]:
    """The plaintext as chunks: a staged upload, a file, a store object or inline bytes."""
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
    elif source.staged is not None:
        async for chunk in deps.staging.read(source.staged):
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


def check_read(event: ObjectAccepted, plain: MultiDigest, *, final: bool) -> None:
    """Raise ``SourceChanged`` as soon as the bytes read cannot be the ones put."""
    expected = event.plaintext_size
    if expected is None:
        return
    if plain.size > expected or (final and plain.size != expected):
        raise SourceChanged(f"source changed since put: {plain.size} bytes read, {expected} put")
    if final and plain.sha256_hex != event.plaintext_sha256:
        raise SourceChanged("source changed since put: its SHA-256 differs from the one put")


async def data_key_for(
    event: ObjectAccepted, deps: Deps, record: DataKeyRecord | None
) -> tuple[bytes, DataKeyRecord] | None:
    """The version's one data key (None: the version is tombstoned).

    A fresh key is registered only if the version has none; if another encrypt registered one
    first, that one is used. A wrap that took longer than ``WRAP_MAX_AGE_S`` is not registered
    (a key rotation may have passed meanwhile): the event is retried and wraps again.
    """
    if record is None:
        data_key = new_data_key(deps.rng)
        began = deps.clock()
        kek_key_id, wrapped = await deps.kek.wrap(data_key)
        if deps.clock() - began > WRAP_MAX_AGE_S:
            raise Retryable(f"wrapping the data key took over {WRAP_MAX_AGE_S:.0f} s")
        mine = DataKeyRecord(event.object_id, event.version, kek_key_id, wrapped, deps.now())
        record = await deps.registry.insert(mine)
        if record.wrapped == wrapped:
            return data_key, record
    if tombstoned(record) or record.kek_key_id is None or record.wrapped is None:
        return None
    return await deps.kek.unwrap(record.kek_key_id, record.wrapped), record


async def handle(event: ObjectAccepted, deps: Deps) -> Sequence[Emit]:
    record = await deps.registry.get(event.object_id, event.version)
    written = record.written if record is not None else None
    if not tombstoned(record) and written is None:
        written = await encrypt_to_primary(event, deps, record)
    if written is None or tombstoned(record):
        log.info("version is tombstoned: not encrypted", extra=ids(event))
        return []
    if event.source.staged is not None:  # the ciphertext is recorded: the upload has served
        await deps.staging.delete(event.source.staged)
    encrypted = stamp(ObjectEncrypted, event, event.event_id, placement=event.placement, **written)
    return [Emit(ENCRYPTED, encrypted)]


def ids(event: ObjectAccepted) -> dict[str, object]:
    return {"stage": STAGE, "object_id": event.object_id, "version": event.version}


async def encrypt_to_primary(
    event: ObjectAccepted, deps: Deps, record: DataKeyRecord | None
) -> dict[str, Any] | None:
    """Stream source -> encryptor -> primary store; return what the registry records as
    written (None: the version was tombstoned)."""
    placement = event.placement
    primary = placement.targets[0]
    keyed = await data_key_for(event, deps, record)
    if keyed is None:
        return None
    data_key, record = keyed
    prefix = version_prefix(placement.tenant, event.object_id, event.version)
    key = prefix + deps.rng(6).hex()  # this attempt's own key: never overwrites another's
    aad = associated_data(event.object_id, event.version)
    ref = key_ref(event.object_id, event.version)  # the header names the key, never carries it
    plain = MultiDigest()  # the ciphertext's SHA-256 is computed by the store write

    async def ciphertext() -> AsyncIterator[bytes]:
        if placement.mode == "fernet":
            body = b"".join([chunk async for chunk in read_source(event.source, deps)])
            if len(body) > FERNET_MAX_BYTES:
                raise Permanent(f"fernet mode is for objects up to {FERNET_MAX_BYTES} bytes")
            plain.update(body)
            check_read(event, plain, final=True)
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
            check_read(event, plain, final=False)
            if out := encryptor.update(chunk):
                yield out
        # Before the last bytes go out: a store commits nothing of a write that fails here.
        check_read(event, plain, final=True)
        yield encryptor.finalize()

    store = deps.store(primary)
    assert record.kek_key_id is not None
    result = await store.write(
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
        # Bound to ciphertext_sha256: computed from the same bytes sent, in the same pass.
        "store_digest": result.store_digest,
    }
    stored = await deps.registry.record_written(event.object_id, event.version, written)
    if stored.written != written or tombstoned(stored):
        await store.delete(key)  # another encrypt's write counts, or the version is gone
    return None if tombstoned(stored) else stored.written
