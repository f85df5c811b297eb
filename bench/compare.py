"""How repeated runs become one figure, and a figure a ratio (pure: no I/O, no clock).

* Each round runs the same tools; every other round in reverse order, so neither the first
  nor the last place (a cold cache, a warm store, a store full of the earlier runs' objects)
  always falls to the same tool.
* Each figure is the median of its runs, figure by figure (the median run of one figure need
  not be the median run of another); a failure in any run is reported.
* MovingData is compared with the faster rclone on that workload and verification mode.
"""

import statistics
from collections.abc import Sequence
from typing import Any, TypeVar

T = TypeVar("T")

# Figures where the worst run, not the median one, is what must be shown.
WORST = {"failures"}


def run_orders(tools: Sequence[T], rounds: int) -> list[list[T]]:
    """The tools' order in each round: as given, reversed, as given, ..."""
    return [list(tools) if n % 2 == 0 else list(reversed(tools)) for n in range(rounds)]


def median_of(runs: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """One result from several runs of the same tool: numbers (also in nested dicts) by their
    median, ``failures`` by the largest, anything else (names, labels) from the first run.
    A key missing from some runs is the median of the runs that have it."""
    if not runs:
        raise ValueError("no runs")
    merged: dict[str, Any] = {}
    for key in dict.fromkeys(k for run in runs for k in run):
        values = [run[key] for run in runs if key in run]
        if all(isinstance(v, bool) for v in values) or not values:
            merged[key] = values[0]
        elif all(isinstance(v, int | float) for v in values):
            merged[key] = max(values) if key in WORST else _median(values)
        elif all(isinstance(v, dict) for v in values):
            merged[key] = median_of(values)
        else:
            merged[key] = values[0]
    return merged


def _median(values: Sequence[float]) -> float:
    middle = statistics.median(values)
    if all(isinstance(v, int) for v in values) and middle == int(middle):
        return int(middle)
    return round(middle, 3)


def faster(peers: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """The peer with the highest MB/s (the first of equals)."""
    if not peers:
        raise ValueError("no peers")
    return max(peers, key=lambda p: p["MB_per_s"])


def ratio(result: dict[str, Any], peer: dict[str, Any]) -> float:
    """``result``'s MB/s over ``peer``'s, two decimals (0 if the peer moved nothing)."""
    mine, theirs = float(result["MB_per_s"]), float(peer["MB_per_s"])
    return round(mine / theirs, 2) if theirs else 0.0


def parse_rounds(text: str, defaults: dict[str, int]) -> dict[str, int]:
    """``--rounds``: ``N`` for every workload, or ``a=3,d=1`` over the defaults."""
    if text.isdigit():
        return dict.fromkeys(defaults, int(text))
    rounds = dict(defaults)
    for part in text.split(","):
        name, _, count = part.partition("=")
        if name not in defaults or not count.isdigit() or int(count) < 1:
            raise ValueError(f"--rounds: {part!r} is not WORKLOAD=N for one of {sorted(defaults)}")
        rounds[name] = int(count)
    return rounds
