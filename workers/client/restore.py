"""Restore: stream a verified replica back, decrypt it, check the plaintext SHA-256.

Plaintext is written only to the owner's chosen file (mode 600, never over an existing file
unless asked), via a temporary name renamed into place after the digest matched, so a failed
restore leaves nothing behind. A replica that fails to decrypt or to match is skipped for the
next verified one, and the result says which replica served. Replicas readable without
rehydration are tried first; when none could be read and one is archived, its rehydration is
started and ``Rehydrating`` says when to retry.
"""

import hashlib
import os
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, BinaryIO, NoReturn

from schemas.events import Event, ObjectAccessed, Outcome, event_id
from topics import ACCESS, AUDIT, TIERED, TopicSpec
from workers.client.identity import Actor
from workers.client.kafka import produce_all
from workers.client.ops import client_record
from workers.core.envelope import FramingError, Header, associated_data, open_stream
from workers.core.versions import live_replicas
from workers.errors import IntegrityError, NotFound, Permanent, Retryable
from workers.kms.keyregistry import DataKeys, KeyRegistry, tombstoned
from workers.settings import Settings
from workers.stores.base import ObjectStore, Tier
from workers.tiering.live import Tiering, recorded_tier, rehydrated


@dataclass(frozen=True, slots=True)
class Restored:
    object_id: str
    version: int
    target: str
    size: int
    sha256: str


class OutputExists(Permanent):
    """The file to restore into exists, and overwriting it was not asked for."""


class RestoreFailed(IntegrityError):
    """No replica could be restored; ``failed`` says why each one tried failed."""

    def __init__(self, failed: Mapping[str, str]) -> None:
        tried = "; ".join(f"{t}: {reason}" for t, reason in failed.items())
        super().__init__(f"no replica could be restored ({tried})")
        self.failed = dict(failed)


class Rehydrating(Retryable):
    """No replica could be read and one is archived: its rehydration was started."""

    def __init__(self, target: str, hours: float, moved_to: Tier | None, failed: Mapping[str, str]):
        super().__init__(
            f"every readable replica failed or is archived: rehydration of the {target} replica"
            f" started; retry in about {hours:g} hours"
        )
        self.target, self.hours, self.moved_to, self.failed = target, hours, moved_to, failed


def archived(doc: dict[str, Any], target: str, tiering: Tiering) -> bool:
    """The replica's recorded tier must be rehydrated before a read."""
    return tiering.needs_rehydration(target, recorded_tier(doc["replicas"][target]))


def replica_order(doc: dict[str, Any], wanted: str | None, tiering: Tiering) -> list[str]:
    """The replicas to try: the one asked for, else every verified one, those readable
    without rehydration first, then the primary first."""
    verified = list(live_replicas(doc))
    if wanted is not None:
        if wanted not in verified:
            raise NotFound(f"no verified replica of {doc['_id']} in {wanted}")
        return [wanted]
    if not verified:
        raise NotFound(f"no verified replica of {doc['_id']} yet")
    return sorted(verified, key=lambda t: (archived(doc, t, tiering), t != doc.get("primary")))


async def rehydrate_or_fail(
    doc: dict[str, Any],
    stores: Mapping[str, ObjectStore],
    registry: KeyRegistry,
    tiering: Tiering,
    failed: Mapping[str, str],
) -> NoReturn:
    """Every replica tried failed: ``NotFound`` if the version was deleted meanwhile (its
    tombstone is written before any replica is removed), else start the rehydration of the
    first archived one (raise ``Rehydrating``), else raise ``RestoreFailed``."""
    record = await registry.get(doc["object_id"], doc["version"])
    if tombstoned(record):
        assert record is not None
        raise NotFound(f"v{doc['version']} of {doc['_id']} is {record.tombstone}: nothing to read")
    for target in failed:
        if archived(doc, target, tiering):
            moved_to = await stores[target].rehydrate(doc["replicas"][target]["key"])
            tier = recorded_tier(doc["replicas"][target])
            raise Rehydrating(target, tiering.rehydration_hours(target, tier), moved_to, failed)
    raise RestoreFailed(failed)


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
    *,
    force: bool = False,
) -> Restored:
    """Decrypt ``doc``'s replica in ``target`` into ``out``; ``on_progress`` gets byte counts."""
    digest = hashlib.sha256()
    size = 0
    with restored_file(out, force) as fh:
        plaintext = decrypt_stream(store.read(doc["key"]), keys, doc["object_id"], doc["version"])
        async for chunk in plaintext:
            digest.update(chunk)
            size += len(chunk)
            fh.write(chunk)
            on_progress(len(chunk))
        if digest.hexdigest() != doc["plaintext_sha256"]:
            raise IntegrityError("restored plaintext SHA-256 differs from the recorded one")
    return Restored(doc["object_id"], doc["version"], target, size, digest.hexdigest())


@contextmanager
def restored_file(out: Path, force: bool) -> Iterator[BinaryIO]:
    """A file written beside ``out`` (mode 600 from its first byte) that becomes ``out``
    only when the block ends without an error; ``OutputExists`` unless ``force``."""
    refuse_existing(out, force)
    partial = out.with_name(f".{out.name}.partial")
    partial.unlink(missing_ok=True)  # left by a restore that was killed
    try:
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL
        with os.fdopen(os.open(partial, flags, 0o600), "wb") as fh:
            yield fh
        refuse_existing(out, force)  # created meanwhile
        partial.replace(out)
    finally:
        partial.unlink(missing_ok=True)


def refuse_existing(out: Path, force: bool) -> None:
    if out.exists() and not force:
        raise OutputExists(f"{out} exists: restore elsewhere or add --force")


async def restore_best(
    doc: dict[str, Any],
    stores: Mapping[str, ObjectStore],
    keys: DataKeys,
    out: Path,
    *,
    tiering: Tiering,
    wanted: str | None = None,
    force: bool = False,
    on_progress: Callable[[int], None] = lambda _: None,
) -> tuple[Restored, dict[str, str]]:
    """Restore from the first verified replica that decrypts and matches; return it and why
    each one tried before it failed. ``IntegrityError`` naming every failure if none did,
    ``Rehydrating`` if an archived one is being made readable."""
    refuse_existing(out, force)
    failed: dict[str, str] = {}
    for target in replica_order(doc, wanted, tiering):
        try:
            restored = await restore_to_file(
                doc, stores[target], target, keys, out, on_progress, force=force
            )
            return restored, failed
        except OutputExists:
            raise
        except (Permanent, Retryable) as exc:  # this replica's fault, or its store's
            failed[target] = str(exc)
    await rehydrate_or_fail(doc, stores, keys.registry, tiering, failed)


async def record_restore(
    settings: Settings,
    doc: dict[str, Any],
    restored: Restored | None,
    failed: Mapping[str, str],
    rehydrating: Rehydrating | None = None,
    *,
    actor: Actor,
) -> None:
    """The restore's own step in the object's trail (success or failure), by ``actor``, and,
    when bytes were read, an access event for the tiering policy (topic ``access``). A
    rehydration it started is in the failure's detail, and a replica it moved to another tier
    (Azure rehydrates into Cold) is a ``tiered`` event of its own."""
    run_id = actor.run_id()
    if restored is None:
        detail: dict[str, object] = {"failed": dict(failed)}
        events: list[tuple[TopicSpec, Event]] = []
        if rehydrating is not None:
            detail["rehydrating"] = rehydrating.target
            detail["retry_after_hours"] = rehydrating.hours
            if rehydrating.moved_to is not None:
                tiered = rehydrated(
                    doc,
                    rehydrating.target,
                    rehydrating.moved_to,
                    run_id,
                    actor.name,
                    "rehydrated for a read",
                    datetime.now(UTC),
                )
                events.append((TIERED, tiered))
        record = client_record(doc, "restore", detail, run_id, Outcome.FAILED, actor=actor)
        await produce_all(settings, [(AUDIT, record), *events])
        return
    detail = {"replica": restored.target, "bytes": restored.size, "skipped": dict(failed)}
    accessed = ObjectAccessed(
        kind=ObjectAccessed.KIND,
        v=1,
        event_id=event_id(ObjectAccessed.KIND, doc["object_id"], doc["version"], run_id),
        object_id=doc["object_id"],
        version=doc["version"],
        correlation_id=run_id,
        produced_at=datetime.now(UTC),
        actor=actor.name,
        target=restored.target,
        bytes_read=restored.size,
    )
    record = client_record(doc, "restore", detail, run_id, actor=actor)
    await produce_all(settings, [(AUDIT, record), (ACCESS, accessed)])


async def open_plaintext(
    doc: dict[str, Any],
    stores: Mapping[str, ObjectStore],
    keys: DataKeys,
    tiering: Tiering,
    wanted: str | None = None,
) -> tuple[str, AsyncIterator[bytes], dict[str, str]]:
    """A plaintext stream of ``doc`` from the first verified replica whose first chunk
    decrypts (the rest is authenticated chunk by chunk as it streams): the replica used, the
    stream, and why each replica tried before it failed. For streaming to a client, where the
    plaintext digest can only be checked once everything was sent."""
    failed: dict[str, str] = {}
    for target in replica_order(doc, wanted, tiering):
        stream = decrypt_stream(
            stores[target].read(doc["key"]), keys, doc["object_id"], doc["version"]
        )
        try:
            first = await anext(stream, b"")
        except (Permanent, Retryable) as exc:
            failed[target] = str(exc)
            continue

        async def rest(
            first: bytes = first, stream: AsyncIterator[bytes] = stream
        ) -> AsyncIterator[bytes]:
            if first:
                yield first
            async for chunk in stream:
                yield chunk

        return target, rest(), failed
    await rehydrate_or_fail(doc, stores, keys.registry, tiering, failed)
