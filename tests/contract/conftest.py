"""The ``store`` fixture: every backend, each test on a fresh bucket or container."""

from collections.abc import AsyncIterator

import pytest

from tests.stores import remove_container
from workers.settings import Settings
from workers.stores.azure import AzureBlobStore
from workers.stores.base import ObjectStore
from workers.stores.gcs import GCSStore
from workers.stores.memory import MemoryStore
from workers.stores.s3 import S3Store

KiB, MiB = 1024, 1024 * 1024
BACKENDS = ["memory", "s3", "azure", "gcs"]
# Small parts so the multipart, block and chunked paths run on small objects; 5 MiB is S3's
# minimum part size, GCS chunks are multiples of 256 KiB.
PART_SIZES = {"memory": 64 * KiB, "s3": 5 * MiB, "azure": 1 * MiB, "gcs": 256 * KiB}


def make_store(backend: str, bucket: str, settings: Settings) -> ObjectStore:
    """A store of kind ``backend`` on ``bucket`` with the suite's small part size."""
    part_size = PART_SIZES[backend]
    match backend:
        case "s3":
            return S3Store(bucket, settings, part_size=part_size)
        case "azure":
            return AzureBlobStore(bucket, settings, part_size=part_size)
        case "gcs":
            return GCSStore(bucket, settings, part_size=part_size)
        case "memory":
            return MemoryStore(bucket, part_size=part_size)
    raise ValueError(backend)


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
async def store(backend: str, settings: Settings, unique: str) -> AsyncIterator[ObjectStore]:
    """A store on a new bucket, emptied and removed afterwards."""
    store = make_store(backend, unique, settings)
    await store.ensure_container()
    try:
        yield store
    finally:
        await remove_container(store, backend, unique, settings)
