"""Replay an access log against tiering policies and price what each would have cost.

Every object has three replicas (s3, azure, gcs), uploaded hot. The replay goes day by day:
the day's puts, gets and deletes in time order, then a day of storage for every replica, then
the policy's decisions (``workers.core.tiering.decide``) for each object read that day and,
every ``review_days``, for every object. A get is served by the cheapest replica readable
without rehydration (the cheapest of all when none is) and pays its request and retrieval;
a delete pays the early-deletion charge of each replica still within its tier's minimum; a
move pays its transition (and early deletion). Egress is left out: every policy pays it for
every read alike.

The Intelligent-Tiering baseline applies S3 Intelligent-Tiering's published behaviour to each
replica: frequent, infrequent after 30 days without a read of that replica, archive instant
after 90, back to frequent when read; a monitoring fee per object; no retrieval, transition or
early-deletion charges; objects under 128 KiB never move and pay no fee. On S3 with its real
prices; on Azure and GCS, where it does not exist, with their own hot / warm / cold storage
prices and the same fees (``[auto_tiering]`` in each prices file).
"""

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from workers.core.policy import ObjectStats, Policy, Replica, days_between
from workers.core.prices import GB, KIB, TIERS, AutoTiering, ProviderPrices, TierPrices
from workers.core.tiering import (
    decide,
    early_deletion_charge,
    read_cost,
    storage_cost,
    transition_cost,
)
from workers.tiering.accesslog import Access

PROVIDERS = ("s3", "azure", "gcs")
LATENCIES = ("instant", "minutes", "hours")
AUTO_TIERS = ("hot", "warm", "cold")  # frequent, infrequent, archive instant
COST_PARTS = ("storage", "retrieval", "operations", "transitions", "early_deletion", "monitoring")


@dataclass
class Report:
    """What one policy cost over the replayed period, and how it got there."""

    name: str
    costs: dict[str, float] = field(default_factory=lambda: dict.fromkeys(COST_PARTS, 0.0))
    transitions: int = 0
    early_deletions: int = 0
    reads: int = 0
    reads_by_tier: dict[str, int] = field(default_factory=lambda: dict.fromkeys(TIERS, 0))
    latency: dict[str, int] = field(default_factory=lambda: dict.fromkeys(LATENCIES, 0))
    daily_total: list[float] = field(default_factory=list)  # cumulative, at each day's end
    occupancy: list[dict[str, float]] = field(default_factory=list)  # GB per tier, each day

    @property
    def total(self) -> float:
        return sum(self.costs.values())

    def summary(self) -> dict[str, Any]:
        return {
            "policy": self.name,
            "total": round(self.total, 6),
            "costs": {k: round(v, 6) for k, v in self.costs.items()},
            "transitions": self.transitions,
            "early_deletions": self.early_deletions,
            "reads": self.reads,
            "reads_from_cold_tiers": self.reads - self.reads_by_tier["hot"],
            "reads_by_tier": self.reads_by_tier,
            "latency": self.latency,
        }


@dataclass
class _Object:
    name: str
    size: int
    created: datetime
    tiers: dict[str, str]
    since: dict[str, datetime]  # entered its tier (a policy) or last read (auto-tiering)
    reads: list[datetime] = field(default_factory=list)


def _latency(tier: TierPrices) -> str:
    if not tier.needs_rehydration:
        return "instant"
    return "minutes" if tier.rehydration_hours < 1 else "hours"


class _Replay:
    """The day-by-day loop; subclasses price the events."""

    def __init__(self, name: str, prices: Mapping[str, ProviderPrices]) -> None:
        self.report = Report(name)
        self.prices = prices

    def run(self, log: Sequence[Access]) -> Report:
        if not log:
            return self.report
        start = log[0].time.replace(hour=0, minute=0, second=0, microsecond=0)
        days = (log[-1].time - start).days + 1
        live: dict[str, _Object] = {}
        i = 0
        for day in range(days):
            day_end = start + timedelta(days=day + 1)
            read_today: set[str] = set()
            while i < len(log) and log[i].time < day_end:
                a = log[i]
                i += 1
                if a.operation == "put":
                    if a.object in live:
                        self.delete(live.pop(a.object), a.time)
                    live[a.object] = self.put(a)
                elif a.object not in live:
                    continue  # a get or delete of what was never put: nothing to price
                elif a.operation == "get":
                    self.get(live[a.object], a.time)
                    read_today.add(a.object)
                else:
                    self.delete(live.pop(a.object), a.time)
            self.store(live.values())
            self.review(live, read_today, day_end)
            self.report.daily_total.append(self.report.total)
        return self.report

    def put(self, access: Access) -> _Object:
        raise NotImplementedError

    def get(self, obj: _Object, when: datetime) -> None:
        raise NotImplementedError

    def delete(self, obj: _Object, when: datetime) -> None:
        raise NotImplementedError

    def store(self, objects: Iterable[_Object]) -> None:
        raise NotImplementedError

    def review(self, live: dict[str, _Object], read: set[str], now: datetime) -> None:
        raise NotImplementedError


class PolicyReplay(_Replay):
    """A tiering policy through the decision engine; no policy: everything stays hot."""

    def __init__(
        self,
        name: str,
        policy: Policy | None,
        prices: Mapping[str, ProviderPrices],
        review_days: int = 7,
    ) -> None:
        super().__init__(name, prices)
        self.policy, self.review_days = policy, review_days
        # reads older than this weigh < 0.1% in the forecast: dropped, all but the last one
        half_life = policy.forecast.half_life_days if policy else 1.0
        self.memory = timedelta(days=10 * half_life)

    def tier(self, obj: _Object, provider: str) -> TierPrices:
        return self.prices[provider].tiers[obj.tiers[provider]]

    def put(self, access: Access) -> _Object:
        for provider in PROVIDERS:
            self.report.costs["operations"] += self.prices[provider].tiers["hot"].write
        return _Object(
            access.object,
            access.size,
            access.time,
            dict.fromkeys(PROVIDERS, "hot"),
            dict.fromkeys(PROVIDERS, access.time),
        )

    def get(self, obj: _Object, when: datetime) -> None:
        def key(provider: str) -> tuple[bool, float]:
            tier = self.tier(obj, provider)
            return tier.needs_rehydration, read_cost(tier, obj.size)

        provider = min(PROVIDERS, key=key)
        tier = self.tier(obj, provider)
        report = self.report
        report.costs["operations"] += tier.read
        report.costs["retrieval"] += tier.retrieval_per_gb * obj.size / GB
        report.reads += 1
        report.reads_by_tier[obj.tiers[provider]] += 1
        report.latency[_latency(tier)] += 1
        obj.reads.append(when)

    def _leave(self, obj: _Object, provider: str, when: datetime) -> None:
        charge = early_deletion_charge(
            self.tier(obj, provider), obj.size, days_between(obj.since[provider], when)
        )
        if charge > 0:
            self.report.costs["early_deletion"] += charge
            self.report.early_deletions += 1

    def delete(self, obj: _Object, when: datetime) -> None:
        for provider in PROVIDERS:
            self._leave(obj, provider, when)

    def store(self, objects: Iterable[_Object]) -> None:
        occupancy = dict.fromkeys(TIERS, 0.0)
        storage = 0.0
        for obj in objects:
            for provider in PROVIDERS:
                storage += storage_cost(self.tier(obj, provider), obj.size, 1)
                occupancy[obj.tiers[provider]] += obj.size / GB
        self.report.costs["storage"] += storage
        self.report.occupancy.append(occupancy)

    def review(self, live: dict[str, _Object], read: set[str], now: datetime) -> None:
        if self.policy is None:
            return
        for obj in live.values():
            due = obj.name in read or int(days_between(obj.created, now)) % self.review_days == 0
            if due:
                self._decide(obj, self.policy, now)

    def _decide(self, obj: _Object, policy: Policy, now: datetime) -> None:
        old = now - self.memory
        while len(obj.reads) > 1 and obj.reads[0] < old:
            obj.reads.pop(0)
        stats = ObjectStats(
            obj.name,
            obj.size,
            obj.created,
            tuple(obj.reads),
            tuple(Replica(p, obj.tiers[p], obj.since[p]) for p in PROVIDERS),
        )
        for move in decide(stats, policy, self.prices, now).moves:
            p = move.provider
            self._leave(obj, p, now)
            self.report.costs["transitions"] += transition_cost(
                move.current, move.target, self.prices[p].tiers, obj.size
            )
            self.report.transitions += 1
            obj.tiers[p], obj.since[p] = move.target, now


def auto_tier(auto: AutoTiering, size: int, idle_days: float) -> str:
    """Intelligent-Tiering's access tier (as our tier name) after ``idle_days`` without a read."""
    if size < auto.min_object_kib * KIB or idle_days < auto.infrequent_after_days:
        return "hot"
    return "warm" if idle_days < auto.archive_after_days else "cold"


def auto_storage_per_gb_month(auto: AutoTiering, tier: str) -> float:
    return {
        "hot": auto.frequent_per_gb_month,
        "warm": auto.infrequent_per_gb_month,
        "cold": auto.archive_instant_per_gb_month,
    }[tier]


def auto_monitoring_per_month(auto: AutoTiering, size: int) -> float:
    """The monitoring fee: objects under the minimum size are not monitored, nor charged."""
    return auto.monitoring_per_object_month if size >= auto.min_object_kib * KIB else 0.0


class AutoTieringReplay(_Replay):
    """Intelligent-Tiering's behaviour applied to each replica (see the module docstring)."""

    def auto(self, provider: str) -> AutoTiering:
        auto = self.prices[provider].auto_tiering
        if auto is None:
            raise ValueError(f"the {provider} prices have no [auto_tiering] section")
        return auto

    def put(self, access: Access) -> _Object:
        for provider in PROVIDERS:
            self.report.costs["operations"] += self.auto(provider).write
        return _Object(
            access.object,
            access.size,
            access.time,
            dict.fromkeys(PROVIDERS, "hot"),
            dict.fromkeys(PROVIDERS, access.time),
        )

    def get(self, obj: _Object, when: datetime) -> None:
        provider = min(PROVIDERS, key=lambda p: self.auto(p).read)
        report = self.report
        report.costs["operations"] += self.auto(provider).read
        report.reads += 1
        report.reads_by_tier[obj.tiers[provider]] += 1
        report.latency["instant"] += 1
        obj.since[provider] = when
        if obj.tiers[provider] != "hot":  # back to frequent on access
            obj.tiers[provider] = "hot"
            report.transitions += 1

    def delete(self, obj: _Object, when: datetime) -> None:
        """No minimum duration: nothing to pay."""

    def store(self, objects: Iterable[_Object]) -> None:
        occupancy = dict.fromkeys(TIERS, 0.0)
        for obj in objects:
            for provider in PROVIDERS:
                auto = self.auto(provider)
                gb = obj.size / GB
                tier = obj.tiers[provider]
                self.report.costs["storage"] += gb * auto_storage_per_gb_month(auto, tier) / 30
                self.report.costs["monitoring"] += auto_monitoring_per_month(auto, obj.size) / 30
                occupancy[tier] += gb
        self.report.occupancy.append(occupancy)

    def review(self, live: dict[str, _Object], read: set[str], now: datetime) -> None:
        for obj in live.values():
            for provider in PROVIDERS:
                idle = days_between(obj.since[provider], now)
                tier = auto_tier(self.auto(provider), obj.size, idle)
                if tier != obj.tiers[provider]:
                    obj.tiers[provider] = tier
                    self.report.transitions += 1


def compare(
    log: Sequence[Access],
    policies: Mapping[str, Policy],
    prices: Mapping[str, ProviderPrices],
    review_days: int = 7,
) -> list[Report]:
    """Everything hot, each of ``policies``, and the Intelligent-Tiering emulation."""
    return [
        PolicyReplay("everything-hot", None, prices).run(log),
        *(
            PolicyReplay(name, policy, prices, review_days).run(log)
            for name, policy in policies.items()
        ),
        AutoTieringReplay("intelligent-tiering", prices).run(log),
    ]
