"""A service goes away while 200 objects are in flight; when it is back, everything completes.

Each outage lasts a fixed time: that duration is the scenario, not a synchronisation. All
waiting on outcomes is on conditions with timeouts.
"""

import time
from pathlib import Path

import pytest

from tests.faults.test_replay_and_crashes import TARGETS, assert_exactly_once
from tests.pipeline import Pipeline, audit_trails, write_objects
from tests.waiting import wait_for
from workers.client.identity import cli_actor
from workers.client.kafka import produce
from workers.client.puts import requests_for_path, wait_verified
from workers.client.state import State
from workers.core.versions import verified_everywhere
from workers.settings import Settings
from workers.stack import control


@pytest.fixture
def pipeline_overrides() -> dict[str, object]:
    # Faster take-over and retries than production, so a 30 s outage costs ~40 s, not ~90 s.
    return {"broker_session_timeout_s": 10.0, "retry_cap_s": 10.0}


async def run_with_outage(
    pipeline: Pipeline,
    state: State,
    source_dir: Path,
    service: str,
    outage_s: float,
    put_during: int = 0,
) -> tuple[dict[str, bytes], list[str]]:
    """Put 200 objects, take ``service`` away for ``outage_s`` once some are verified; the
    last ``put_during`` of them are put only once it is away (so they meet the outage, however
    fast the others went)."""
    files = write_objects(source_dir, 200, largest=16 * 1024)
    pipeline.start_worker("all")
    requests = requests_for_path(source_dir, TARGETS, "default", {}, actor=cli_actor())
    before, during = requests[: len(requests) - put_during], requests[len(requests) - put_during :]
    await produce(pipeline.settings, before)
    ids = [r.object_id for r in requests]

    async def some_verified() -> bool:
        return verified_everywhere(await state.object(ids[0], 1))

    await wait_for(some_verified, timeout_s=300)
    settings: Settings = pipeline.settings
    control.stop_service(settings, service)
    away = time.monotonic()
    if during:
        await produce(settings, during)
    time.sleep(max(0.0, outage_s - (time.monotonic() - away)))
    control.start_service(settings, service)
    back = time.monotonic()
    assert await wait_verified(state, requests, timeout_s=600) == {}, pipeline.worker_logs()[-3000:]
    print(f"{service}: {outage_s} s outage, all 200 verified {time.monotonic() - back:.1f} s after")
    return files, ids


async def test_mongodb_outage_sink_backs_off_and_catches_up(
    pipeline: Pipeline, state: State, source_dir: Path, tmp_path: Path
) -> None:
    # Encrypt (key registry) and the sink both need MongoDB: both back off until it returns.
    files, _ = await run_with_outage(pipeline, state, source_dir, "ferretdb", 20)
    await assert_exactly_once(pipeline, state, files, tmp_path)


async def test_broker_outage_of_20_s(
    pipeline: Pipeline, state: State, source_dir: Path, tmp_path: Path
) -> None:
    files, _ = await run_with_outage(pipeline, state, source_dir, "kafka", 20)
    await assert_exactly_once(pipeline, state, files, tmp_path)


@pytest.mark.parametrize(
    ("service", "target"), [("azurite", "azure"), ("gcs", "gcs"), ("seaweedfs", "s3")]
)
async def test_store_outage_of_30_s_is_retried_then_completes(
    pipeline: Pipeline, state: State, source_dir: Path, tmp_path: Path, service: str, target: str
) -> None:
    files, ids = await run_with_outage(pipeline, state, source_dir, service, 30, put_during=100)
    await assert_exactly_once(pipeline, state, files, tmp_path)
    trails = await audit_trails(state)
    retried = [r for object_id in ids for r in trails[object_id] if r["outcome"] == "retry"]
    assert retried, f"no retry was audited while {target} was down"
