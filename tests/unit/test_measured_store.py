"""A measured store claims an optional capability only when the store it wraps has it."""

from collections.abc import AsyncIterator

from workers.metrics import MeasuredStore, measured
from workers.stores.base import ReportsDigest
from workers.stores.memory import MemoryStore


class DigestingStore(MemoryStore):
    """A memory store that reports a digest of what it holds, as S3, Azure and GCS do."""

    async def stored_digest(self, key: str) -> str | None:
        return f"sha256:{len(b''.join([c async for c in self.read(key)]))}"


async def one_chunk(data: bytes) -> AsyncIterator[bytes]:
    yield data


def test_a_store_without_its_own_digest_is_not_claimed_to_report_one(unique: str) -> None:
    store = measured(MemoryStore(unique))

    assert isinstance(store, MeasuredStore)
    assert not isinstance(store, ReportsDigest)  # verify reads such replicas back


async def test_a_store_with_its_own_digest_keeps_reporting_it_through_the_measure(
    unique: str,
) -> None:
    inner = DigestingStore(unique)
    await inner.ensure_container()
    await inner.write("k", one_chunk(b"four"))
    store = measured(inner)

    assert isinstance(store, ReportsDigest)
    assert await store.stored_digest("k") == "sha256:4"
