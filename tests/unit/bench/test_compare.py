"""The benchmark's pure logic: the order of tools per round, medians, ratios to the faster peer."""

import pytest

from bench.compare import faster, median_of, parse_rounds, ratio, run_orders


def test_rounds_alternate_the_order_of_tools() -> None:
    assert run_orders(["md", "rc160", "rc176"], 3) == [
        ["md", "rc160", "rc176"],
        ["rc176", "rc160", "md"],
        ["md", "rc160", "rc176"],
    ]
    assert run_orders(["md"], 1) == [["md"]]


def test_every_tool_is_first_and_last_in_some_round() -> None:
    orders = run_orders(list("abcd"), 2)
    assert {o[0] for o in orders} == {"a", "d"} and {o[-1] for o in orders} == {"a", "d"}


def test_median_is_taken_figure_by_figure_nested_too() -> None:
    runs = [
        {"tool": "rclone 1.76", "MB_per_s": 10.0, "seconds": 3.0, "latency_s": {"p50": 1.0}},
        {"tool": "rclone 1.76", "MB_per_s": 30.0, "seconds": 1.0, "latency_s": {"p50": 9.0}},
        {"tool": "rclone 1.76", "MB_per_s": 20.0, "seconds": 2.5, "latency_s": {"p50": 2.0}},
    ]
    assert median_of(runs) == {
        "tool": "rclone 1.76",
        "MB_per_s": 20.0,
        "seconds": 2.5,
        "latency_s": {"p50": 2.0},
    }


def test_failures_are_the_worst_run_and_counts_stay_integers() -> None:
    runs = [
        {"failures": 0, "objects": 200},
        {"failures": 3, "objects": 200},
        {"failures": 0, "objects": 200},
    ]
    merged = median_of(runs)
    assert merged == {"failures": 3, "objects": 200}
    assert isinstance(merged["objects"], int)


def test_median_of_two_runs_is_their_mean() -> None:
    assert median_of([{"MB_per_s": 1.0}, {"MB_per_s": 2.0}]) == {"MB_per_s": 1.5}


def test_a_key_some_runs_lack_is_the_median_of_the_rest() -> None:
    assert median_of([{"tiered": 1.0}, {}, {"tiered": 3.0}]) == {"tiered": 2.0}


def test_no_runs_is_an_error() -> None:
    with pytest.raises(ValueError):
        median_of([])


def test_ratio_is_against_the_faster_peer() -> None:
    old, new = {"version": "1.60", "MB_per_s": 20.0}, {"version": "1.76", "MB_per_s": 25.0}
    best = faster([old, new])
    assert best["version"] == "1.76"
    assert ratio({"MB_per_s": 10.0}, best) == 0.4
    assert faster([new, old]) is new
    assert ratio(old, best) == 0.8 and ratio(best, best) == 1.0


def test_ratio_to_a_peer_that_moved_nothing_is_zero() -> None:
    assert ratio({"MB_per_s": 5.0}, {"MB_per_s": 0.0}) == 0.0


def test_rounds_for_every_workload_or_some() -> None:
    defaults = {"a": 3, "b": 3, "c": 3, "d": 1}
    assert parse_rounds("1", defaults) == {"a": 1, "b": 1, "c": 1, "d": 1}
    assert parse_rounds("a=1,c=2", defaults) == {"a": 1, "b": 3, "c": 2, "d": 1}
    for bad in ("e=1", "a=0", "a", "a=x"):
        with pytest.raises(ValueError):
            parse_rounds(bad, defaults)
