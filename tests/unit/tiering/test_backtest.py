"""The backtest: the Intelligent-Tiering emulation's rules, the replay's arithmetic, the log
format, the generator and the CLI end to end."""

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from typer.testing import CliRunner

from workers.cli import app
from workers.core.policy import Forecast, Match, Policy, Rule
from workers.core.prices import GB, KIB
from workers.tiering.accesslog import Access, AccessLogError, read_log, write_log
from workers.tiering.backtest import (
    AutoTieringReplay,
    PolicyReplay,
    auto_monitoring_per_month,
    auto_tier,
)
from workers.tiering.prices import load_prices
from workers.tiering.synth import synthesise

PRICES = load_prices()
S3_IT = PRICES["s3"].auto_tiering
T0 = datetime(2025, 1, 1, tzinfo=UTC)


def at(days: float) -> datetime:
    return T0 + timedelta(days=days)


def one_object(*events: tuple[float, str], size: int = GB) -> list[Access]:
    return [Access(at(d), "data/a", size, op) for d, op in events]


# --- Intelligent-Tiering's rules ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("size", "idle", "tier"),
    [
        (128 * KIB, 29.9, "hot"),  # frequent until 30 days without access
        (128 * KIB, 30, "warm"),  # infrequent from 30
        (128 * KIB, 89.9, "warm"),
        (128 * KIB, 90, "cold"),  # archive instant from 90
        (128 * KIB - 1, 1000, "hot"),  # under 128 KiB: never moved
    ],
)
def test_intelligent_tiering_moves_by_days_without_access(
    size: int, idle: float, tier: str
) -> None:
    assert S3_IT is not None
    assert auto_tier(S3_IT, size, idle) == tier


def test_the_monitoring_fee_spares_objects_under_128_kib() -> None:
    assert S3_IT is not None
    assert auto_monitoring_per_month(S3_IT, 128 * KIB) == pytest.approx(0.0025 / 1000)
    assert auto_monitoring_per_month(S3_IT, 128 * KIB - 1) == 0


def test_the_emulation_prices_100_days_of_an_idle_object() -> None:
    # 1 GiB put on day 0, deleted on day 100: 100 stored days per replica, 30 frequent, 60
    # infrequent, 10 archive instant. S3 (0.023 x 30 + 0.0125 x 60 + 0.004 x 10)/30 = 1.48/30;
    # Azure (0.018 x 30 + 0.01 x 60 + 0.0036 x 10)/30 = 1.176/30; GCS (0.02 x 30 + 0.01 x 60 +
    # 0.004 x 10)/30 = 1.24/30. Monitoring: 3 replicas x 100 days x $0.0000025/30.
    report = AutoTieringReplay("it", PRICES).run(one_object((0, "put"), (100, "delete")))
    assert report.costs["storage"] == pytest.approx((1.48 + 1.176 + 1.24) / 30)
    assert report.costs["monitoring"] == pytest.approx(3 * 100 * 2.5e-6 / 30)
    assert report.costs["retrieval"] == report.costs["early_deletion"] == 0
    assert report.transitions == 6  # each replica: frequent -> infrequent -> archive instant


def test_the_emulation_brings_a_read_replica_back_to_frequent_for_free() -> None:
    log = one_object((0, "put"), (40.5, "get"), (41.5, "get"), (60, "delete"))
    report = AutoTieringReplay("it", PRICES).run(log)
    # the first read finds the serving replica infrequent (40 days idle), the second frequent
    assert report.reads_by_tier == {"hot": 1, "warm": 1, "cold": 0, "archive": 0}
    assert report.costs["retrieval"] == 0
    assert report.latency["instant"] == 2


def test_tiny_objects_are_never_moved_nor_charged_monitoring() -> None:
    report = AutoTieringReplay("it", PRICES).run(one_object((0, "put"), (200, "delete"), size=1000))
    assert report.transitions == 0 and report.costs["monitoring"] == 0


# --- the policy replay --------------------------------------------------------------------------


def test_everything_hot_pays_hot_storage_and_a_put_per_replica() -> None:
    report = PolicyReplay("hot", None, PRICES).run(one_object((0, "put"), (100, "delete")))
    # 100 days of (0.023 + 0.018 + 0.020) per GB-month; PUTs 3 x $0.000005
    assert report.costs["storage"] == pytest.approx(100 * 0.061 / 30)
    assert report.costs["operations"] == pytest.approx(3 * 5e-6)
    assert report.transitions == 0


def test_a_move_and_an_early_delete_are_charged() -> None:
    # Everything to cold at the end of day 0 (transitions: S3 0.02/1000 + Azure 0.18/10000 +
    # GCS 0.02/1000 = 0.000058); deleted on day 50 after 49 days in cold (min 90): 41 days
    # more of (0.004 + 0.0036 + 0.004) per GB-month.
    policy = Policy(rules=(Rule("cold", Match(), ("cold",)),), forecast=Forecast(min_saving=0))
    report = PolicyReplay("cold", policy, PRICES, review_days=1).run(
        one_object((0, "put"), (50, "delete"))
    )
    assert report.transitions == 3
    assert report.costs["transitions"] == pytest.approx(0.000058)
    assert report.early_deletions == 3
    assert report.costs["early_deletion"] == pytest.approx(0.0116 * 41 / 30)
    # day 0 hot, days 1-49 cold
    assert report.costs["storage"] == pytest.approx((0.061 + 49 * 0.0116) / 30)


def test_reads_are_served_by_the_cheapest_readable_replica() -> None:
    # the rule sends everything to archive; the floor keeps one replica readable: reads never
    # wait for a rehydration
    policy = Policy(rules=(Rule("a", Match(), ("archive",)),), forecast=Forecast(min_saving=0))
    log = one_object((0, "put"), (10.5, "get"), (20, "delete"))
    report = PolicyReplay("archive", policy, PRICES, review_days=1).run(log)
    assert report.latency == {"instant": 1, "minutes": 0, "hours": 0}
    assert report.reads_by_tier["hot"] == 0 and report.reads == 1
    with_no_floor = Policy(policy.rules, readable_replicas=0, forecast=policy.forecast)
    report = PolicyReplay("archive", with_no_floor, PRICES, review_days=1).run(log)
    # GCS archive is read in milliseconds: still instant, at $0.05/GB
    assert report.reads_by_tier["archive"] == 1 and report.latency["instant"] == 1
    assert report.costs["retrieval"] == pytest.approx(0.05)


# --- the log format and the generator -----------------------------------------------------------


@pytest.mark.parametrize("name", ["log.jsonl", "log.csv"])
def test_the_log_round_trips(tmp_path: Path, name: str) -> None:
    log = synthesise(3, 20, 30)
    write_log(tmp_path / name, log)
    assert read_log(tmp_path / name) == log


def test_a_bad_log_line_is_named(tmp_path: Path) -> None:
    path = tmp_path / "log.jsonl"
    good = '{"time": "2025-01-01T00:00:00Z", "object": "a", "size": 1, "operation": "put"}\n'
    path.write_text(good + '{"time": "2025-01-01T00:00:00Z", "object": "a", "size": 1}\n')
    with pytest.raises(AccessLogError, match=r"log\.jsonl:2: missing operation"):
        read_log(path)
    path.write_text(good.replace("put", "copy"))
    with pytest.raises(AccessLogError, match=r"log\.jsonl:1: operation must be"):
        read_log(path)
    path.write_text(good.replace("Z", ""))
    with pytest.raises(AccessLogError, match="has no zone"):
        read_log(path)


def test_the_generator_is_deterministic_per_seed() -> None:
    assert synthesise(7, 60, 90) == synthesise(7, 60, 90)
    assert synthesise(7, 60, 90) != synthesise(8, 60, 90)


def test_the_generator_has_tiny_objects_ageing_and_a_daily_cycle() -> None:
    log = synthesise(5, 400, 365)
    puts = {a.object: a for a in log if a.operation == "put"}
    assert len(puts) == 400
    tiny = sum(1 for a in puts.values() if a.size < 128 * KIB)
    assert 0.35 < tiny / 400 < 0.55
    gets = [a for a in log if a.operation == "get"]
    assert all(a.time > puts[a.object].time for a in gets)
    ages = [(a.time - puts[a.object].time).days for a in gets]
    assert sum(1 for d in ages if d < 30) > 3 * sum(1 for d in ages if 60 <= d < 90)
    assert sum(1 for d in ages if d > 120) > 0  # bursts and background on old objects
    day = sum(1 for a in gets if 8 <= a.time.hour < 18)
    assert day > 2 * (len(gets) - day)


# --- the CLI ------------------------------------------------------------------------------------


def test_synth_then_backtest_through_the_cli(tmp_path: Path) -> None:
    runner = CliRunner()
    log = tmp_path / "log.jsonl"
    made = runner.invoke(
        app, ["tier", "synth", "--seed", "2", "--objects", "40", "--days", "60", "-o", str(log)]
    )
    assert made.exit_code == 0, made.output
    args = ["tier", "backtest", "--policy", "default", "--access-log", str(log)]
    result = runner.invoke(app, [*args, "--json", "--plots", str(tmp_path / "plots")])
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)
    assert [r["policy"] for r in rows] == [
        "everything-hot",
        "rules",
        "default",
        "intelligent-tiering",
    ]
    hot, _, predictive, it = rows
    assert hot["transitions"] == 0 and hot["costs"]["storage"] > 0
    assert it["costs"]["monitoring"] > 0 and it["vs_intelligent_tiering"] == 0
    assert predictive["total"] < hot["total"]
    assert sorted(p.name for p in (tmp_path / "plots").iterdir()) == [
        "cost-over-time.png",
        "occupancy-default.png",
    ]
    table = runner.invoke(app, args)
    assert (
        table.exit_code == 0 and "intelligent-tiering" in table.stdout and "vs IT" in table.stdout
    )


def test_backtest_names_a_bad_policy_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("rules:\n  - name: x\n    tier: tepid\n")
    log = tmp_path / "log.jsonl"
    write_log(log, synthesise(1, 5, 5))
    result = CliRunner().invoke(
        app, ["tier", "backtest", "--policy", str(bad), "--access-log", str(log)]
    )
    assert result.exit_code == 1
    assert "bad.yaml:3: unknown tier 'tepid'" in result.output
