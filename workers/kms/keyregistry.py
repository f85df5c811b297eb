"""The key registry: the only copy of each object version's wrapped data key.

Ciphertext headers name their key (``dek:<object_id>:v<version>``) but do not carry it, so:
- rotation re-wraps every data key here under the newest KEK version, without touching a byte
  of ciphertext in any store;
- crypto-shredding destroys the wrapped key: every replica of that version becomes unreadable.

One data key per object version, ever: a record is inserted only if absent, a re-wrap is a
compare-and-set on the wrapping it read, and ``written`` (what encrypt stored with the key) is
set once. A delete or forget leaves a tombstone in place of the key, so no replay, retry or
re-put can give that version a key (or replicas) again.
"""

import asyncio
import base64
import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import suppress
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal, Protocol

from bson import json_util
from pymongo import AsyncMongoClient, ReturnDocument
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.errors import DuplicateKeyError

from workers.coalesce import Coalesced
from workers.errors import IntegrityError, NotFound, Permanent
from workers.kms.keys import KeyEncryptionKey
from workers.mongo import by_ids, translated_errors

Tombstone = Literal["deleted", "shredded"]
# A wrapping registered more than this after its wrap began does not count (encrypt wraps the
# key again): a rotation that waited this long after adding its KEK version has seen every key
# wrapped under an older one.
WRAP_MAX_AGE_S = 10.0
ROTATE_ROUNDS = 5


def key_ref(object_id: str, version: int) -> str:
    """The reference a ciphertext header carries instead of a wrapped key."""
    return f"dek:{object_id}:v{version}"


@dataclass(frozen=True, slots=True)
class DataKeyRecord:
    """One object version's wrapped data key, what encrypt wrote with it, or its tombstone."""

    object_id: str
    version: int
    kek_key_id: str | None
    wrapped: bytes | None
    created_at: datetime
    written: dict[str, Any] | None = None  # ObjectEncrypted fields once the write completed
    tombstone: Tombstone | None = None

    def __repr__(self) -> str:  # never print key material, even wrapped
        return f"DataKeyRecord({key_ref(self.object_id, self.version)}, kek={self.kek_key_id})"


class KeyRegistry(Protocol):
    async def get(self, object_id: str, version: int) -> DataKeyRecord | None: ...

    async def insert(self, record: DataKeyRecord) -> DataKeyRecord:
        """Insert unless the version has a record; return the one stored (maybe another's)."""

    async def record_written(
        self, object_id: str, version: int, written: dict[str, Any]
    ) -> DataKeyRecord:
        """Set ``written`` unless set or tombstoned; return the record as stored."""

    async def rewrap(self, record: DataKeyRecord, kek_key_id: str, wrapped: bytes) -> bool:
        """Replace the wrapping if it is still ``record``'s; False if it changed meanwhile."""

    async def tombstone(self, object_id: str, version: int, tombstone: Tombstone) -> None:
        """Destroy the wrapped key and mark the version (``shredded`` outranks ``deleted``)."""

    def all(self) -> AsyncIterator[DataKeyRecord]:
        """Every record (for rotation)."""

    async def close(self) -> None: ...


def tombstoned(record: DataKeyRecord | None) -> bool:
    return record is not None and record.tombstone is not None


async def gone(registry: "KeyRegistry", object_id: str, version: int) -> bool:
    """The version was deleted or shredded: no stage may write or repair its replicas."""
    return tombstoned(await registry.get(object_id, version))


class MemoryKeyRegistry:
    """In-process registry for unit tests (the same rules over a dict)."""

    def __init__(self) -> None:
        self.records: dict[str, DataKeyRecord] = {}

    async def get(self, object_id: str, version: int) -> DataKeyRecord | None:
        return self.records.get(key_ref(object_id, version))

    async def insert(self, record: DataKeyRecord) -> DataKeyRecord:
        return self.records.setdefault(key_ref(record.object_id, record.version), record)

    async def record_written(
        self, object_id: str, version: int, written: dict[str, Any]
    ) -> DataKeyRecord:
        ref = key_ref(object_id, version)
        record = self.records[ref]
        if record.written is None and record.tombstone is None:
            self.records[ref] = record = replace(record, written=written)
        return record

    async def rewrap(self, record: DataKeyRecord, kek_key_id: str, wrapped: bytes) -> bool:
        ref = key_ref(record.object_id, record.version)
        now = self.records.get(ref)
        if now is None or (now.kek_key_id, now.wrapped) != (record.kek_key_id, record.wrapped):
            return False
        self.records[ref] = replace(now, kek_key_id=kek_key_id, wrapped=wrapped)
        return True

    async def tombstone(self, object_id: str, version: int, tombstone: Tombstone) -> None:
        ref = key_ref(object_id, version)
        now = self.records.get(ref)
        if now is not None and now.tombstone in (tombstone, "shredded"):
            return
        base = now or DataKeyRecord(object_id, version, None, None, datetime.now(UTC))
        self.records[ref] = replace(base, kek_key_id=None, wrapped=None, tombstone=tombstone)

    async def all(self) -> AsyncIterator[DataKeyRecord]:
        for record in list(self.records.values()):
            yield record

    async def close(self) -> None:
        """Nothing to release."""


class MongoKeyRegistry:
    """Records in the ``data_keys`` collection, ``_id = dek:<object_id>:v<version>``.

    The client is created on first use, inside the event loop that will use it.
    """

    def __init__(self, url: str, database: str) -> None:
        self.url = url
        self.database = database
        self.client: AsyncMongoClient[dict[str, Any]] | None = None
        # The stages ask for many versions at once (a batch's tombstone checks): one query.
        self.reads: Coalesced[str, DataKeyRecord] = Coalesced(self.read)

    @property
    def collection(self) -> AsyncCollection[dict[str, Any]]:
        if self.client is None:
            self.client = AsyncMongoClient(self.url, serverSelectionTimeoutMS=5000)
        return self.client[self.database]["data_keys"]

    async def close(self) -> None:
        if self.client is not None:
            await self.client.close()

    async def get(self, object_id: str, version: int) -> DataKeyRecord | None:
        return await self.reads.get(key_ref(object_id, version))

    async def read(self, refs: list[str]) -> dict[str, DataKeyRecord]:
        with translated_errors("key registry"):
            docs = await by_ids(self.collection, refs)
        return {ref: _from_doc(doc) for ref, doc in docs.items()}

    async def insert(self, record: DataKeyRecord) -> DataKeyRecord:
        ref = key_ref(record.object_id, record.version)
        with translated_errors("key registry"):
            try:
                await self.collection.insert_one({"_id": ref, **_to_doc(record)})
            except DuplicateKeyError:
                stored = await self.collection.find_one({"_id": ref})
                assert stored is not None
                return _from_doc(stored)
        return record

    async def record_written(
        self, object_id: str, version: int, written: dict[str, Any]
    ) -> DataKeyRecord:
        ref = key_ref(object_id, version)
        with translated_errors("key registry"):
            doc = await self.collection.find_one_and_update(
                {"_id": ref, "written": None, "tombstone": None},
                {"$set": {"written": written}},
                return_document=ReturnDocument.AFTER,
            )
            if doc is None:  # written by another encrypt, or tombstoned meanwhile
                doc = await self.collection.find_one({"_id": ref})
        if doc is None:
            raise Permanent(f"no key record for {ref}")
        return _from_doc(doc)

    async def rewrap(self, record: DataKeyRecord, kek_key_id: str, wrapped: bytes) -> bool:
        assert record.wrapped is not None
        with translated_errors("key registry"):
            result = await self.collection.update_one(
                {
                    "_id": key_ref(record.object_id, record.version),
                    "kek_key_id": record.kek_key_id,
                    "wrapped": _b64(record.wrapped),
                },
                {"$set": {"kek_key_id": kek_key_id, "wrapped": _b64(wrapped)}},
            )
        return result.modified_count == 1

    async def tombstone(self, object_id: str, version: int, tombstone: Tombstone) -> None:
        # Matches only a record below this tombstone; the upsert then inserts one for a version
        # that never had a key, and a duplicate key means the tombstone is there already.
        outranked = ["shredded"] if tombstone == "shredded" else ["deleted", "shredded"]
        with translated_errors("key registry"), suppress(DuplicateKeyError):
            await self.collection.update_one(
                {"_id": key_ref(object_id, version), "tombstone": {"$nin": outranked}},
                {
                    "$set": {
                        "tombstone": tombstone,
                        "object_id": object_id,
                        "version": version,
                    },
                    "$unset": {"wrapped": "", "kek_key_id": ""},
                    "$setOnInsert": {"created_at": datetime.now(UTC)},
                },
                upsert=True,
            )

    async def all(self) -> AsyncIterator[DataKeyRecord]:
        with translated_errors("key registry"):
            async for doc in self.collection.find({}):
                yield _from_doc(doc)

    async def backup(self, path: Path) -> int:
        """Every record (wrapped keys, tombstones) to ``path``, one MongoDB Extended JSON line
        each, mode 600; the file must not exist. Returns the count."""
        count = 0
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as out, translated_errors("key registry"):
            async for doc in self.collection.find({}).sort("_id"):
                out.write(json_util.dumps(doc, json_options=json_util.CANONICAL_JSON_OPTIONS))
                out.write("\n")
                count += 1
        return count

    async def restore(self, path: Path) -> tuple[int, int]:
        """Insert each record of a backup that is absent; a record present (a newer wrapping,
        a tombstone) is kept. Returns (restored, already present)."""
        restored = present = 0
        with path.open() as lines, translated_errors("key registry"):
            for number, line in enumerate(lines, 1):
                try:
                    doc = json_util.loads(line)
                    _from_doc(doc)  # a record of this registry, or refused
                except (ValueError, KeyError, TypeError) as exc:
                    raise Permanent(f"{path}:{number}: not a key registry record ({exc})") from None
                try:
                    await self.collection.insert_one(doc)
                    restored += 1
                except DuplicateKeyError:
                    present += 1
        return restored, present


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _to_doc(record: DataKeyRecord) -> dict[str, Any]:
    doc = asdict(record)
    doc["wrapped"] = _b64(record.wrapped) if record.wrapped is not None else None
    return {k: v for k, v in doc.items() if v is not None}


def _from_doc(doc: dict[str, Any]) -> DataKeyRecord:
    return DataKeyRecord(
        object_id=doc["object_id"],
        version=doc["version"],
        kek_key_id=doc.get("kek_key_id"),
        wrapped=base64.b64decode(doc["wrapped"]) if doc.get("wrapped") else None,
        created_at=doc["created_at"],
        written=doc.get("written"),
        tombstone=doc.get("tombstone"),
    )


async def require(registry: KeyRegistry, object_id: str, version: int) -> DataKeyRecord:
    """The version's usable key record; ``NotFound`` saying why there is none."""
    record = await registry.get(object_id, version)
    ref = key_ref(object_id, version)
    if record is None:
        raise NotFound(f"no data key for {ref} (never written)")
    if record.tombstone is not None or record.wrapped is None:
        raise NotFound(
            f"v{version} of {object_id} is {record.tombstone}: its data key is destroyed"
        )
    return record


@dataclass(frozen=True, slots=True)
class DataKeys:
    """Recovers the data key a ciphertext header names: registry record, unwrapped by the KEK."""

    registry: KeyRegistry
    kek: KeyEncryptionKey

    async def for_header(self, header_key_id: str, object_id: str, version: int) -> bytes:
        if header_key_id != key_ref(object_id, version):
            raise IntegrityError("ciphertext header names another object's data key")
        record = await require(self.registry, object_id, version)
        assert record.kek_key_id is not None and record.wrapped is not None
        return await self.kek.unwrap(record.kek_key_id, record.wrapped)


async def rotate_all(
    registry: KeyRegistry,
    kek: KeyEncryptionKey,
    *,
    disable_old: bool = False,
    clock: Callable[[], float] = time.monotonic,
    wait: Callable[[float], Awaitable[None]] = asyncio.sleep,
) -> tuple[str, list[DataKeyRecord]]:
    """Add a KEK version and re-wrap every data key under it; ciphertext is not touched.

    With ``disable_old``, older KEK versions are disabled only once a listing finds no record
    under them, taken at least ``WRAP_MAX_AGE_S`` after the rotation (``wait`` sleeps): an
    encrypt that wrapped a key before the rotation has registered it by then, or wraps it
    again under the new version (``workers.agents.encrypt.register``).
    Refuses (``Permanent``) if records under old versions remain after a few rounds.
    """
    newest = await kek.rotate()
    # From the rotation's answer: a wrap under an older version was asked for before it, so
    # (the wrap-to-registration guard, ``encrypt.register``) is registered within
    # WRAP_MAX_AGE_S of this, or replaced by a wrapping under a newer version.
    started = clock()
    done: list[DataKeyRecord] = []
    for _ in range(ROTATE_ROUNDS):
        stale = [r async for r in registry.all() if r.wrapped and r.kek_key_id != newest]
        for record in stale:
            assert record.kek_key_id is not None and record.wrapped is not None
            kek_key_id, wrapped = await kek.rewrap(record.kek_key_id, record.wrapped)
            if await registry.rewrap(record, kek_key_id, wrapped):
                done.append(replace(record, kek_key_id=kek_key_id, wrapped=wrapped))
        if stale:
            continue
        if not disable_old:
            return newest, done
        if (left := WRAP_MAX_AGE_S - (clock() - started)) > 0:
            await wait(left)
            continue
        await kek.disable_below(int(newest.rsplit(":v", 1)[1]))
        return newest, done
    raise Permanent(
        f"data keys under old KEK versions remain after {ROTATE_ROUNDS} rounds: "
        "old versions left enabled; run `keys rotate` again"
    )
