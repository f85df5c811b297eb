"""The tier agent over in-memory stores: policy changes applied stat first, reads decided
again, a scrub's repair put back in the recorded tier; restores prefer readable replicas."""

import dataclasses
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from schemas.events import ObjectAccessed, ReplicaTiered, ReplicaVerified, TierChange
from tests.unit.agents.conftest import inline_request
from tests.unit.agents.test_handlers import run_chain
from workers.agents import tier
from workers.catalog import MemoryCatalog
from workers.client.restore import Rehydrating, RestoreFailed, rehydrate_or_fail, replica_order
from workers.deps import Deps
from workers.dispatch import stamp
from workers.errors import NotFound
from workers.kms.keyregistry import MemoryKeyRegistry
from workers.settings import Settings
from workers.stores.base import Tier
from workers.stores.memory import MemoryStore
from workers.tiering.live import Tiering, changes

T0 = datetime(2026, 1, 1, tzinfo=UTC)


class CountingStore(MemoryStore):
    """A memory store that counts tier changes and rehydrations."""

    def __init__(self, name: str) -> None:
        super().__init__(name, part_size=1000)
        self.set_tiers: list[tuple[str, Tier]] = []
        self.rehydrated: list[str] = []

    async def set_tier(self, key: str, tier: Tier) -> None:
        self.set_tiers.append((key, tier))
        await super().set_tier(key, tier)

    async def rehydrate(self, key: str) -> Tier | None:
        self.rehydrated.append(key)
        return await super().rehydrate(key)


@pytest.fixture
async def counted(deps: Deps, unique: str) -> Deps:
    stores = {t: CountingStore(f"{unique}-c-{t}") for t in ("s3", "azure", "gcs")}
    for store in stores.values():
        await store.ensure_container()
    return dataclasses.replace(deps, stores=stores, staging=stores["s3"])


def tier_change(verified: ReplicaVerified, tier_name: str, previous: str = "hot") -> TierChange:
    return stamp(
        TierChange,
        verified,
        verified.target,
        "run",
        target=verified.target,
        key=verified.key,
        tier=tier_name,
        previous=previous,
        reason="rule warm-after-30-days",
        cost_before=0.002,
        cost_after=0.001,
    )  # type: ignore[return-value]


async def test_a_change_is_applied_once_and_audited_with_its_reason_and_cost(
    counted: Deps,
) -> None:
    out = await run_chain(inline_request(b"x" * 300), counted)
    verified = out["verified"][0]
    store = counted.stores[verified.target]
    change = tier_change(verified, "warm")

    (first,) = await tier.change(change, counted)
    (again,) = await tier.change(change, counted)  # a redelivery: the store is asked first

    assert store.set_tiers == [(verified.key, Tier.WARM)]  # type: ignore[attr-defined]
    assert (await store.stat(verified.key)).tier == Tier.WARM
    assert first.event.event_id == again.event.event_id  # the sink records it once
    tiered = first.event
    assert isinstance(tiered, ReplicaTiered)
    assert tiered.step_detail() == {
        "tier": "warm",
        "reason": "rule warm-after-30-days",
        "previous": "hot",
        "cost_delta": -0.001,
    }


async def test_a_scrub_changes_no_tier_but_a_repaired_replica_gets_its_recorded_one_back(
    counted: Deps,
) -> None:
    out = await run_chain(inline_request(b"y" * 300), counted)
    verified = out["verified"][0]
    store = counted.stores[verified.target]
    await store.set_tier(verified.key, Tier.COLD)
    assert isinstance(counted.catalog, MemoryCatalog)
    counted.catalog.documents[verified.object_id, 1] = {
        "replicas": {verified.target: {"tier": "cold", "key": verified.key}}
    }
    calls = len(store.set_tiers)  # type: ignore[attr-defined]

    scrubbed = verified.model_copy(update={"scrub": True, "event_id": "s" * 32})
    assert await tier.handle(scrubbed, counted) == []  # the scrub read it back, nothing moved

    await store.set_tier(verified.key, Tier.HOT)  # what a repair's rewrite does
    repaired = scrubbed.model_copy(update={"repaired_from": "gcs"})
    (placed,) = await tier.handle(repaired, counted)
    assert (await store.stat(verified.key)).tier == Tier.COLD
    assert placed.event.tier == "cold"
    assert placed.event.reason == "restored after a scrub repaired the replica"
    assert len(store.set_tiers) == calls + 2  # type: ignore[attr-defined]


def doc_of(verified: list[ReplicaVerified], tiers: dict[str, str], **extra: Any) -> dict[str, Any]:
    first = verified[0]
    return {
        "_id": f"{first.object_id}:v1",
        "object_id": first.object_id,
        "version": 1,
        "name": "docs/a.bin",
        "state": "verified",
        "size": 300 * 1024,
        "primary": "s3",
        "accepted_at": T0.replace(tzinfo=None),  # as MongoDB gives it back
        "replicas": {
            v.target: {"key": v.key, "verified_at": T0, "tier": tiers[v.target]} for v in verified
        },
        **extra,
    }


POLICY = """\
version: 1
readable_replicas: 1
forecast: {min_saving: 0}
rules:
  - name: busy-is-hot
    match: {max_idle_days: 2}
    tier: hot
default: [cold]
"""


async def test_a_read_after_a_long_silence_warms_the_object_at_once(
    counted: Deps, tmp_path: Path
) -> None:
    (tmp_path / "p.yaml").write_text(POLICY)
    deps = dataclasses.replace(
        counted,
        settings=counted.settings.model_copy(update={"tier_policy": tmp_path / "p.yaml"}),
        now=lambda: T0 + timedelta(days=200),
    )
    out = await run_chain(inline_request(b"z" * 300), deps)
    for v in out["verified"]:
        await deps.store(v.target).set_tier(v.key, Tier.COLD)
    doc = doc_of(out["verified"], dict.fromkeys(("s3", "azure", "gcs"), "cold"))
    assert isinstance(deps.catalog, MemoryCatalog)
    deps.catalog.documents[doc["object_id"], 1] = doc
    read = stamp(ObjectAccessed, out["verified"][0], "read", target="s3", bytes_read=300)
    read = read.model_copy(update={"produced_at": T0 + timedelta(days=200)})

    emitted = await tier.accessed(read, deps)  # type: ignore[arg-type]

    assert {(e.event.target, e.event.previous, e.event.tier) for e in emitted} == {
        (t, "cold", "hot") for t in ("s3", "azure", "gcs")
    }
    for v in out["verified"]:
        assert (await deps.store(v.target).stat(v.key)).tier == Tier.HOT


def test_changes_name_the_run_and_carry_each_moves_costs(tmp_path: Path) -> None:
    (tmp_path / "p.yaml").write_text(POLICY)
    tiering = Tiering.load(Settings(home=tmp_path, tier_policy=tmp_path / "p.yaml"))
    verified = [
        ReplicaVerified.model_construct(target=t, key=f"k-{t}", object_id="0" * 24)
        for t in ("azure", "gcs", "s3")
    ]
    doc = doc_of(verified, {"azure": "hot", "gcs": "cold", "s3": "hot"})  # type: ignore[arg-type]
    decision = tiering.decide(doc, T0 + timedelta(days=100))
    assert decision is not None
    moved = changes(doc, decision, "run-1", "alice@laptop", T0)
    assert {(c.target, c.key, c.previous, c.tier) for c in moved} == {
        ("azure", "k-azure", "hot", "cold"),
        ("s3", "k-s3", "hot", "cold"),
    }
    assert all(c.correlation_id == "run-1" and c.actor == "alice@laptop" for c in moved)
    assert len({c.event_id for c in moved}) == 2
    assert tiering.decide({**doc, "state": "pending"}, T0) is None  # nothing to tier yet


def test_restores_try_readable_replicas_first(tmp_path: Path) -> None:
    tiering = Tiering.load(Settings(home=tmp_path))
    verified = [
        ReplicaVerified.model_construct(target=t, key=f"k-{t}", object_id="0" * 24)
        for t in ("azure", "gcs", "s3")
    ]
    doc = doc_of(verified, {"azure": "archive", "gcs": "archive", "s3": "archive"})
    # GCS reads its archive class directly; S3 and Azure must rehydrate theirs first
    assert replica_order(doc, None, tiering) == ["gcs", "s3", "azure"]
    doc["replicas"]["azure"]["tier"] = "cold"
    assert replica_order(doc, None, tiering) == ["azure", "gcs", "s3"]


async def test_when_no_replica_could_be_read_an_archived_one_is_rehydrated(
    tmp_path: Path, unique: str
) -> None:
    tiering = Tiering.load(Settings(home=tmp_path))
    stores = {t: CountingStore(f"{unique}-r-{t}") for t in ("s3", "azure")}
    verified = [
        ReplicaVerified.model_construct(target=t, key=f"k-{t}", object_id="0" * 24)
        for t in ("azure", "s3")
    ]
    doc = doc_of(verified, {"azure": "archive", "s3": "hot"})
    for store in stores.values():
        await store.ensure_container()
    await stores["azure"].write("k-azure", _chunks(b"c"))

    registry = MemoryKeyRegistry()
    with pytest.raises(RestoreFailed):  # only a readable replica failed: nothing to rehydrate
        await rehydrate_or_fail(doc, stores, registry, tiering, {"s3": "damaged"})
    with pytest.raises(Rehydrating, match="azure replica started; retry in about 15 hours"):
        await rehydrate_or_fail(
            doc, stores, registry, tiering, {"s3": "damaged", "azure": "archived"}
        )
    assert stores["azure"].rehydrated == ["k-azure"]


async def test_a_version_deleted_while_it_was_read_is_not_found_rather_than_failed(
    tmp_path: Path, unique: str
) -> None:
    """The tombstone is written before any replica is removed: a read that found the replicas
    gone says the version was deleted, not that the stores lost it."""
    tiering = Tiering.load(Settings(home=tmp_path))
    stores = {"s3": CountingStore(f"{unique}-d-s3")}
    doc = doc_of(
        [ReplicaVerified.model_construct(target="s3", key="k-s3", object_id="0" * 24)],
        {"s3": "archive"},
    )
    registry = MemoryKeyRegistry()
    await registry.tombstone(doc["object_id"], doc["version"], "deleted")
    with pytest.raises(NotFound, match="is deleted: nothing to read"):
        await rehydrate_or_fail(doc, stores, registry, tiering, {"s3": "NoSuchKey"})
    assert stores["s3"].rehydrated == []


async def _chunks(data: bytes) -> AsyncIterator[bytes]:
    yield data


async def test_a_read_never_cools_a_replica_and_a_superseded_read_decides_nothing(
    counted: Deps, tmp_path: Path
) -> None:
    (tmp_path / "cold.yaml").write_text("readable_replicas: 1\ndefault: [cold]\n")
    deps = dataclasses.replace(
        counted,
        settings=counted.settings.model_copy(update={"tier_policy": tmp_path / "cold.yaml"}),
    )
    out = await run_chain(inline_request(b"w" * 300), deps)
    doc = doc_of(out["verified"], dict.fromkeys(("s3", "azure", "gcs"), "hot"))
    assert isinstance(deps.catalog, MemoryCatalog)
    deps.catalog.documents[doc["object_id"], 1] = doc
    read = stamp(ObjectAccessed, out["verified"][0], "old-read", target="s3", bytes_read=300)
    # the policy sends every replica to cold, but a read only ever warms
    read = read.model_copy(update={"produced_at": T0 + timedelta(days=200)})
    assert await tier.accessed(read, deps) == []  # type: ignore[arg-type]

    for replica in doc["replicas"].values():
        replica["tier"], replica["tiered_at"] = "cold", T0 + timedelta(days=201)
    assert await tier.accessed(read, deps) == []  # type: ignore[arg-type]
    stores = deps.stores.values()
    assert all(s.set_tiers == [] for s in stores)  # type: ignore[attr-defined]
