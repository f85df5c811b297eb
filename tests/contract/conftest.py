"""The ``store`` fixture: every backend, each test on a fresh bucket or container."""

from collections.abc import AsyncIterator
from contextlib import suppress

import aiohttp
import pytest
from aiobotocore.session import get_session
from azure.core.exceptions import ResourceNotFoundError
from azure.storage.blob.aio import BlobServiceClient

from workers.settings import Settings
from workers.stores.azure import AzureBlobStore
from workers.stores.base import ObjectStore
from workers.stores.gcs import GCSStore
from workers.stores.memory import MemoryStore
from workers.stores.s3 import S3Store, s3_credentials

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


def raw_s3(settings: Settings):  # type: ignore[no-untyped-def]
    """A plain aiobotocore client, for checks and clean-up the protocol does not offer."""
    access, secret = s3_credentials(settings)
    return get_session().create_client(
        "s3",
        endpoint_url=settings.s3_endpoint,
        region_name=settings.s3_region,
        aws_access_key_id=access,
        aws_secret_access_key=secret,
    )


async def drop_container(backend: str, bucket: str, settings: Settings) -> None:
    """Remove an emptied test bucket or container.

    Not optional for S3: SeaweedFS gives every bucket 7 of its ~77 volume slots, so a few
    leftover buckets make every later write fail with InternalError.
    """
    if backend == "s3":
        async with raw_s3(settings) as s3:
            with suppress(s3.exceptions.NoSuchBucket):
                await s3.delete_bucket(Bucket=bucket)
    elif backend == "azure":
        conn = settings.azure_connection_string
        async with BlobServiceClient.from_connection_string(conn) as service:
            with suppress(ResourceNotFoundError):
                await service.delete_container(bucket)
    elif backend == "gcs":
        async with aiohttp.ClientSession() as http:
            url = f"{settings.gcs_endpoint}/storage/v1/b/{bucket}"
            async with http.delete(url) as response:
                assert response.status in (200, 204, 404), response.status


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
        async for info in store.list():
            await store.delete(info.key)
    finally:
        await store.close()
        await drop_container(backend, unique, settings)
