"""An inline payload's plaintext stays on the topics that carry it (ingest, accepted): after
a retry and two dead letters it is in no other topic, no MongoDB collection, no log line."""

import base64
from collections.abc import AsyncIterator

import orjson
import pytest
from aiohttp import web
from aiokafka import AIOKafkaConsumer

from bench.relay import relay
from schemas.events import Placement, Source
from tests.pipeline import Pipeline
from tests.unit.agents.conftest import content
from tests.waiting import wait_for
from topics import ACCEPTED, ALL, INGEST, RETRY
from workers.broker import kafka_options
from workers.client.identity import cli_actor
from workers.client.kafka import produce
from workers.client.puts import put_request
from workers.client.state import State
from workers.settings import load_settings

RETRIED = b"PLAINTEXT-retried-then-given-up-"
CHANGED = b"PLAINTEXT-source-changed-"
GCS = {"down": False}


def uploads_refused(request: web.Request) -> bool:
    return GCS["down"] and request.path.startswith("/upload/")  # object uploads only


@pytest.fixture
async def flaky_gcs() -> AsyncIterator[str]:
    GCS["down"] = False
    async with relay(load_settings().gcs_endpoint, unavailable=uploads_refused) as url:
        yield url


@pytest.fixture
def pipeline_overrides(flaky_gcs: str) -> dict[str, object]:
    return {"gcs_url": flaky_gcs, "max_attempts": 2, "retry_cap_s": 1.0}


async def records(pipeline: Pipeline, names: list[str]) -> list[tuple[str, bytes]]:
    consumer = AIOKafkaConsumer(
        *names,
        **kafka_options(pipeline.settings),
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await consumer.start()
    found = []
    try:
        while batch := await consumer.getmany(timeout_ms=3000):
            found += [
                (m.topic, (m.key or b"") + (m.value or b"")) for ms in batch.values() for m in ms
            ]
    finally:
        await consumer.stop()
    return found


async def test_inline_plaintext_is_kept_only_on_its_own_topics(
    pipeline: Pipeline, worker_all, state: State
) -> None:
    GCS["down"] = True  # its only store refuses: encrypt retries (re-reading it), gives up
    retried = put_request(
        Placement(name="retried.txt", targets=("gcs",)),
        Source(inline_b64=base64.b64encode(RETRIED * 50).decode()),
        content(RETRIED * 50),
        actor=cli_actor(),
    )
    changed = put_request(
        Placement(name="changed.txt", targets=("s3", "azure")),
        Source(inline_b64=base64.b64encode(CHANGED * 50).decode()),
        content(b"what the client measured"),
        actor=cli_actor(),
    )
    await produce(pipeline.settings, [retried, changed])
    ids = [retried.correlation_id, changed.correlation_id]

    async def both_dead_lettered() -> bool:
        return await state.db["deadletters"].count_documents({"correlation_id": {"$in": ids}}) == 2

    await wait_for(both_dead_lettered, timeout_s=180)
    reasons = {d["correlation_id"]: d["reason"] async for d in state.db["deadletters"].find({})}
    assert reasons[retried.correlation_id].startswith("gave up after retries")
    assert "source changed since put" in reasons[changed.correlation_id]

    prefix = pipeline.settings.topic_prefix
    own = {INGEST.name(prefix), ACCEPTED.name(prefix)}
    every = await records(pipeline, [spec.name(prefix) for spec in ALL])
    retries = [v for t, v in every if t == RETRY.name(prefix)]
    assert retries and all(b'"record":{' in v for v in retries)  # re-read, never carried
    elsewhere = b"".join(v for t, v in every if t not in own)
    for name in await state.db.list_collection_names():
        elsewhere += b"".join([orjson.dumps(d, default=str) async for d in state.db[name].find({})])
    elsewhere += pipeline.worker_logs().encode()
    for secret in (RETRIED, CHANGED):
        assert secret not in elsewhere
        assert base64.b64encode(secret * 50)[:40] not in elsewhere
    seen = base64.b64encode(RETRIED * 50)[:40]
    assert any(seen in v for t, v in every if t == ACCEPTED.name(prefix))  # the scan can see it
