"""Tiering through real workers and the three local stores: versions aged with an injected
clock (``tier sweep --now``) change tier in the stores and in MongoDB, with their reasons and
cost deltas in the trail; reads prefer a readable replica; an archived one is rehydrated.

fake-gcs-server keeps no storage class (it drops it on rewrite, see the contract suite), so the
GCS replica's tier shows in MongoDB and the trail only; SeaweedFS and Azurite keep theirs."""

import os
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest

from schemas.events import object_id_for
from tests.pipeline import Pipeline
from tests.waiting import wait_for
from workers.client.state import State
from workers.deps import build_deps
from workers.stores.base import Tier

POLICY = """\
version: 1
readable_replicas: 1
decide_on_read: false   # the workers' clock is real time; only the sweeps here are aged
forecast: {min_saving: 0}
rules:
  - name: archive-after-a-year
    match: {min_age_days: 365, min_size: 128KiB}
    tier: archive
  - name: warm-after-30-days
    match: {min_age_days: 30, min_size: 128KiB}
    tier: warm
default: hot
"""


@pytest.fixture
def pipeline_overrides(tmp_path: Path) -> dict[str, object]:
    policy = tmp_path / "policy.yaml"
    policy.write_text(POLICY)
    return {"tier_policy": policy, "tier_sweep_s": 0}


def sweep(pipeline: Pipeline, now: datetime) -> dict[str, Any]:
    done = pipeline.cli("tier", "sweep", "--now", now.isoformat(), "--json")
    assert done.returncode == 0, done.stdout + done.stderr
    result: dict[str, Any] = orjson.loads(done.stdout)
    return result


async def store_tiers(pipeline: Pipeline, doc: dict[str, Any]) -> dict[str, Tier | None]:
    deps = build_deps(pipeline.settings)
    try:
        return {t: (await deps.store(t).stat(r["key"])).tier for t, r in doc["replicas"].items()}
    finally:
        await deps.close()


async def recorded(state: State, object_id: str) -> dict[str, str]:
    doc = await state.object(object_id, 1)
    return {t: r.get("tier") for t, r in ((doc or {}).get("replicas") or {}).items()}


async def test_aged_versions_change_tier_in_every_store_and_reads_prefer_readable_replicas(
    pipeline: Pipeline, worker_all, state: State, tmp_path: Path
) -> None:
    big, tiny = tmp_path / "big.bin", tmp_path / "tiny.bin"
    big.write_bytes(os.urandom(200 * 1024))
    tiny.write_bytes(os.urandom(1024))
    for path in (big, tiny):
        put = pipeline.cli("put", str(path), "--wait", "--json")
        assert put.returncode == 0, put.stdout + put.stderr
    big_id, tiny_id = object_id_for("default", "big.bin"), object_id_for("default", "tiny.bin")
    targets = {"s3", "azure", "gcs"}

    async def initial_tiers() -> bool:
        tiers = [await recorded(state, o) for o in (big_id, tiny_id)]
        return all(t == dict.fromkeys(targets, "hot") for t in tiers)

    await wait_for(initial_tiers, timeout_s=60)
    created = (await state.object(big_id, 1) or {})["accepted_at"].replace(tzinfo=UTC)

    # 40 days on: the big object goes warm everywhere; the tiny one stays (the rule's size).
    month = sweep(pipeline, created + timedelta(days=40))
    assert month["versions"] == 2
    moves = {(c["object_id"], c["replica"], c["from"], c["to"]) for c in month["changes"]}
    assert moves == {(big_id, t, "hot", "warm") for t in targets}
    assert {c["reason"] for c in month["changes"]} == {"rule warm-after-30-days"}

    async def big_is(tier: str) -> bool:
        return await recorded(state, big_id) == dict.fromkeys(targets, tier)

    await wait_for(lambda: big_is("warm"), timeout_s=60)
    doc = await state.object(big_id, 1)
    assert doc is not None
    in_stores = await store_tiers(pipeline, doc)
    assert (in_stores["s3"], in_stores["azure"]) == (Tier.WARM, Tier.WARM)
    assert set((await recorded(state, tiny_id)).values()) == {"hot"}
    trail = await state.audit(big_id)
    tiered = [r["detail"] for r in trail if r["action"] == "replica.tiered"]
    placed = [detail for detail in tiered if "previous" in detail]
    assert len(placed) == 3
    for detail in placed:
        assert (detail["previous"], detail["tier"]) == ("hot", "warm")
        assert detail["reason"] == "rule warm-after-30-days"
        # per replica and period: cheaper storage, against the transition spread over the
        # horizon and, for the replica serving reads, the reads (fractions of a cent here)
        assert isinstance(detail["cost_delta"], float) and abs(detail["cost_delta"]) < 1e-4

    # The same day again: nothing left to change.
    assert sweep(pipeline, created + timedelta(days=40))["changes"] == []

    # 400 days on: archive everywhere; GCS's archive is read without rehydration, so the floor
    # of one readable replica holds and a restore is served from it.
    year = sweep(pipeline, created + timedelta(days=400))
    assert {(c["replica"], c["to"]) for c in year["changes"]} == {(t, "archive") for t in targets}
    await wait_for(lambda: big_is("archive"), timeout_s=60)
    doc = await state.object(big_id, 1)
    assert doc is not None and doc["primary"] != "gcs"
    in_stores = await store_tiers(pipeline, doc)
    assert (in_stores["s3"], in_stores["azure"]) == (Tier.ARCHIVE, Tier.ARCHIVE)
    out = tmp_path / "out.bin"
    served = pipeline.cli("restore", "big.bin", "-o", str(out))
    assert served.returncode == 0, served.stderr
    assert "from gcs" in served.stdout
    assert out.read_bytes() == big.read_bytes()

    # Azure refuses reads of an archived blob (Azurite too): asking for that replica starts
    # its rehydration (to Cold), says when to retry, and records the move.
    again = tmp_path / "again.bin"
    refused = pipeline.cli("restore", "big.bin", "--from", "azure", "-o", str(again))
    assert refused.returncode == 5  # retry later
    assert "rehydration of the azure replica started; retry in about 15 hours" in refused.stderr
    assert "Traceback" not in refused.stderr and not again.exists()
    await wait_for(lambda: _recorded_is(state, big_id, "azure", "cold"), timeout_s=60)
    rehydrated = pipeline.cli("restore", "big.bin", "--from", "azure", "-o", str(again))
    assert rehydrated.returncode == 0, rehydrated.stderr  # Azurite rehydrates at once
    assert again.read_bytes() == big.read_bytes()

    # The reads reach the version's document for the next decisions, and explain uses them.
    async def reads_recorded() -> bool:
        doc = await state.object(big_id, 1)
        return len((doc or {}).get("reads") or ()) == 2  # the two successful restores

    await wait_for(reads_recorded, timeout_s=60)
    explained = pipeline.cli(
        "tier", "explain", "big.bin", "--now", (created + timedelta(days=400)).isoformat()
    )
    assert explained.returncode == 0, explained.stderr
    assert "rule: archive-after-a-year" in explained.stdout
    assert "2 reads" in explained.stdout
    assert "azure: cold since the last change: rehydrated for a read" in explained.stdout


async def _recorded_is(state: State, object_id: str, target: str, tier: str) -> bool:
    return (await recorded(state, object_id)).get(target) == tier
