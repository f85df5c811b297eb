"""The staging sweep removes an old upload only once nothing needs it: its request settled,
or no request references it. A request decided but not settled, or dead-lettered, keeps it."""

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest

from workers import staging
from workers.catalog import Decision, MemoryCatalog
from workers.kms.keyregistry import DataKeyRecord, MemoryKeyRegistry
from workers.stores.memory import MemoryStore

PREFIX = "_staging/"
NOW = datetime.now(UTC)
LATER = NOW + timedelta(hours=1)  # the cutoff: every upload written now is older


async def one_chunk(data: bytes) -> AsyncIterator[bytes]:
    yield data


@pytest.fixture
async def store(unique: str) -> MemoryStore:
    store = MemoryStore(unique)
    await store.ensure_container()
    return store


async def staged(store: MemoryStore, request_id: str) -> str:
    key = staging.staged_key(PREFIX, "default", request_id)
    await store.write(key, one_chunk(b"plaintext"))
    return key


async def decided(
    catalog: MemoryCatalog, registry: MemoryKeyRegistry, request_id: str, *, unchanged: bool = False
) -> Decision:
    decision = Decision(request_id, f"obj-{request_id}", 1, unchanged, NOW)
    await catalog.record(decision)
    await registry.insert(DataKeyRecord(decision.object_id, 1, "kek:1", b"wrapped", NOW))
    return decision


async def left(store: MemoryStore) -> set[str]:
    return {info.key async for info in store.list(PREFIX)}


async def test_only_uploads_nothing_needs_are_swept(store: MemoryStore) -> None:
    catalog, registry = MemoryCatalog(), MemoryKeyRegistry()
    never_sent = await staged(store, "never-sent")
    legacy = f"{PREFIX}no-tenant"  # a key of no request: not of the <tenant>/<id> form
    await store.write(legacy, one_chunk(b"old"))
    encrypted = await staged(store, "encrypted")
    done = await decided(catalog, registry, "encrypted")
    await registry.record_written(done.object_id, 1, {"key": "k"})
    repeated = await staged(store, "repeated")
    await decided(catalog, registry, "repeated", unchanged=True)
    deleted = await staged(store, "deleted")
    gone = await decided(catalog, registry, "deleted")
    await registry.tombstone(gone.object_id, 1, "deleted")

    in_flight = await staged(store, "in-flight")  # decided, not encrypted yet
    await decided(catalog, registry, "in-flight")
    refused = await staged(store, "refused")  # dead-lettered before it was decided
    catalog.letters.add("refused")
    stuck = await staged(store, "stuck")  # decided, then dead-lettered by encrypt
    await decided(catalog, registry, "stuck")
    catalog.letters.add("stuck")

    swept = await staging.sweep(store, PREFIX, LATER, catalog, registry)

    assert await left(store) == {in_flight, refused, stuck}
    assert swept == len({never_sent, legacy, encrypted, repeated, deleted})


async def test_a_young_upload_is_kept_whatever_its_request(store: MemoryStore) -> None:
    key = await staged(store, "unsent-yet")

    assert (
        await staging.sweep(
            store, PREFIX, NOW - timedelta(hours=1), MemoryCatalog(), MemoryKeyRegistry()
        )
        == 0
    )
    assert await left(store) == {key}


def test_a_staged_key_names_its_tenant_and_request() -> None:
    key = staging.staged_key(PREFIX, "acme", "r-1")

    assert key == "_staging/acme/r-1"
    assert staging.request_of(key, PREFIX) == "r-1"
    assert staging.request_of("_staging/r-1", PREFIX) is None
    assert staging.request_of("elsewhere/acme/r-1", PREFIX) is None
