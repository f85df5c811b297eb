"""encrypt: ``accepted`` -> ``encrypted``.

Reads the source as a stream, encrypts it with a fresh data key (envelope encryption: the
key is wrapped by the KEK and travels in the ciphertext header) and writes the ciphertext to
the primary target, recording plaintext and ciphertext SHA-256 in the same pass.
Idempotency key: the store key ``tenant/object_id/vN``; a redelivery overwrites it.
"""

import asyncio
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

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
from workers.stores import open_store

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


async def handle(event: ObjectAccepted, deps: Deps) -> Sequence[Emit]:
    placement = event.placement
    primary = placement.targets[0]
    key = object_key(placement.tenant, event.object_id, event.version)
    data_key = new_data_key(deps.rng)
    key_id, wrapped = await deps.kek.wrap(data_key)
    aad = associated_data(event.object_id, event.version)
    plain = MultiDigest()  # the ciphertext's SHA-256 is computed by the store write

    async def ciphertext() -> AsyncIterator[bytes]:
        if placement.mode == "fernet":
            body = b"".join([chunk async for chunk in read_source(event.source, deps)])
            if len(body) > FERNET_MAX_BYTES:
                raise Permanent(f"fernet mode is for objects up to {FERNET_MAX_BYTES} bytes")
            plain.update(body)
            header = Header(Algorithm.FERNET, key_id, wrapped, chunk_size=0)
            out = fernet_encrypt(
                data_key, header, aad, body, iv=deps.rng(16), now=int(deps.now().timestamp())
            )
            yield out
            return
        header = Header(
            Algorithm.AES256GCM_CHUNKED,
            key_id,
            wrapped,
            chunk_size=deps.settings.chunk_size,
            nonce_prefix=deps.rng(7),
        )
        encryptor = StreamEncryptor(data_key, header, aad)
        async for chunk in read_source(event.source, deps):
            plain.update(chunk)
            if out := encryptor.update(chunk):
                yield out
        yield encryptor.finalize()

    written = await deps.store(primary).write(
        key, ciphertext(), metadata={"object_id": event.object_id, "key_id": key_id}
    )
    encrypted = stamp(
        ObjectEncrypted,
        event,
        event.event_id,
        placement=placement,
        primary=primary,
        key=key,
        key_id=key_id,
        algorithm=("fernet" if placement.mode == "fernet" else "aes256gcm-chunked"),
        plaintext_size=plain.size,
        plaintext_sha256=plain.sha256_hex,
        ciphertext_size=written.size,
        ciphertext_sha256=written.sha256,
    )
    return [Emit(ENCRYPTED, encrypted)]
