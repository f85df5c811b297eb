"""The tiering policy applied to stored versions: documents -> decisions -> tier changes.

``stats_of`` is a decision's view of one ``objects`` document and ``changes`` the tier
changes of a decision's moves (both pure). ``sweep`` decides every verified version at ``now``
and produces the changes to ``retier``, where the tier agent applies them (stat first); the
tier worker's leader runs it on a timer, ``movingdata tier sweep`` with any clock (``--now``).
The tier agent also decides one version again when it is read (topic ``access``), so a read
burst after a long silence warms it without waiting for the sweep.
"""

import logging
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from typing import Any

from pymongo import AsyncMongoClient

from schemas.events import ReplicaTiered, TierChange, event_id
from topics import RETIER
from workers.client.kafka import produce_all
from workers.core.policy import ObjectStats, Policy, Replica
from workers.core.prices import ProviderPrices
from workers.core.tiering import TierDecision, decide
from workers.core.versions import live_replicas, utc
from workers.settings import Settings
from workers.tiering.policy import load_policy
from workers.tiering.prices import PRICES_DIR, load_prices

log = logging.getLogger("movingdata.tiering")
Doc = dict[str, Any]
READS_KEPT = 256  # read times an objects document keeps (the newest)


@dataclass(frozen=True, slots=True)
class Tiering:
    """The policy and prices decisions are made with."""

    policy: Policy
    prices: Mapping[str, ProviderPrices]

    @classmethod
    def load(cls, settings: Settings) -> "Tiering":
        """From the settings' files, read once per process: ``PolicyError`` / ``PriceError``
        naming what is wrong."""
        return _load(settings.tier_policy, settings.tier_prices or PRICES_DIR)

    def decide(
        self, doc: Doc, now: datetime, read_at: datetime | None = None
    ) -> TierDecision | None:
        """The decision for one version's document (None: nothing to tier)."""
        stats = stats_of(doc, read_at)
        return None if stats is None else decide(stats, self.policy, self.prices, now)

    def needs_rehydration(self, target: str, tier: str) -> bool:
        """A read of a replica in this tier must wait for a rehydration first."""
        prices = self.prices.get(target)
        return prices is not None and prices.tiers[tier].needs_rehydration

    def rehydration_hours(self, target: str, tier: str) -> float:
        return self.prices[target].tiers[tier].rehydration_hours


@cache
def _load(policy: Path, prices: Path) -> Tiering:
    return Tiering(load_policy(policy), load_prices(prices))


def recorded_tier(replica: Doc) -> str:
    return str(replica.get("tier") or "hot")


def stats_of(doc: Doc, read_at: datetime | None = None) -> ObjectStats | None:
    """What a decision knows of a verified version (None: not verified, nothing to tier).
    ``read_at``: a read the document may not record yet (the access being handled)."""
    replicas = live_replicas(doc)
    if doc.get("state") != "verified" or not replicas:
        return None
    reads = {utc(t) for t in doc.get("reads") or ()}
    if read_at is not None:
        reads.add(utc(read_at))
    return ObjectStats(
        name=doc["name"],
        size=int(doc.get("ciphertext_size") or doc.get("size") or 0),
        created=utc(doc.get("accepted_at") or doc["created_at"]),
        reads=tuple(sorted(reads)),
        replicas=tuple(
            Replica(t, recorded_tier(r), utc(r.get("tiered_at") or r["verified_at"]))
            for t, r in replicas.items()
        ),
        tenant=doc.get("tenant") or "default",
        tags=doc.get("tags") or {},
    )


def changes(
    doc: Doc, decision: TierDecision, run_id: str, actor: str, at: datetime
) -> list[TierChange]:
    """The tier changes of ``decision``'s moves for ``doc`` (ids name the run; ``at`` is
    when they are made, whatever time the decision was made as at)."""
    replicas = live_replicas(doc)
    object_id, version = doc["object_id"], doc["version"]
    return [
        TierChange(
            kind=TierChange.KIND,
            v=TierChange.VERSION,
            event_id=event_id(TierChange.KIND, object_id, version, m.provider, run_id),
            object_id=object_id,
            version=version,
            correlation_id=run_id,
            produced_at=at,
            actor=actor,
            target=m.provider,  # type: ignore[arg-type]
            key=replicas[m.provider]["key"],
            tier=m.target,  # type: ignore[arg-type]
            previous=m.current,  # type: ignore[arg-type]
            reason=m.reason[:200],
            cost_before=max(0.0, m.cost_before),
            cost_after=max(0.0, m.cost_after),
        )
        for m in decision.moves
    ]


def rehydrated(
    doc: Doc, target: str, tier: str, run_id: str, actor: str, reason: str, at: datetime
) -> ReplicaTiered:
    """The placement a rehydration makes: the replica leaves the archive tier for ``tier``
    (Azure rehydrates into Cold), asked by ``actor`` for ``reason`` (a read, a scrub)."""
    return ReplicaTiered(
        kind=ReplicaTiered.KIND,
        v=ReplicaTiered.VERSION,
        event_id=event_id(ReplicaTiered.KIND, doc["object_id"], doc["version"], target, run_id),
        object_id=doc["object_id"],
        version=doc["version"],
        correlation_id=run_id,
        produced_at=at,
        actor=actor,
        target=target,  # type: ignore[arg-type]
        key=doc["replicas"][target]["key"],
        tier=tier,  # type: ignore[arg-type]
        reason=reason,
        previous=recorded_tier(doc["replicas"][target]),  # type: ignore[arg-type]
    )


@dataclass(frozen=True, slots=True)
class SweepResult:
    """What one sweep decided: versions looked at, and the changes (produced unless dry)."""

    versions: int
    changes: tuple[TierChange, ...]
    decisions: tuple[TierDecision, ...]


async def sweep(
    settings: Settings,
    tiering: Tiering,
    now: datetime,
    actor: str,
    *,
    dry_run: bool = False,
    object_ids: Sequence[str] = (),
) -> SweepResult:
    """Decide every verified version (or those of ``object_ids``) at ``now``; produce the
    changes to ``retier`` unless ``dry_run``."""
    run_id = uuid.uuid4().hex
    client: AsyncMongoClient[Doc] = AsyncMongoClient(settings.mongo_url)
    query: Doc = {"state": "verified"}
    if object_ids:
        query["object_id"] = {"$in": list(object_ids)}
    found: list[TierChange] = []
    decisions: list[TierDecision] = []
    versions = 0
    try:
        async for doc in client[settings.mongo_database]["objects"].find(query):
            decision = tiering.decide(doc, now)
            if decision is None:
                continue
            versions += 1
            decisions.append(decision)
            found.extend(changes(doc, decision, run_id, actor, datetime.now(UTC)))
    finally:
        await client.close()
    if found and not dry_run:
        await produce_all(settings, [(RETIER, change) for change in found])
    log.info(
        "tier sweep",
        extra={"versions": versions, "changes": len(found), "dry_run": dry_run, "run": run_id},
    )
    return SweepResult(versions, tuple(found), tuple(decisions))
