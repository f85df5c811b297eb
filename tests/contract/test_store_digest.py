"""What each real local store proves about the bytes it received (verify's store-digest mode).

Found on the local stack, and asserted here so a change of image shows:
- SeaweedFS checks ``x-amz-checksum-sha256`` on PutObject and UploadPart (a wrong one: 400
  BadDigest), checks the part checksums named in CompleteMultipartUpload, and returns the
  ChecksumSHA256 (composite ``-N`` for multipart) on writes and on HeadObject with ChecksumMode.
- Azurite checks the Content-MD5 of a Put Blob and of a Put Block (a wrong one: 400
  InvalidOperation, "Provided contentMD5 doesn't match."; Azure itself says Md5Mismatch), keeps
  a Put Blob's MD5 as the blob's Content-MD5 and lists the committed blocks of a block list (and
  keeps no Content-MD5 for one).
- fake-gcs-server does NOT check a hash the client sends (a wrong ``md5Hash`` in the resource or
  ``X-Goog-Hash`` is accepted), but it computes ``md5Hash`` and ``crc32c`` itself from the bytes
  it received: a mismatch is reported, not refused, and our write checks the report.
So every local store either refuses or reports; none needs the read-back fallback. The fallback
for a store that cannot report (the memory store here) is proven at the end.
"""

import base64
import hashlib
import io
import os
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web
from azure.core.exceptions import HttpResponseError
from azure.storage.blob.aio import BlobServiceClient
from botocore.exceptions import ClientError

from bench.relay import relay
from schemas.events import Placement, ReplicaWritten, event_id
from tests.contract.conftest import PART_SIZES, make_store
from tests.contract.test_store_contract import chunked
from tests.stores import drop_container, raw_keys, raw_s3, remove_container
from workers.agents import verify
from workers.catalog import MemoryCatalog
from workers.core.digests import (
    AZURE_BLOCKS,
    AZURE_MD5,
    GCS_MD5,
    S3_SHA256,
    block_list_digest,
    s3_checksum_sha256,
    store_digest,
)
from workers.deps import Deps
from workers.errors import Retryable
from workers.kms.keyregistry import MemoryKeyRegistry
from workers.kms.keyring import LocalKeyring
from workers.settings import Settings
from workers.stores.base import ObjectStore, ReportsDigest
from workers.stores.memory import MemoryStore

REAL = ["s3", "azure", "gcs"]


@pytest.fixture(params=REAL)
def real(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
async def store(real: str, settings: Settings, unique: str) -> AsyncIterator[ObjectStore]:
    store = make_store(real, unique, settings)
    await store.ensure_container()
    try:
        yield store
    finally:
        await remove_container(store, real, unique, settings)


def expected_digest(backend: str, data: bytes, key_blocks: list[tuple[str, int]]) -> str:
    """The store digest worked out here from the bytes alone (not by the backend's code)."""
    part = PART_SIZES[backend]
    parts = [data[i : i + part] for i in range(0, len(data), part)] or [b""]
    if backend == "s3":
        return store_digest(
            S3_SHA256, s3_checksum_sha256([hashlib.sha256(p).digest() for p in parts])
        )
    md5 = base64.b64encode(hashlib.md5(data).digest()).decode()
    if backend == "gcs":
        return store_digest(GCS_MD5, md5)
    if len(data) <= part:  # one Put Blob
        return store_digest(AZURE_MD5, md5)
    return store_digest(AZURE_BLOCKS, block_list_digest(key_blocks))


@pytest.mark.parametrize("parts", [1, 3])
async def test_the_store_reports_the_digest_of_what_it_received(
    store: ObjectStore, real: str, parts: int, settings: Settings
) -> None:
    part = PART_SIZES[real]
    data = os.urandom(part * (parts - 1) + 1000)

    result = await store.write("obj", chunked(data))

    assert isinstance(store, ReportsDigest)
    assert result.store_digest is not None
    assert await store.stored_digest("obj") == result.store_digest
    blocks: list[tuple[str, int]] = []
    if real == "azure":  # the block ids are the write's own: read them from the service
        conn = settings.azure_connection_string
        async with BlobServiceClient.from_connection_string(conn) as service:
            blob = service.get_container_client(store.container).get_blob_client("obj")  # type: ignore[attr-defined]
            committed, _ = await blob.get_block_list("committed")
        blocks = [(b.id, b.size) for b in committed]
        sizes = [len(data[i : i + part]) for i in range(0, len(data), part)] if parts > 1 else []
        assert [size for _, size in blocks] == sizes  # one request: no block list
    assert result.store_digest == expected_digest(real, data, blocks)
    if real == "s3" and parts > 1:
        assert result.store_digest.endswith(f"-{parts}")  # composite: a checksum of checksums


async def test_seaweedfs_refuses_a_wrong_sha256(settings: Settings, unique: str) -> None:
    data, wrong = os.urandom(1000), base64.b64encode(hashlib.sha256(b"other").digest()).decode()
    async with raw_s3(settings) as s3:
        await s3.create_bucket(Bucket=unique)
        try:
            with pytest.raises(ClientError) as put:
                await s3.put_object(Bucket=unique, Key="obj", Body=data, ChecksumSHA256=wrong)
            assert put.value.response["Error"]["Code"] == "BadDigest"
            created = await s3.create_multipart_upload(
                Bucket=unique, Key="mp", ChecksumAlgorithm="SHA256"
            )
            upload = {"Bucket": unique, "Key": "mp", "UploadId": created["UploadId"]}
            try:
                with pytest.raises(ClientError) as part:
                    await s3.upload_part(PartNumber=1, Body=data, ChecksumSHA256=wrong, **upload)
                assert part.value.response["Error"]["Code"] == "BadDigest"
            finally:
                await s3.abort_multipart_upload(**upload)
            assert "Contents" not in await s3.list_objects_v2(Bucket=unique)
        finally:
            await drop_container("s3", unique, settings)


async def test_azurite_refuses_a_blob_or_block_with_a_wrong_md5(
    settings: Settings, unique: str
) -> None:
    data = os.urandom(1000)
    wrong = base64.b64encode(hashlib.md5(b"other").digest()).decode()
    async with BlobServiceClient.from_connection_string(settings.azure_connection_string) as svc:
        container = svc.get_container_client(unique)
        await container.create_container()
        try:
            blob = container.get_blob_client("obj")
            with pytest.raises(HttpResponseError) as refused:
                await blob.upload_blob(data, headers={"Content-MD5": wrong})
            assert refused.value.status_code == 400
            assert "contentMD5" in str(refused.value)
            with pytest.raises(HttpResponseError) as refused:
                await blob.stage_block(
                    "b-000000",
                    io.BytesIO(data),
                    length=len(data),
                    transactional_content_md5=hashlib.md5(b"other").digest(),
                )
            assert refused.value.status_code == 400
            assert "contentMD5" in str(refused.value)
        finally:
            await svc.delete_container(unique)


async def test_fake_gcs_does_not_check_a_sent_md5_but_reports_the_received_one(
    settings: Settings, unique: str
) -> None:
    """Plainly: fake-gcs-server accepts a wrong hash. What makes GCS's digest trustworthy
    locally is that it computes md5Hash from the bytes it received (checked below, and
    through a damaging relay in the next test), which our write compares with ours."""
    data = os.urandom(1000)
    wrong = base64.b64encode(hashlib.md5(b"other").digest()).decode()
    base = f"{settings.gcs_endpoint}/storage/v1/b"
    async with aiohttp.ClientSession() as http:
        async with http.post(
            base, params={"project": settings.gcs_project}, json={"name": unique}
        ) as r:
            r.raise_for_status()
        try:
            url = f"{settings.gcs_endpoint}/upload/storage/v1/b/{unique}/o"
            resource = {"name": "obj", "md5Hash": wrong}
            async with http.post(url, params={"uploadType": "resumable"}, json=resource) as r:
                session = r.headers["Location"]
            headers = {"Content-Range": "bytes 0-999/1000", "X-Goog-Hash": f"md5={wrong}"}
            async with http.put(session, data=data, headers=headers) as r:
                assert r.status == 200  # not refused: fake-gcs-server does not check
                stored = await r.json(content_type=None)
            assert stored["md5Hash"] == base64.b64encode(hashlib.md5(data).digest()).decode()
            assert stored["md5Hash"] != wrong
        finally:
            async with http.delete(f"{base}/{unique}/o/obj"):
                pass
            await drop_container("gcs", unique, settings)


def is_upload(backend: str) -> Callable[[web.Request], bool]:
    """The requests that carry object bytes, per store."""

    def upload(request: web.Request) -> bool:
        if backend == "gcs" and request.query.get("uploadType") == "multipart":
            return True  # a one-request upload (the relay damages its media part only)
        if request.method != "PUT":
            return False
        if backend == "azure":
            return request.query.get("comp") in (None, "block")  # Put Blob, Put Block
        return True  # S3 PutObject/UploadPart, GCS resumable chunks

    return upload


UPSTREAM = {"s3": "s3_endpoint", "azure": "azure_endpoint", "gcs": "gcs_endpoint"}


def via(backend: str, settings: Settings, url: str) -> Settings:
    if backend == "azure":
        return settings.model_copy(update={"azure_url": f"{url}/{settings.azure_account}"})
    return settings.model_copy(update={f"{'s3' if backend == 's3' else 'gcs'}_url": url})


@pytest.mark.parametrize("parts", [1, 3])
async def test_an_upload_damaged_in_transit_is_never_confirmed(
    real: str, parts: int, settings: Settings, unique: str
) -> None:
    upstream = getattr(settings, UPSTREAM[real])
    if real == "azure":
        upstream = upstream.removesuffix(f"/{settings.azure_account}")
    data = os.urandom(PART_SIZES[real] * (parts - 1) + 1000)
    honest = make_store(real, unique, settings)
    await honest.ensure_container()
    try:
        async with relay(upstream, corrupt_upload=is_upload(real)) as url:
            damaged = make_store(real, unique, via(real, settings, url))
            try:
                # Refused for its digest: S3 BadDigest, Azure's MD5 check, GCS's MD5 report.
                refusal = "BadDigest|InvalidOperation|stored MD5 differs"
                with pytest.raises(Retryable, match=refusal):
                    await damaged.write("obj", chunked(data))
            finally:
                await damaged.close()
        # Refused (S3, Azure) or reported and removed (GCS): nothing looks written.
        assert await raw_keys(real, unique, "", settings) == []
    finally:
        await remove_container(honest, real, unique, settings)


async def test_a_store_reporting_no_digest_is_read_back(tmp_path: Path, unique: str) -> None:
    """The fallback: the memory store has no ReportsDigest, so even in store-digest mode verify
    reads its replica back (and says so)."""
    store = MemoryStore(unique, part_size=1000)
    await store.ensure_container()
    assert not isinstance(store, ReportsDigest)
    data = os.urandom(5000)
    written = await store.write("k", chunked(data))
    assert written.store_digest is None
    settings = Settings(home=tmp_path, kek_provider="local", verify_mode="store-digest")
    deps = Deps(
        settings=settings,
        stores={"memory": store},
        staging=store,
        kek=LocalKeyring(tmp_path / "keyring.json"),
        registry=MemoryKeyRegistry(),
        catalog=MemoryCatalog(),
    )
    event = ReplicaWritten(
        kind=ReplicaWritten.KIND,
        v=1,
        event_id=event_id(ReplicaWritten.KIND, "o1", 1, "memory"),
        object_id="o1",
        version=1,
        correlation_id="c",
        produced_at=datetime.now(UTC),
        placement=Placement(name="a", targets=("memory",)),
        target="memory",
        key="k",
        ciphertext_size=len(data),
        ciphertext_sha256=hashlib.sha256(data).hexdigest(),
        plaintext_sha256=hashlib.sha256(b"").hexdigest(),
        key_id="kek",
        store_digest=store_digest(S3_SHA256, "claimed-but-unprovable"),
    )
    (out,) = await verify.handle(event, deps)
    assert out.event.mode == "read-back"  # type: ignore[attr-defined]
