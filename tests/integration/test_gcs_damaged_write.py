"""A GCS write whose stored MD5 is not ours fails, and destroys no object it did not write.

A relay in front of fake-gcs-server flips the bytes of the failing write's upload, and another
writer's intact copy of the same key lands between that upload and its MD5 check (a repair
racing a redelivery of itself): the failed write must leave the intact object in place.
"""

from collections.abc import AsyncIterator
from typing import Any

import pytest

from bench.relay import relay
from tests.stores import remove_container
from workers.errors import Retryable
from workers.settings import Settings
from workers.stores.gcs import GCSStore

KEY = "tenant/obj/v1/writer"
GOOD = b"the intact ciphertext" * 100


async def one_chunk(data: bytes) -> AsyncIterator[bytes]:
    yield data


async def content(store: GCSStore, key: str) -> bytes:
    return b"".join([chunk async for chunk in store.read(key)])


class RacedStore(GCSStore):
    """A GCS store whose upload is overtaken by ``other``'s write of the same key."""

    def __init__(self, bucket: str, settings: Settings, other: GCSStore) -> None:
        super().__init__(bucket, settings)
        self.other = other

    async def _put(self, key: str, resource: dict[str, Any], data: bytes) -> dict[str, Any]:
        stored = await super()._put(key, resource, data)
        await self.other.write(key, one_chunk(GOOD))  # lands before this write's MD5 check
        return stored


@pytest.fixture
async def direct(settings: Settings, unique: str) -> AsyncIterator[GCSStore]:
    store = GCSStore(unique, settings)
    await store.ensure_container()
    try:
        yield store
    finally:
        await remove_container(store, "gcs", unique, settings)


async def test_a_damaged_write_leaves_another_writers_intact_object(
    settings: Settings, unique: str, direct: GCSStore
) -> None:
    await direct.write(KEY, one_chunk(GOOD))
    async with relay(settings.gcs_endpoint, corrupt_upload=lambda _: True) as damaging:
        raced = RacedStore(unique, settings.model_copy(update={"gcs_url": damaging}), direct)
        try:
            with pytest.raises(Retryable, match="MD5 differs"):
                await raced.write(KEY, one_chunk(GOOD))
        finally:
            await raced.close()

    assert await content(direct, KEY) == GOOD
