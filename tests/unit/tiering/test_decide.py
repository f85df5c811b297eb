"""The cost-based decision, on a toy price sheet whose arithmetic fits in a comment.

Toy prices, per GB-month / per GB / per request, min days:
    hot      0.020  retrieval 0     read 0.001  transition 0.001  min 0
    warm     0.010  retrieval 0.01  read 0.001  transition 0.002  min 30
    cold     0.004  retrieval 0.03  read 0.002  transition 0.005  min 90
    archive  0.001  retrieval 0.05  read 0.010  transition 0.010  min 180, needs rehydration
Objects are 1 GiB (billable 1 GB) unless said; period 30 days, horizon 180: one-off costs are
counted at 30/180 = 1/6 per period.
"""

import math
from datetime import UTC, datetime, timedelta

import pytest

from workers.core.policy import Forecast, Match, ObjectStats, Pin, Policy, Replica, Rule
from workers.core.prices import GB, ProviderPrices, TierPrices
from workers.core.tiering import (
    access_rate,
    decide,
    early_deletion_charge,
    explain,
    read_cost,
    storage_cost,
    transition_cost,
)

NOW = datetime(2025, 6, 1, tzinfo=UTC)


def tier(storage: float, retrieval: float, read: float, transition: float, days: int) -> TierPrices:
    return TierPrices(
        storage_class="toy",
        storage_per_gb_month=storage,
        retrieval_per_gb=retrieval,
        write=0.001,
        read=read,
        transition=transition,
        min_days=days,
        early_deletion="remaining-days" if days else "none",
        needs_rehydration=days == 180,
        rehydration_hours=12 if days == 180 else 0,
        min_billable_kib=0,
        overhead_kib=0,
    )


TIERS = {
    "hot": tier(0.020, 0.0, 0.001, 0.001, 0),
    "warm": tier(0.010, 0.01, 0.001, 0.002, 30),
    "cold": tier(0.004, 0.03, 0.002, 0.005, 90),
    "archive": tier(0.001, 0.05, 0.010, 0.010, 180),
}
TOY = ProviderPrices("toy", "here", "June 2024", "https://example.org", 0.1, TIERS, None)
PRICES = {"a": TOY, "b": TOY, "c": TOY}
QUIET = Forecast(creation_weight=0, min_saving=0)  # the upload counts for nothing


def obj(
    tiers: tuple[str, ...] = ("hot", "hot", "hot"),
    size: int = GB,
    in_tier: float = 200,
    reads: tuple[float, ...] = (),
    name: str = "data/x",
) -> ObjectStats:
    """Replicas a, b, c in ``tiers`` for ``in_tier`` days; reads ``reads`` days ago."""
    return ObjectStats(
        name=name,
        size=size,
        created=NOW - timedelta(days=400),
        reads=tuple(NOW - timedelta(days=d) for d in reads),
        replicas=tuple(
            Replica(p, t, NOW - timedelta(days=in_tier)) for p, t in zip("abc", tiers, strict=False)
        ),
    )


def targets(stats: ObjectStats, policy: Policy) -> tuple[str, ...]:
    return tuple(r.target for r in decide(stats, policy, PRICES, NOW).replicas)


# --- price arithmetic ---------------------------------------------------------------------------


def test_price_arithmetic() -> None:
    assert storage_cost(TIERS["hot"], GB, 15) == pytest.approx(0.01)  # 1 GB x 0.02 x 15/30
    assert read_cost(TIERS["cold"], GB) == pytest.approx(0.032)  # 0.002 + 0.03 x 1 GB
    assert read_cost(TIERS["cold"], GB // 2) == pytest.approx(0.017)  # 0.002 + 0.03 x 0.5
    # colder: the target's transition request only
    assert transition_cost("hot", "cold", TIERS, GB) == pytest.approx(0.005)
    # warmer: hot's transition 0.001 + reading out of cold 0.032
    assert transition_cost("cold", "hot", TIERS, GB) == pytest.approx(0.033)
    assert transition_cost("warm", "warm", TIERS, GB) == 0
    # 30 days into cold's 90: 60 days left at 0.004/month = 0.008
    assert early_deletion_charge(TIERS["cold"], GB, 30) == pytest.approx(0.008)
    assert early_deletion_charge(TIERS["cold"], GB, 95) == 0
    assert early_deletion_charge(TIERS["hot"], GB, 0) == 0  # no minimum


# --- forecast -----------------------------------------------------------------------------------


def test_the_access_rate_decays_old_reads_by_the_half_life() -> None:
    stats = ObjectStats("x", 1, NOW - timedelta(days=30), (NOW - timedelta(days=10),) * 1, ())
    two = ObjectStats(
        "x", 1, NOW - timedelta(days=30), (NOW - timedelta(days=10), NOW - timedelta(days=20)), ()
    )
    # half-life 10: a read 10 days old weighs 0.5, 20 days old 0.25; rate = score x ln2 / 10
    assert access_rate(stats, NOW, 10, 0) == pytest.approx(0.5 * math.log(2) / 10)
    assert access_rate(two, NOW, 10, 0) == pytest.approx(0.75 * math.log(2) / 10)  # 0.05199/day
    # the upload 30 days ago, weight 1: + 0.125
    assert access_rate(two, NOW, 10, 1) == pytest.approx(0.875 * math.log(2) / 10)
    # reads in the future of `now` are not counted
    later = ObjectStats("x", 1, NOW, (NOW + timedelta(days=1),), ())
    assert access_rate(later, NOW, 10, 0) == 0


def test_a_steady_read_rate_is_recovered_by_the_estimate() -> None:
    # one read a day for 200 days, half-life 7: the sum is ~ 7/ln2, so the rate is ~ 1/day
    steady = ObjectStats(
        "x",
        1,
        NOW - timedelta(days=200),
        tuple(NOW - timedelta(days=d + 0.5) for d in range(200)),
        (),
    )
    assert access_rate(steady, NOW, 7, 0) == pytest.approx(1.0, rel=0.01)
    decision = decide(
        obj(reads=tuple(d + 0.5 for d in range(200))),
        Policy(forecast=Forecast(half_life_days=7, creation_weight=0)),
        PRICES,
        NOW,
    )
    assert decision.forecast_reads == pytest.approx(30, rel=0.01)  # over the 30-day period


# --- decisions ----------------------------------------------------------------------------------


def test_an_idle_object_goes_cold_keeping_one_replica_readable() -> None:
    # No reads. Per period: hot 0.02; warm 0.01 + 0.002/6 = 0.01033; cold 0.004 + 0.005/6 =
    # 0.00483; archive 0.001 + 0.01/6 = 0.00267 but needs rehydration. One replica readable:
    # cold + 2 x archive = 0.01017 (vs 0.06 now).
    decision = decide(obj(), Policy(forecast=QUIET), PRICES, NOW)
    assert [r.target for r in decision.replicas] == ["cold", "archive", "archive"]
    assert decision.cost_before == pytest.approx(0.06)
    assert decision.cost_after == pytest.approx(0.004 + 0.005 / 6 + 2 * (0.001 + 0.01 / 6))
    assert decision.replicas[0].serves_reads


def test_the_readable_floor_can_be_lowered_or_raised() -> None:
    assert targets(obj(), Policy(forecast=QUIET, readable_replicas=0)) == ("archive",) * 3
    assert sorted(targets(obj(), Policy(forecast=QUIET, readable_replicas=2))) == [
        "archive",
        "cold",
        "cold",
    ]
    # more than there are replicas: all three readable
    assert targets(obj(), Policy(forecast=QUIET, readable_replicas=5)) == ("cold",) * 3


def test_the_floor_overrides_a_rule_for_the_one_replica_it_needs() -> None:
    policy = Policy(rules=(Rule("freeze", Match(), ("archive",)),), forecast=QUIET)
    decision = decide(obj(), policy, PRICES, NOW)
    assert [r.target for r in decision.replicas] == ["cold", "archive", "archive"]
    assert decision.replicas[0].reason.startswith("readable floor")
    assert decision.replicas[1].reason == "rule freeze"


def test_a_tiny_object_stays_put_when_moving_costs_more_than_it_saves() -> None:
    # 1 KiB in hot: 1024/2**30 x 0.02 = 1.9e-8 a period. Archive would save < 1.9e-8 a period
    # but its transition costs 0.01/6 = 0.0017 a period: hot stays cheapest.
    decision = decide(obj(size=1024), Policy(forecast=QUIET), PRICES, NOW)
    assert [r.target for r in decision.replicas] == ["hot", "hot", "hot"]
    assert not decision.moves
    assert decision.replicas[0].reason == "cheapest expected cost (serves the reads)"


def test_a_read_burst_after_a_long_silence_brings_the_reader_back_up() -> None:
    # a in cold, b and c in archive for 200 days; 10 reads right now, half-life 7:
    # rate = 10 x ln2 / 7 = 0.99/day, 29.7 reads a period. Serving from cold: 0.004 + 29.7 x
    # 0.032 = 0.955; from hot: 0.02 + 29.7 x 0.001 + (0.001 + 0.032)/6 = 0.0552: a goes hot.
    # (b from archive would pay 0.001 + 0.06 to leave: a is the cheaper one to bring back.)
    stats = obj(("cold", "archive", "archive"), reads=(0,) * 10)
    policy = Policy(forecast=Forecast(half_life_days=7, creation_weight=0))
    decision = decide(stats, policy, PRICES, NOW)
    assert decision.forecast_reads == pytest.approx(10 * math.log(2) / 7 * 30)
    assert [r.target for r in decision.replicas] == ["hot", "archive", "archive"]
    a = decision.replicas[0]
    assert a.serves_reads and a.reason == "cheapest expected cost (serves the reads)"
    assert a.cost_after == pytest.approx(0.02 + decision.forecast_reads * 0.001 + 0.033 / 6)
    # the same object, silent: stays where it is
    assert targets(obj(("cold", "archive", "archive")), Policy(forecast=QUIET)) == (
        "cold",
        "archive",
        "archive",
    )


def test_pinned_objects_never_move() -> None:
    policy = Policy(pinned=(Pin(prefix="legal/"),), forecast=QUIET)
    decision = decide(obj(name="legal/x"), policy, PRICES, NOW)
    assert [r.target for r in decision.replicas] == ["hot"] * 3
    assert all(r.reason == "pinned (prefix legal/)" for r in decision.replicas)
    assert targets(obj(name="data/x"), policy) != ("hot",) * 3


def test_archive_residency_holds_a_replica_whatever_the_reads() -> None:
    # b entered archive 10 days ago; residency 180: it stays, even under a read burst.
    stats = obj(("hot", "archive", "archive"), in_tier=10, reads=(0,) * 50)
    policy = Policy(residency={"archive": 180}, forecast=QUIET)
    decision = decide(stats, policy, PRICES, NOW)
    assert [r.target for r in decision.replicas] == ["hot", "archive", "archive"]
    assert decision.replicas[1].reason == "residency: 10 of 180 days in archive"


def test_leaving_a_tier_early_pays_its_minimum_duration() -> None:
    # One replica, 5 days into cold (min 90), no reads, no floor. Archive: 0.001 + (0.01 +
    # 85/30 x 0.004)/6 = 0.001 + 0.021333/6 = 0.004556 > staying 0.004: stays cold.
    policy = Policy(forecast=QUIET, readable_replicas=0)
    early = decide(obj(("cold",), in_tier=5), policy, PRICES, NOW)
    assert early.replicas[0].target == "cold"
    archive = early.replicas[0].candidates[3]
    assert archive.one_off == pytest.approx((0.01 + 85 / 30 * 0.004) / 6)
    # 100 days in: archive is 0.001 + 0.01/6 = 0.00267 < 0.004: it goes.
    assert decide(obj(("cold",), in_tier=100), policy, PRICES, NOW).replicas[0].target == "archive"


def test_a_new_tier_minimum_beyond_the_horizon_is_counted() -> None:
    # horizon 90 days: archive's 180-day minimum bills 90 more days = 0.003, spread: /3
    policy = Policy(forecast=Forecast(horizon_days=90, creation_weight=0), readable_replicas=0)
    decision = decide(obj(("hot",)), policy, PRICES, NOW)
    archive = decision.replicas[0].candidates[3]
    assert archive.one_off == pytest.approx((0.01 + 0.003) * 30 / 90)


def test_rules_and_providers_bound_the_tiers_the_cost_model_chooses_from() -> None:
    policy = Policy(
        rules=(Rule("no-archive", Match(prefix="data/"), ("hot", "warm", "cold")),),
        providers={"b": ("hot", "warm")},
        forecast=QUIET,
    )
    # a serves (cold, readable) and the others take their cheapest allowed: c cold, b warm
    assert targets(obj(), policy) == ("cold", "warm", "cold")
    decision = decide(obj(), policy, PRICES, NOW)
    assert decision.replicas[1].reason == "rule no-archive: cheapest expected cost"
    assert not decision.replicas[1].candidates[2].allowed  # cold is not b's


def test_a_small_saving_below_the_threshold_is_not_taken() -> None:
    # 1 MiB: hot 0.02/1024 = 1.95e-5 a period; cold 0.004/1024 + 0.005/6 = 8.4e-4: no saving.
    # 1 GiB hot -> the saving is 83%: with min_saving 0.9 nothing moves.
    policy = Policy(forecast=Forecast(creation_weight=0, min_saving=0.9))
    decision = decide(obj(), policy, PRICES, NOW)
    assert not decision.moves
    assert decision.replicas[0].reason.startswith("stays: no move saves 90%")
    assert decide(obj(), Policy(forecast=QUIET), PRICES, NOW).moves


def test_the_decision_is_deterministic() -> None:
    stats = obj(reads=(1, 3, 40))
    assert decide(stats, Policy(), PRICES, NOW) == decide(stats, Policy(), PRICES, NOW)


def test_explain_names_the_rule_the_costs_and_the_reason_per_replica() -> None:
    policy = Policy(rules=(Rule("freeze", Match(), ("archive",), line=7),), forecast=QUIET)
    text = explain(obj(), policy, PRICES, NOW)
    assert "rule: freeze (line 7) -> archive" in text
    assert "a: hot -> cold: readable floor" in text
    assert "b: hot -> archive: rule freeze" in text
    assert "$0.060000 now" in text
    lines = text.splitlines()
    row = next(
        line
        for line in lines[
            lines.index("a: hot -> cold: readable floor: kept readable without rehydration") :
        ]
        if line.strip().startswith("cold")
    )
    assert "0.004" in row and "not allowed" in row
    assert "rehydrate" in next(line for line in lines if line.strip().startswith("archive"))
