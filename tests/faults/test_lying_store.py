"""A store that accepts writes but returns wrong bytes on read is never trusted.

A small proxy in front of the real fake-gcs-server passes every request through and flips the
bytes of object downloads (``alt=media``). Verify must refuse every GCS replica (after one repair
attempt), dead-letter it with the reason, and still verify the other two stores.

In ``read-back`` mode: a store that keeps what it received and returns other bytes is what only
a read-back catches. In ``store-digest`` mode (the default) its replicas count on the store's
digest, and the scrub's read-backs (``tests/faults/test_damaged_uploads.py`` covers the
write side) are what catch it later.
"""

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp import web

from bench.relay import relay
from tests.faults.test_replay_and_crashes import TARGETS
from tests.pipeline import Pipeline, write_objects
from tests.waiting import wait_for
from workers.client.identity import cli_actor
from workers.client.kafka import produce
from workers.client.puts import requests_for_path, wait_verified
from workers.client.state import State
from workers.settings import load_settings


def is_download(request: web.Request) -> bool:
    return request.method == "GET" and request.query.get("alt") == "media"


@pytest.fixture
async def lying_gcs() -> AsyncIterator[str]:
    async with relay(load_settings().gcs_endpoint, corrupt=is_download) as url:
        yield url


@pytest.fixture
def pipeline_overrides(lying_gcs: str) -> dict[str, object]:
    return {
        "gcs_url": lying_gcs,
        "broker_session_timeout_s": 10.0,
        "retry_cap_s": 10.0,
        "verify_mode": "read-back",
    }


async def test_replicas_from_a_store_returning_wrong_bytes_are_never_verified(
    pipeline: Pipeline, state: State, source_dir: Path
) -> None:
    write_objects(source_dir, 200, largest=8 * 1024)
    worker = pipeline.start_worker("all")
    requests = requests_for_path(source_dir, TARGETS, "default", {}, actor=cli_actor())
    await produce(pipeline.settings, requests)
    ids = [r.object_id for r in requests]

    failures = await wait_verified(state, requests, timeout_s=600)
    assert set(failures) == set(ids)
    assert all("gcs replica still differs after repair" in f for f in failures.values())

    async def honest_stores_verified() -> bool:
        docs = [await state.object(object_id, 1) for object_id in ids]
        return all(
            (d or {}).get("replicas", {}).get(t, {}).get("verified_at")
            for d in docs
            for t in ("s3", "azure")
        )

    # The GCS failure can be final before the other two stores are done: wait for them.
    await wait_for(honest_stores_verified, timeout_s=300)
    for object_id in ids:
        doc = await state.object(object_id, 1)
        assert doc is not None
        assert "verified_at" not in doc["replicas"].get("gcs", {})
    assert worker.poll() is None
