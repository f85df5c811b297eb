"""Tier decisions, pure: the initial placement rule and the cost-based engine (DESIGN §6).

``decide(stats, policy, prices, now)`` chooses a tier for every replica of one object:

1. **Forecast.** Each past read weighs ``2 ** (-age / half_life)``; a steady rate of r reads a
   day sums to ``r * half_life / ln 2``, so the access rate is ``score * ln 2 / half_life``
   reads a day (the upload counts as ``creation_weight`` reads). The forecast for the next
   period is ``rate * period_days``.
2. **Costs per candidate tier**, per replica, for one period (``period_days``): storage
   (billable size: a tier's minimum per object plus overhead), the forecast reads if this
   replica serves them (request + retrieval per GB), and one-off costs spread over
   ``horizon_days``: the transition (the target's transition request; moving to a warmer tier
   also reads the data out of the source: its read request and retrieval), the early-deletion
   charge of leaving the current tier before its minimum duration, and the part of the new
   tier's minimum duration beyond the horizon.
3. **Constraints**, strongest first: a pinned object never moves; a replica stays in its tier
   until the policy's residency for that tier is over; at least ``readable_replicas`` replicas
   stay readable without rehydration (only as many as needed: the others may go to archive;
   it takes a replica out of its rule's tiers only when those leave too few readable); the
   first matching rule's tiers, within the tiers the provider may hold.
4. **Choice.** Reads are served from the cheapest readable replica, so one replica carries the
   read costs and the others only pay to be stored: for each replica and readable tier as the
   reader, the others take their cheapest allowed tier (those needed for the floor their
   cheapest readable one); the cheapest whole assignment wins. It replaces the current one only
   if it saves at least ``min_saving`` of the current expected cost (or the current one breaks
   a rule). Ties go to the current tier, then the warmer one: deterministic.
"""

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from workers.core.policy import ObjectStats, Policy, Replica, Rule, days_between
from workers.core.prices import GB, TIERS, ProviderPrices, TierPrices

MIB = 1024**2


def initial_tier(tags: Mapping[str, str], default: str) -> tuple[str, str]:
    """(tier, reason) for a freshly verified replica: a valid ``tier`` tag wins, else default."""
    wanted = tags.get("tier")
    if wanted in TIERS:
        return wanted, "tag"
    return default, "default policy"


# --- price arithmetic --------------------------------------------------------------------------


def storage_cost(prices: TierPrices, size: int, days: float) -> float:
    """Storing ``size`` bytes for ``days`` (a month is 30 days)."""
    return prices.billable_gb(size) * prices.storage_per_gb_month * days / 30


def read_cost(prices: TierPrices, size: int) -> float:
    """One whole-object read: the request (or restore) and the retrieval per GB."""
    return prices.read + prices.retrieval_per_gb * size / GB


def transition_cost(source: str, target: str, tiers: Mapping[str, TierPrices], size: int) -> float:
    """Moving a replica from ``source`` to ``target`` (no early-deletion charge)."""
    if source == target:
        return 0.0
    cost = tiers[target].transition
    if TIERS.index(target) < TIERS.index(source):  # warmer: the data is read out of the source
        cost += read_cost(tiers[source], size)
    return cost


def committed_days(prices: TierPrices, days_in: float) -> float:
    """Days of the tier's minimum duration still to be billed, whatever happens."""
    if prices.early_deletion == "none":
        return 0.0
    return max(0.0, prices.min_days - days_in)


def early_deletion_charge(prices: TierPrices, size: int, days_in: float) -> float:
    """Deleting or moving a replica after ``days_in`` days in the tier."""
    return storage_cost(prices, size, committed_days(prices, days_in))


# --- forecast ----------------------------------------------------------------------------------


def access_rate(stats: ObjectStats, now: datetime, half_life_days: float, weight: float) -> float:
    """Reads a day, from exponentially decayed past reads (see the module docstring)."""

    def decayed(when: datetime) -> float:
        return float(0.5 ** (max(0.0, days_between(when, now)) / half_life_days))

    score = sum(decayed(t) for t in stats.reads if t <= now) + weight * decayed(stats.created)
    return score * math.log(2) / half_life_days


# --- the decision ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CandidateCost:
    """One tier for one replica, per period: the parts of its expected cost."""

    tier: str
    storage: float
    reads: float  # if this replica serves the forecast reads
    one_off: float  # transition + early deletion + commitment beyond the horizon, spread
    allowed: bool  # by the rules and the provider
    readable: bool  # without rehydration


@dataclass(frozen=True, slots=True)
class ReplicaDecision:
    """Where one replica goes, why, and its expected cost per period before and after."""

    provider: str
    current: str
    target: str
    reason: str
    serves_reads: bool
    cost_before: float
    cost_after: float
    candidates: tuple[CandidateCost, ...]


@dataclass(frozen=True, slots=True)
class TierDecision:
    """The decision for every replica of one object."""

    name: str
    rate_per_day: float
    forecast_reads: float  # over the policy's period
    rule: Rule | None
    replicas: tuple[ReplicaDecision, ...]
    cost_before: float
    cost_after: float

    @property
    def moves(self) -> tuple[ReplicaDecision, ...]:
        return tuple(r for r in self.replicas if r.target != r.current)


@dataclass(frozen=True, slots=True)
class _Options:
    """One replica's candidates: ``allowed`` by the rules, ``readable`` for the floor; ``base``
    (storage + one-off) per tier and the cheapest of each set, precomputed."""

    costs: Mapping[str, CandidateCost]
    allowed: tuple[str, ...]
    readable: tuple[str, ...]
    locked: str | None  # why it can't move
    base: Mapping[str, float]
    cheapest: str
    cheapest_readable: str | None


def _candidate(
    stats: ObjectStats,
    replica: Replica,
    tier: str,
    prices: ProviderPrices,
    reads: float,
    policy: Policy,
    now: datetime,
    allowed: bool,
) -> CandidateCost:
    f = policy.forecast
    current, new = prices.tiers[replica.tier], prices.tiers[tier]
    days_in = days_between(replica.since, now)
    if tier == replica.tier:
        beyond = max(0.0, committed_days(current, days_in) - f.horizon_days)
        one_off = storage_cost(current, stats.size, beyond)
    else:
        beyond = max(0.0, committed_days(new, 0.0) - f.horizon_days)
        one_off = (
            transition_cost(replica.tier, tier, prices.tiers, stats.size)
            + early_deletion_charge(current, stats.size, days_in)
            + storage_cost(new, stats.size, beyond)
        )
    return CandidateCost(
        tier=tier,
        storage=storage_cost(new, stats.size, f.period_days),
        reads=reads * read_cost(new, stats.size),
        one_off=one_off * f.period_days / f.horizon_days,
        allowed=allowed,
        readable=not new.needs_rehydration,
    )


def _lock(stats: ObjectStats, replica: Replica, policy: Policy, now: datetime) -> str | None:
    pin = policy.pin_for(stats)
    if pin is not None:
        return f"pinned ({pin.describe()})"
    residency = policy.residency.get(replica.tier, 0.0)
    days_in = days_between(replica.since, now)
    if days_in < residency:
        return f"residency: {days_in:.0f} of {residency:.0f} days in {replica.tier}"
    return None


def _options(
    stats: ObjectStats,
    replica: Replica,
    prices: ProviderPrices,
    reads: float,
    rule: Rule | None,
    policy: Policy,
    now: datetime,
    rescue: bool,
) -> _Options:
    wanted = rule.tiers if rule is not None else policy.default
    provider_tiers = policy.provider_tiers(replica.provider)
    allowed = tuple(t for t in wanted if t in provider_tiers) or provider_tiers
    locked = _lock(stats, replica, policy, now)
    if locked is not None:
        allowed = (replica.tier,)
    costs = {
        t: _candidate(stats, replica, t, prices, reads, policy, now, t in allowed)
        for t in dict.fromkeys((*TIERS, replica.tier))
    }
    readable = tuple(t for t in allowed if costs[t].readable)
    if not readable and locked is None and rescue:  # the floor overrides rules, not providers
        readable = tuple(t for t in provider_tiers if costs[t].readable)
    base = {t: c.storage + c.one_off for t, c in costs.items()}

    def key(tier: str) -> tuple[float, bool, int]:  # ties: the current tier, then the warmer
        return (round(base[tier], 12), tier != replica.tier, TIERS.index(tier))

    cheapest_readable = min(readable, key=key) if readable else None
    return _Options(
        costs, allowed, readable, locked, base, min(allowed, key=key), cheapest_readable
    )


def _total(options: Sequence[_Options], tiers: Sequence[str], server: int) -> float:
    base = sum(o.base[t] for o, t in zip(options, tiers, strict=True))
    return base + options[server].costs[tiers[server]].reads


def _readable_choice(options: _Options) -> str:
    assert options.cheapest_readable is not None  # only asked of replicas that can be readable
    return options.cheapest_readable


def _floor_penalty(options: _Options, chosen: str) -> float:
    """What keeping this replica readable adds to its cost."""
    return options.base[_readable_choice(options)] - options.base[chosen]


def _best(options: Sequence[_Options], need: int) -> tuple[tuple[str, ...], int]:
    """The cheapest assignment (a tier per replica) and the replica serving the reads."""
    able = [i for i, o in enumerate(options) if o.cheapest_readable is not None]
    need = min(need, len(able))
    cheapest = [o.cheapest for o in options]
    best: tuple[float, tuple[str, ...], int] | None = None
    for s in able if need else range(len(options)):
        for t in options[s].readable if need else options[s].allowed:
            tiers = [*cheapest[:s], t, *cheapest[s + 1 :]]
            # the others kept readable for the floor: those for whom it costs least
            extra = sorted(
                (_floor_penalty(options[i], tiers[i]), i)
                for i in able
                if i != s and not options[i].costs[tiers[i]].readable
            )
            missing = (
                need
                - 1
                - sum(
                    1 for i in range(len(options)) if i != s and options[i].costs[tiers[i]].readable
                )
            )
            for _, i in extra[: max(0, missing)]:
                tiers[i] = _readable_choice(options[i])
            total = _total(options, tiers, s)
            if best is None or total < best[0] - 1e-15:
                best = (total, tuple(tiers), s)
    assert best is not None  # every replica has at least one allowed tier
    return best[1], best[2]


def _serving(options: Sequence[_Options], tiers: Sequence[str]) -> int:
    """Which replica serves reads: the cheapest readable one (any, if none is readable)."""
    readable = [i for i, t in enumerate(tiers) if options[i].costs[t].readable]
    pool = readable or list(range(len(tiers)))
    return min(pool, key=lambda i: (options[i].costs[tiers[i]].reads, i))


def decide(
    stats: ObjectStats, policy: Policy, prices: Mapping[str, ProviderPrices], now: datetime
) -> TierDecision:
    """A tier for each replica of ``stats`` (see the module docstring)."""
    f = policy.forecast
    rate = access_rate(stats, now, f.half_life_days, f.creation_weight)
    reads = rate * f.period_days
    rule = policy.rule_for(stats, now)
    # the floor may take a replica out of its rule's tiers, but only when the rules leave too
    # few replicas readable
    options = [
        _options(stats, r, prices[r.provider], reads, rule, policy, now, rescue=False)
        for r in stats.replicas
    ]
    if sum(1 for o in options if o.readable) < policy.readable_replicas:
        options = [
            _options(stats, r, prices[r.provider], reads, rule, policy, now, rescue=True)
            for r in stats.replicas
        ]
    currents = tuple(r.tier for r in stats.replicas)
    tiers, server = _best(options, policy.readable_replicas)
    now_server = _serving(options, currents)
    before, after = _total(options, currents, now_server), _total(options, tiers, server)
    need = min(policy.readable_replicas, sum(1 for o in options if o.cheapest_readable))
    current_ok = all(t in o.allowed for o, t in zip(options, currents, strict=True)) and (
        sum(1 for o, t in zip(options, currents, strict=True) if o.costs[t].readable) >= need
    )
    kept = tiers != currents and current_ok and before - after < f.min_saving * before
    if kept:
        tiers, server = currents, now_server
    replicas = tuple(
        _replica_decision(r, o, t, i == now_server, i == server, rule, kept, f.min_saving)
        for i, (r, o, t) in enumerate(zip(stats.replicas, options, tiers, strict=True))
    )
    return TierDecision(
        name=stats.name,
        rate_per_day=rate,
        forecast_reads=reads,
        rule=rule,
        replicas=replicas,
        cost_before=before,
        cost_after=before if kept else after,
    )


def _replica_decision(
    replica: Replica,
    options: _Options,
    target: str,
    served: bool,
    serves: bool,
    rule: Rule | None,
    kept: bool,
    min_saving: float,
) -> ReplicaDecision:
    now, then = options.costs[replica.tier], options.costs[target]
    if options.locked is not None:
        reason = options.locked
    elif kept:
        reason = f"stays: no move saves {min_saving:.0%} of the expected cost"
    elif target not in options.allowed:
        reason = "readable floor: kept readable without rehydration"
    elif rule is not None and len(rule.tiers) == 1:
        reason = f"rule {rule.name}"
    else:
        where = f"rule {rule.name}: " if rule is not None else ""
        reason = f"{where}cheapest expected cost" + (" (serves the reads)" if serves else "")
    return ReplicaDecision(
        provider=replica.provider,
        current=replica.tier,
        target=target,
        reason=reason,
        serves_reads=serves,
        cost_before=now.storage + (now.reads if served else 0.0),
        cost_after=then.storage + then.one_off + (then.reads if serves else 0.0),
        candidates=tuple(options.costs[t] for t in TIERS),
    )


# --- explanation -------------------------------------------------------------------------------


def explain(
    stats: ObjectStats, policy: Policy, prices: Mapping[str, ProviderPrices], now: datetime
) -> str:
    """``movingdata tier explain``: the decision for each replica, with the costs compared."""
    decision = decide(stats, policy, prices, now)
    f = policy.forecast
    rule = decision.rule
    lines = [
        f"{stats.name}: {stats.size / MIB:.3f} MiB, age {days_between(stats.created, now):.0f} d,"
        f" idle {stats.idle_days(now):.0f} d, {len(stats.reads)} reads;"
        f" forecast {decision.forecast_reads:.2f} reads per {f.period_days:.0f} d"
        f" (half-life {f.half_life_days:.0f} d, one-off costs over {f.horizon_days:.0f} d)",
        f"rule: {rule.name} (line {rule.line}) -> {', '.join(rule.tiers)}"
        if rule is not None
        else f"rule: none matches -> {', '.join(policy.default)}",
        f"expected cost per {f.period_days:.0f} d: ${decision.cost_before:.6f} now,"
        f" ${decision.cost_after:.6f} after",
    ]
    for r in decision.replicas:
        move = f"{r.current} -> {r.target}" if r.target != r.current else f"stays {r.current}"
        lines.append(f"{r.provider}: {move}: {r.reason}")
        lines.append(f"  {'tier':8} {'storage':>10} {'reads*':>10} {'one-off':>10} {'total':>10}")
        for c in r.candidates:
            notes = [
                note
                for note, on in (("not allowed", not c.allowed), ("rehydrate", not c.readable))
                if on
            ]
            total = c.storage + c.one_off + (c.reads if r.serves_reads else 0.0)
            lines.append(
                f"  {c.tier:8} {c.storage:10.3g} {c.reads:10.3g} {c.one_off:10.3g} {total:10.3g}"
                f"  {'; '.join(notes)}".rstrip()
            )
    lines.append("* reads: if this replica serves them; totals count them for the one that does")
    return "\n".join(lines)
