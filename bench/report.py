"""Figures and tables shared by the benchmarks: percentiles, a plain-text table, JSON output
to ``bench/results/<name>.json`` (not committed)."""

import json
import statistics
from collections.abc import Iterable, Sequence
from contextlib import suppress
from pathlib import Path
from typing import Any

import psutil

from workers.settings import Settings
from workers.stack.control import status

RESULTS = Path(__file__).parent / "results"


def percentiles(values: Sequence[float]) -> dict[str, float]:
    """p50/p95/p99 (inclusive method; a single value is every percentile)."""
    if not values:
        return {"p50": float("nan"), "p95": float("nan"), "p99": float("nan")}
    if len(values) == 1:
        return {p: round(values[0], 3) for p in ("p50", "p95", "p99")}
    cuts = statistics.quantiles(values, n=100, method="inclusive")
    return {"p50": round(cuts[49], 3), "p95": round(cuts[94], 3), "p99": round(cuts[98], 3)}


def print_rows(rows: Sequence[dict[str, Any]]) -> None:
    """A left-aligned table with the union of the rows' keys as columns."""
    columns = list(dict.fromkeys(k for row in rows for k in row))
    cells = [[str(row.get(c, "")) for c in columns] for row in rows]
    widths = [max(len(c), *(len(r[i]) for r in cells)) for i, c in enumerate(columns)]
    print("  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True)))
    for r in cells:
        print("  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)))


def write_json(name: str, result: object) -> Path:
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / f"{name}.json"
    out.write_text(json.dumps(result, indent=2, default=str))
    return out


def cpu_s(pid: int) -> float:
    """CPU seconds (user + system) of a process and its live descendants; 0 once it is gone."""
    total = 0.0
    with suppress(psutil.NoSuchProcess):
        root = psutil.Process(pid)
        for proc in (root, *root.children(recursive=True)):
            with suppress(psutil.NoSuchProcess):
                times = proc.cpu_times()
                total += times.user + times.system
    return total


def service_pids(settings: Settings) -> dict[str, int]:
    return {s.name: s.pid for s in status(settings) if s.pid}


def cpu_by_name(pids: dict[str, Iterable[int]]) -> dict[str, float]:
    return {name: sum(cpu_s(p) for p in ps) for name, ps in pids.items()}


def cpu_delta(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
    return {name: round(after[name] - before.get(name, 0.0), 1) for name in after}
