"""The scheduled scrub's rehydration budget, against the real stores: an archived replica no
store digest proves (one written before digests were recorded: ``store_digest`` unset) is
rehydrated within ``MOVINGDATA_SCRUB_REHYDRATE_BYTES_PER_DAY`` and read back by a later
round; with a budget smaller than it, it stays archived and counted as unproven. Azurite
refuses reads of archived blobs, as Azure does, and rehydrates into Cold at once."""

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.pipeline import Pipeline, endpoint, samples
from tests.waiting import wait_for
from workers.client.state import State
from workers.core.versions import utc
from workers.deps import build_deps
from workers.jobs.scrub import BUDGET, REASON
from workers.stores.base import Tier

BUDGETS = {"test_a_budget": 1024**2, "test_an_archived_replica_larger": 100}


@pytest.fixture
def pipeline_overrides(request: pytest.FixtureRequest) -> dict[str, object]:
    budget = next(b for name, b in BUDGETS.items() if request.node.name.startswith(name))
    return {"scrub_interval_s": 2.0, "scrub_share": 1.0, "scrub_rehydrate_bytes_per_day": budget}


async def archived_without_digest(
    pipeline: Pipeline, state: State, tmp_path: Path
) -> tuple[dict[str, Any], datetime]:
    """One version put in the archive tier, its Azure replica's store digest then unset; the
    version's document and when the digest was unset."""
    source = tmp_path / "cold.bin"
    source.write_bytes(b"archive me\n" * 300)
    put = pipeline.cli("put", str(source), "--tag", "tier=archive", "--wait")
    assert put.returncode == 0, put.stdout + put.stderr
    object_id, _ = await state.resolve("cold.bin", "default")

    async def archived() -> bool:
        doc = await state.object(object_id, 1)
        return doc is not None and doc["replicas"]["azure"].get("tier") == "archive"

    await wait_for(archived, timeout_s=120)
    unset_at = datetime.now(UTC)
    objects = state.db["objects"]
    await objects.update_one(
        {"object_id": object_id}, {"$unset": {"replicas.azure.store_digest": ""}}
    )
    doc = await state.object(object_id, 1)
    assert doc is not None and "store_digest" not in doc["replicas"]["azure"]
    return doc, unset_at


async def scraped(pipeline: Pipeline, name: str) -> dict[str, float]:
    async with aiohttp.ClientSession() as http, http.get(endpoint(pipeline) + "/metrics") as resp:
        return samples(await resp.text(), name)


async def azure_tier(pipeline: Pipeline, key: str) -> Tier | None:
    deps = build_deps(pipeline.settings)
    try:
        return (await deps.store("azure").stat(key)).tier
    finally:
        await deps.close()


async def test_a_budget_rehydrates_an_unproven_archived_replica_and_a_later_round_reads_it(
    pipeline: Pipeline, worker_all: object, state: State, tmp_path: Path
) -> None:
    doc, unset_at = await archived_without_digest(pipeline, state, tmp_path)
    key = doc["replicas"]["azure"]["key"]

    async def read_back_since() -> bool:
        found = await state.object(doc["object_id"], 1)
        azure = (found or {})["replicas"]["azure"]
        return (
            azure.get("tier") == "cold"
            and azure.get("verdict") == "good"
            and utc(azure.get("read_back_at") or unset_at) > unset_at
            and utc(azure["proven_at"]) > unset_at
        )

    await wait_for(read_back_since, timeout_s=120)
    found = await state.object(doc["object_id"], 1)
    assert found is not None and found["state"] == "verified"
    azure = found["replicas"]["azure"]
    assert azure["tier_reason"] == REASON and azure["readable_at"], azure
    assert await azure_tier(pipeline, key) == Tier.COLD
    budget = await state.db["budgets"].find_one({"_id": BUDGET})
    assert budget == {"_id": BUDGET, "day": budget["day"], "spent": doc["ciphertext_size"]}
    assert (await scraped(pipeline, "movingdata_scrub_rehydrations_total")) == {"azure": 1.0}
    tiered = [
        r
        for r in await state.audit(doc["object_id"])
        if r.get("detail", {}).get("reason") == REASON
    ]
    assert len(tiered) == 1 and tiered[0]["actor"].startswith("worker:sink@"), tiered


async def test_an_archived_replica_larger_than_the_budget_stays_archived_and_unproven(
    pipeline: Pipeline, worker_all: object, state: State, tmp_path: Path
) -> None:
    doc, _ = await archived_without_digest(pipeline, state, tmp_path)

    async def deferred_and_unproven_twice() -> bool:
        deferred = await scraped(pipeline, "movingdata_scrub_rehydrations_deferred_total")
        unproven = await scraped(pipeline, "movingdata_scrub_unproven_total")
        return deferred.get("azure", 0) >= 2 and unproven.get("azure", 0) >= 2

    await wait_for(deferred_and_unproven_twice, timeout_s=120)
    found = await state.object(doc["object_id"], 1)
    assert found is not None
    azure = found["replicas"]["azure"]
    assert azure["tier"] == "archive" and not azure.get("read_back_at"), azure
    assert "readable_at" not in azure
    assert await azure_tier(pipeline, azure["key"]) == Tier.ARCHIVE
    assert await state.db["budgets"].find_one({"_id": BUDGET}) is None
    assert (await scraped(pipeline, "movingdata_scrub_rehydrations_total")).get("azure", 0) == 0
