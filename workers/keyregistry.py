"""The key registry: the only copy of each object version's wrapped data key.

Ciphertext headers name their key (``dek:<object_id>:v<version>``) but do not carry it, so:
- rotation re-wraps every data key here under the newest KEK version, without touching a byte
  of ciphertext in any store;
- crypto-shredding deletes the record: every replica of that version becomes unreadable.
The record also remembers what encrypt wrote (digests, sizes), which makes a redelivered
encrypt idempotent: it re-announces the finished object instead of writing it again.
"""

import base64
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, replace
from datetime import datetime
from typing import Any, Protocol

from pymongo import AsyncMongoClient
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.errors import PyMongoError

from workers.errors import IntegrityError, NotFound, Permanent, Retryable
from workers.keys import KeyEncryptionKey
from workers.mongo import transient


def key_ref(object_id: str, version: int) -> str:
    """The reference a ciphertext header carries instead of a wrapped key."""
    return f"dek:{object_id}:v{version}"


@dataclass(frozen=True, slots=True)
class DataKeyRecord:
    """One object version's wrapped data key, and what encrypt wrote with it."""

    object_id: str
    version: int
    kek_key_id: str
    wrapped: bytes
    created_at: datetime
    written: dict[str, Any] | None = None  # ObjectEncrypted fields once the write completed

    def __repr__(self) -> str:  # never print key material, even wrapped
        return f"DataKeyRecord({key_ref(self.object_id, self.version)}, kek={self.kek_key_id})"


class KeyRegistry(Protocol):
    async def get(self, object_id: str, version: int) -> DataKeyRecord | None: ...

    async def put(self, record: DataKeyRecord) -> None:
        """Insert or replace the record of one object version."""

    async def forget(self, object_id: str, version: int) -> bool:
        """Destroy the wrapped key (crypto-shredding); True if there was one."""

    def all(self) -> Any:
        """Async iterator over every record (for rotation)."""

    async def close(self) -> None: ...


class MemoryKeyRegistry:
    """In-process registry for unit tests (real logic over a dict)."""

    def __init__(self) -> None:
        self.records: dict[str, DataKeyRecord] = {}

    async def get(self, object_id: str, version: int) -> DataKeyRecord | None:
        return self.records.get(key_ref(object_id, version))

    async def put(self, record: DataKeyRecord) -> None:
        self.records[key_ref(record.object_id, record.version)] = record

    async def forget(self, object_id: str, version: int) -> bool:
        return self.records.pop(key_ref(object_id, version), None) is not None

    async def all(self) -> Any:
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

    @property
    def collection(self) -> AsyncCollection[dict[str, Any]]:
        if self.client is None:
            self.client = AsyncMongoClient(self.url, serverSelectionTimeoutMS=5000)
        return self.client[self.database]["data_keys"]

    async def close(self) -> None:
        if self.client is not None:
            await self.client.close()

    async def get(self, object_id: str, version: int) -> DataKeyRecord | None:
        with translated_errors():
            doc = await self.collection.find_one({"_id": key_ref(object_id, version)})
        return _from_doc(doc) if doc else None

    async def put(self, record: DataKeyRecord) -> None:
        doc = {**asdict(record), "wrapped": base64.b64encode(record.wrapped).decode()}
        with translated_errors():
            await self.collection.replace_one(
                {"_id": key_ref(record.object_id, record.version)}, doc, upsert=True
            )

    async def forget(self, object_id: str, version: int) -> bool:
        with translated_errors():
            result = await self.collection.delete_one({"_id": key_ref(object_id, version)})
        return result.deleted_count == 1

    async def all(self) -> Any:
        async for doc in self.collection.find({}):
            yield _from_doc(doc)


@contextmanager
def translated_errors() -> Iterator[None]:
    """A transient MongoDB error (unreachable, shutting down) is retried; the rest is permanent."""
    try:
        yield
    except PyMongoError as exc:
        if transient(exc):
            raise Retryable(f"key registry unavailable: {type(exc).__name__}") from None
        raise Permanent(f"key registry refused: {type(exc).__name__}") from None


def _from_doc(doc: dict[str, Any]) -> DataKeyRecord:
    return DataKeyRecord(
        object_id=doc["object_id"],
        version=doc["version"],
        kek_key_id=doc["kek_key_id"],
        wrapped=base64.b64decode(doc["wrapped"]),
        created_at=doc["created_at"],
        written=doc.get("written"),
    )


async def rewrapped(record: DataKeyRecord, kek: KeyEncryptionKey) -> DataKeyRecord:
    """The record with its data key re-wrapped under the KEK's newest version."""
    kek_key_id, wrapped = await kek.rewrap(record.kek_key_id, record.wrapped)
    return replace(record, kek_key_id=kek_key_id, wrapped=wrapped)


async def require(registry: KeyRegistry, object_id: str, version: int) -> DataKeyRecord:
    record = await registry.get(object_id, version)
    if record is None:
        raise NotFound(
            f"no data key for {key_ref(object_id, version)} (never written or forgotten)"
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
        return await self.kek.unwrap(record.kek_key_id, record.wrapped)


async def rotate_all(
    registry: KeyRegistry, kek: KeyEncryptionKey
) -> tuple[str, list[DataKeyRecord]]:
    """Add a KEK version and re-wrap every data key under it; ciphertext is not touched."""
    newest = await kek.rotate()
    done = []
    async for record in registry.all():
        if record.kek_key_id != newest:
            record = await rewrapped(record, kek)
            await registry.put(record)
            done.append(record)
    return newest, done
