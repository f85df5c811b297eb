"""Clean-up of test buckets and containers, so test runs do not pile them up in the stores."""

import asyncio
from contextlib import suppress

import aiohttp
from aiobotocore.session import ClientCreatorContext
from azure.core.exceptions import ResourceNotFoundError
from azure.storage.blob.aio import BlobServiceClient

from workers.settings import Settings
from workers.stores.base import ObjectStore
from workers.stores.s3 import s3_client


def raw_s3(settings: Settings) -> ClientCreatorContext:
    """A plain aiobotocore client, for checks and clean-up the protocol does not offer."""
    return s3_client(settings)


async def drop_container(backend: str, bucket: str, settings: Settings) -> None:
    """Remove an emptied test bucket or container (gone already is fine).

    Not optional for S3: each SeaweedFS bucket takes volume slots of its own, and once the
    slots are used up every later write fails with InternalError.
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


async def remove_container(
    store: ObjectStore, backend: str, bucket: str, settings: Settings
) -> None:
    """Delete every object of ``store`` (on ``bucket``), close it, and drop the container."""
    try:
        keys = [info.key async for info in store.list()]
        for start in range(0, len(keys), 32):
            await asyncio.gather(*(store.delete(key) for key in keys[start : start + 32]))
    finally:
        await store.close()
    await drop_container(backend, bucket, settings)


async def raw_keys(backend: str, bucket: str, prefix: str, settings: Settings) -> list[str]:
    """Keys under ``prefix`` as the store's own API lists them (not through our backends)."""
    if backend == "s3":
        async with raw_s3(settings) as s3:
            page = await s3.list_objects_v2(Bucket=bucket, Prefix=prefix)
            return [o["Key"] for o in page.get("Contents", [])]
    if backend == "azure":
        conn = settings.azure_connection_string
        async with BlobServiceClient.from_connection_string(conn) as service:
            blobs = service.get_container_client(bucket).list_blobs(name_starts_with=prefix)
            return [b.name async for b in blobs]
    async with aiohttp.ClientSession() as http:
        url = f"{settings.gcs_endpoint}/storage/v1/b/{bucket}/o"
        async with http.get(url, params={"prefix": prefix}) as response:
            response.raise_for_status()
            return [o["name"] for o in (await response.json()).get("items", [])]


async def drop_locked_bucket(settings: Settings, bucket: str, timeout_s: float = 60) -> None:
    """Delete an object-locked bucket: each version once its retention has passed."""
    from botocore.exceptions import ClientError

    from tests.waiting import wait_for

    async with s3_client(settings) as s3:

        async def emptied() -> bool:
            versions = (await s3.list_object_versions(Bucket=bucket)).get("Versions", [])
            for v in versions:
                try:
                    await s3.delete_object(Bucket=bucket, Key=v["Key"], VersionId=v["VersionId"])
                except ClientError:  # still retained
                    return False
            return True

        await wait_for(emptied, timeout_s=timeout_s)
        await s3.delete_bucket(Bucket=bucket)
