"""What a tiering policy says, and what its rules look at: an object's stats.

A policy (``deploy/policies/*.yaml``, read by ``workers.tiering.policy``) holds rules (first
match wins) naming the tiers an object may be in, pins, a minimum residency per tier, the tiers
each provider may hold, how many replicas must stay readable without rehydration, and the
forecast's parameters. Everything here is pure: ``now`` is always handed in.
"""

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime

from workers.core.prices import TIERS

DAY = 86_400.0


def days_between(start: datetime, end: datetime) -> float:
    """Days from start to end, fractional."""
    return (end - start).total_seconds() / DAY


@dataclass(frozen=True, slots=True)
class Replica:
    """One copy of an object: its provider, its tier and since when it has been there."""

    provider: str
    tier: str
    since: datetime


@dataclass(frozen=True, slots=True)
class ObjectStats:
    """What a decision knows of an object: size, age, reads and where its replicas are."""

    name: str
    size: int
    created: datetime
    reads: tuple[datetime, ...]
    replicas: tuple[Replica, ...]
    tenant: str = "default"
    tags: Mapping[str, str] = field(default_factory=dict)

    def idle_days(self, now: datetime) -> float:
        """Days since the last read (since creation when never read)."""
        return days_between(max((self.created, *self.reads)), now)


@dataclass(frozen=True, slots=True)
class Match:
    """Conditions a rule puts on an object; all given ones must hold (bounds inclusive)."""

    min_age_days: float | None = None
    max_age_days: float | None = None
    min_idle_days: float | None = None
    max_idle_days: float | None = None
    min_size: int | None = None
    max_size: int | None = None
    prefix: str | None = None
    tenant: str | None = None
    tags: Mapping[str, str] = field(default_factory=dict)

    def matches(self, stats: ObjectStats, now: datetime) -> bool:
        age, idle = days_between(stats.created, now), stats.idle_days(now)
        bounds = (
            (self.min_age_days, age, self.max_age_days),
            (self.min_idle_days, idle, self.max_idle_days),
            (self.min_size, stats.size, self.max_size),
        )
        return (
            all((lo is None or lo <= v) and (hi is None or v <= hi) for lo, v, hi in bounds)
            and (self.prefix is None or stats.name.startswith(self.prefix))
            and (self.tenant is None or stats.tenant == self.tenant)
            and all(stats.tags.get(k) == v for k, v in self.tags.items())
        )


@dataclass(frozen=True, slots=True)
class Rule:
    """A matching object may only be in ``tiers`` (one tier: it goes there)."""

    name: str
    match: Match
    tiers: tuple[str, ...]
    line: int = 0  # where the policy file says it, for explanations


@dataclass(frozen=True, slots=True)
class Pin:
    """Objects under ``prefix`` and/or carrying all of ``tags`` never move."""

    prefix: str | None = None
    tags: Mapping[str, str] = field(default_factory=dict)
    line: int = 0

    def holds(self, stats: ObjectStats) -> bool:
        return (self.prefix is None or stats.name.startswith(self.prefix)) and all(
            stats.tags.get(k) == v for k, v in self.tags.items()
        )

    def describe(self) -> str:
        parts = [f"prefix {self.prefix}"] if self.prefix is not None else []
        parts += [f"tag {k}={v}" for k, v in sorted(self.tags.items())]
        return ", ".join(parts)


@dataclass(frozen=True, slots=True)
class Forecast:
    """The cost model's knobs.

    half_life_days: a read that old counts half as much in the access rate.
    period_days: the forecast (and the reported monthly costs) cover this many days.
    horizon_days: one-off costs (transitions, early deletion) are spread over this many days.
    min_saving: a move must cut the expected cost by at least this fraction.
    creation_weight: the upload counts as this many reads (a new object is likely read).
    """

    half_life_days: float = 14.0
    period_days: float = 30.0
    horizon_days: float = 180.0
    min_saving: float = 0.05
    creation_weight: float = 1.0


@dataclass(frozen=True, slots=True)
class Policy:
    """A whole policy; see the module docstring."""

    rules: tuple[Rule, ...] = ()
    default: tuple[str, ...] = TIERS  # the tiers allowed when no rule matches
    pinned: tuple[Pin, ...] = ()
    residency: Mapping[str, float] = field(default_factory=dict)  # min days in a tier
    providers: Mapping[str, tuple[str, ...]] = field(default_factory=dict)  # absent: all tiers
    readable_replicas: int = 1
    forecast: Forecast = field(default_factory=Forecast)
    decide_on_read: bool = True  # a read decides its object again (a burst warms it at once)

    def rule_for(self, stats: ObjectStats, now: datetime) -> Rule | None:
        """The first rule matching the object, if any."""
        return next((rule for rule in self.rules if rule.match.matches(stats, now)), None)

    def pin_for(self, stats: ObjectStats) -> Pin | None:
        return next((pin for pin in self.pinned if pin.holds(stats)), None)

    def provider_tiers(self, provider: str) -> tuple[str, ...]:
        return self.providers.get(provider, TIERS)
