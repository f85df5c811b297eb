"""Events acknowledged without being handled are re-driven: nothing stays pending for good.

The verify group's offsets are moved past every replica written before its worker starts, as
the start-up rebalance once did to a few events: without the reconciler those versions would
stay pending forever. The sink's leader finds them quiet for ``reconcile_after_s`` and sends
their recorded ``replicated`` events again through the retry agent. The same for removals:
the delete group's offsets are moved past a delete request and past the removals of a version
already tombstoned; both are re-driven until every replica is removed.
"""

from collections.abc import Iterable
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition

from tests.pipeline import EXPECTED_STEPS, Pipeline, settled_trails, steps, write_objects
from tests.stores import raw_keys
from tests.waiting import wait_for
from topics import AUDIT, DELETE, REMOVE, REPLICATED, TopicSpec
from workers.agents import delete
from workers.broker import kafka_options
from workers.client.identity import cli_actor
from workers.client.kafka import produce, produce_events
from workers.client.ops import delete_request, request_removal, wait_removed
from workers.client.puts import requests_for_path, wait_verified
from workers.client.state import State
from workers.deps import build_deps, version_prefix

TARGETS = ("s3", "azure", "gcs")
NOT_VERIFY = "ingest,encrypt,replicate,tier,delete,retry,sink"


@pytest.fixture
def pipeline_overrides() -> dict[str, object]:
    return {"reconcile_interval_s": 2.0, "reconcile_after_s": 5.0}


async def skip_to_end(
    pipeline: Pipeline, group: str, specs: Iterable[TopicSpec] = REPLICATED.values()
) -> int:
    """Commit ``group``'s offsets at the end of ``specs`` (the replicated topics); return
    how many records it thereby skips."""
    names = [spec.name(pipeline.settings.topic_prefix) for spec in specs]
    consumer = AIOKafkaConsumer(
        **kafka_options(pipeline.settings), group_id=group, enable_auto_commit=False
    )
    await consumer.start()
    try:
        count = pipeline.settings.topic_partitions  # the chain's topics are created so
        partitions = [TopicPartition(name, p) for name in names for p in range(count)]
        consumer.assign(partitions)
        ends = await consumer.end_offsets(partitions)
        await consumer.commit({tp: offset for tp, offset in ends.items()})
        return sum(ends.values())
    finally:
        await consumer.stop()


async def test_versions_whose_events_were_skipped_are_re_driven_and_verified(
    pipeline: Pipeline, state: State, source_dir: Path
) -> None:
    write_objects(source_dir, 6, largest=8 * 1024)
    pipeline.start_worker(NOT_VERIFY)
    requests = requests_for_path(source_dir, TARGETS, "default", {}, actor=cli_actor())
    await produce(pipeline.settings, requests)
    ids = [r.object_id for r in requests]

    async def all_written() -> bool:
        docs = [await state.object(i, 1) for i in ids]
        return all(
            ((d or {}).get("replicas") or {}).get(t, {}).get("written_at")
            for d in docs
            for t in TARGETS
        )

    await wait_for(all_written, timeout_s=180)
    skipped = await skip_to_end(pipeline, f"{pipeline.settings.topic_prefix}-verify")
    assert skipped == len(ids) * len(TARGETS)
    pipeline.start_worker("verify")

    failures = await wait_verified(state, requests, timeout_s=240)
    assert failures == {}
    docs = [await state.object(i, 1) for i in ids]
    assert all(d is not None and d.get("redriven_at") for d in docs)
    assert "stalled versions re-driven" in pipeline.worker_logs()
    trails = await settled_trails(state, [(i, 1) for i in ids])
    for object_id in ids:  # each step once, re-driven or not
        assert steps(trails[object_id]) == EXPECTED_STEPS


NOT_DELETE = "ingest,encrypt,replicate,verify,tier,retry,sink"


async def test_a_delete_request_and_removals_that_were_skipped_are_re_driven_to_the_end(
    pipeline: Pipeline, state: State, source_dir: Path
) -> None:
    """One version's delete request is never handled (no tombstone); another's tombstone is
    written but its removals are never handled (no ``replica.removed``). Both end removed
    from every store."""
    write_objects(source_dir, 2, largest=8 * 1024)
    pipeline.start_worker(NOT_DELETE)
    requests = requests_for_path(source_dir, TARGETS, "default", {}, actor=cli_actor())
    await produce(pipeline.settings, requests)
    assert await wait_verified(state, requests, timeout_s=180) == {}
    docs = [await state.object(r.object_id, 1) for r in requests]
    asked, tombstoned = [d for d in docs if d is not None]
    settings = pipeline.settings
    # the first: only asked for; the second: asked for and tombstoned, its removals sent
    await request_removal(settings, [asked], "delete", "test", actor=cli_actor())
    request = delete_request(tombstoned, "delete", "test", cli_actor())
    deps = build_deps(settings)
    try:
        emitted = await delete.tombstone(request, deps)
    finally:
        await deps.close()
    await produce_events(settings, DELETE, [request])
    await produce_events(settings, AUDIT, [e.event for e in emitted if e.topic == AUDIT])
    await produce_events(settings, REMOVE, [e.event for e in emitted if e.topic == REMOVE])

    async def recorded() -> bool:
        a = await state.object(asked["object_id"], 1) or {}
        t = await state.object(tombstoned["object_id"], 1) or {}
        return bool(a.get("delete_requested_at") and t.get("deleted_at"))

    await wait_for(recorded, timeout_s=60)
    group = f"{settings.topic_prefix}-delete"
    assert await skip_to_end(pipeline, group, (DELETE, REMOVE)) >= 2 + len(TARGETS)
    pipeline.start_worker("delete")

    assert await wait_removed(state, [asked, tombstoned], "delete", timeout_s=240) == []
    for doc in (asked, tombstoned):
        prefix = version_prefix(doc["tenant"], doc["object_id"], 1)
        for target in TARGETS:
            assert await raw_keys(target, settings.bucket, prefix, settings) == [], target
        stored = await state.object(doc["object_id"], 1)
        assert stored is not None and stored.get("removal_redriven_at")
    assert "stalled versions re-driven" in pipeline.worker_logs()
