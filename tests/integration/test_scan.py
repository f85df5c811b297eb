"""The scan stage's handler against the real database and a real source bucket: a job's
pages planned in turn, each sending its puts and the next page, the last ending the listing;
a cancelled job plans nothing more."""

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import pytest
from pymongo import AsyncMongoClient

from schemas.events import IngestRequest, SyncPage
from tests.stores import remove_container
from topics import INGEST, SYNC
from workers.agents import scan
from workers.deps import Deps, build_deps
from workers.settings import Settings
from workers.stores import open_store
from workers.sync.control import first_page
from workers.sync.jobs import SyncBook


@pytest.fixture
async def deps(settings: Settings, unique: str) -> AsyncIterator[Deps]:
    ours = settings.model_copy(
        update={"mongo_database": unique, "source_buckets": (unique,), "sync_page": 2}
    )
    source = open_store(f"s3://{unique}", ours)
    await source.ensure_container()
    for key in ("d/a", "d/b", "d/c"):
        await source.write(key, one_chunk(key.encode()))
    built = build_deps(ours)
    built.syncs = SyncBook(ours.mongo_url, unique)
    yield built
    await built.close()
    await remove_container(source, "s3", unique, ours)
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(ours.mongo_url)
    await client.drop_database(unique)
    await client.close()


async def one_chunk(data: bytes) -> AsyncIterator[bytes]:
    yield data


async def test_pages_are_planned_in_turn_and_a_cancelled_job_stops(deps: Deps) -> None:
    assert deps.syncs is not None
    bucket = deps.settings.source_buckets[0]
    first = first_page(f"s3://{bucket}/d", ["s3"], "default", actor="alice")
    sent = await scan.handle(first, deps)
    assert [(e.topic, type(e.event)) for e in sent] == [
        (INGEST, IngestRequest), (INGEST, IngestRequest), (SYNC, SyncPage)
    ]  # fmt: skip
    following = sent[-1].event
    assert isinstance(following, SyncPage) and following.after == "d/b"
    again = await scan.handle(first, deps)  # a redelivered page: the same events (ids)
    assert [e.event.event_id for e in again] == [e.event.event_id for e in sent]
    last = await scan.handle(following, deps)
    assert [e.topic for e in last] == [INGEST]
    job = await deps.syncs.job(first.correlation_id)
    assert job is not None and (job["state"], job["pages"]) == ("listed", 2)
    status = await deps.syncs.status(job)
    assert (status["counts"]["seen"], status["counts"]["new"], status["planned"]) == (3, 3, 3)

    other = first_page(f"s3://{bucket}/d", ["s3"], "default", actor="alice")
    await deps.syncs.start(other, other.produced_at)
    assert await deps.syncs.cancel(other.correlation_id, datetime.now(UTC))
    assert await scan.handle(other, deps) == []
    assert not await deps.syncs.cancel(other.correlation_id, datetime.now(UTC))
