"""In store-digest mode, no replica damaged on its way to a store ever counts as verified.

A relay in front of each real store flips the bytes of every third upload request (S3
PutObject/UploadPart, Azure Put Block, GCS resumable chunks). SeaweedFS and Azurite refuse those
(BadDigest, contentMD5); fake-gcs-server stores them but reports their MD5, which our write
compares. Every object still ends verified (retries send intact bytes), and every verified
replica read straight from the store (not through the relay) is the ciphertext encrypt recorded.
"""

import hashlib
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp import web

from bench.relay import relay
from tests.pipeline import Pipeline, write_objects
from workers.client.identity import cli_actor
from workers.client.kafka import produce
from workers.client.puts import requests_for_path, wait_verified
from workers.client.state import State
from workers.deps import target_url
from workers.settings import load_settings
from workers.stores import open_store

TARGETS = ("s3", "azure", "gcs")


class EveryThirdUpload:
    """Damages every third request that carries object bytes (counted across all stores)."""

    def __init__(self) -> None:
        self.uploads = 0
        self.damaged = 0

    def __call__(self, request: web.Request) -> bool:
        # S3 PutObject/UploadPart, Azure Put Blob/Put Block, GCS chunks and one-request uploads
        upload = (request.method == "PUT" and request.query.get("comp") in (None, "block")) or (
            request.method == "POST" and request.query.get("uploadType") == "multipart"
        )
        if not upload or request.content_length in (None, 0):
            return False
        self.uploads += 1
        if self.uploads % 3:
            return False
        self.damaged += 1
        return True


@pytest.fixture
def damage() -> EveryThirdUpload:
    return EveryThirdUpload()


@pytest.fixture
async def relays(damage: EveryThirdUpload) -> AsyncIterator[dict[str, str]]:
    settings = load_settings()
    azure_host = settings.azure_endpoint.removesuffix(f"/{settings.azure_account}")
    async with (
        relay(settings.s3_endpoint, corrupt_upload=damage) as s3,
        relay(azure_host, corrupt_upload=damage) as azure,
        relay(settings.gcs_endpoint, corrupt_upload=damage) as gcs,
    ):
        yield {
            "s3_url": s3,
            "azure_url": f"{azure}/{settings.azure_account}",
            "gcs_url": gcs,
        }


@pytest.fixture
def pipeline_overrides(relays: dict[str, str]) -> dict[str, object]:
    return {**relays, "verify_mode": "store-digest", "retry_cap_s": 2.0, "scrub_interval_s": 0}


async def test_no_damaged_replica_counts_as_verified(
    pipeline: Pipeline, state: State, source_dir: Path, damage: EveryThirdUpload
) -> None:
    write_objects(source_dir, 12, largest=8 * 1024)
    worker = pipeline.start_worker("all")
    requests = requests_for_path(source_dir, TARGETS, "default", {}, actor=cli_actor())
    await produce(pipeline.settings, requests)

    assert await wait_verified(state, requests, timeout_s=600) == {}
    assert damage.damaged > 0
    direct = pipeline.settings.model_copy(
        update={"s3_url": None, "azure_url": None, "gcs_url": None}
    )
    modes = set()
    for request in requests:
        doc = await state.object(request.object_id, 1)
        assert doc is not None
        for target in TARGETS:
            replica = doc["replicas"][target]
            assert replica.get("verified_at")
            modes.add(replica.get("verified_by"))
            store = open_store(target_url(target, direct), direct)
            try:
                digest = hashlib.sha256()
                async for chunk in store.read(doc["key"]):
                    digest.update(chunk)
            finally:
                await store.close()
            assert digest.hexdigest() == doc["ciphertext_sha256"], target
    assert "store-digest" in modes
    assert worker.poll() is None
