"""``make bench``: every workload through MovingData (1 and 2 worker processes per stage) and
through rclone, against the crypto and store limits, in one run on the local stack.

    .venv/bin/python -m bench [--workloads a,b,c,d]

Prints one table and writes bench/results/bench.json. Workload (d), a single object, also
checks the memory bound: no worker may grow by more than MEMORY_BOUND_MIB.
"""

import argparse
import asyncio
import time
from collections.abc import Awaitable
from typing import Any

from bench import limits, pipeline, rclone
from bench.report import print_rows, write_json
from bench.workloads import WORKLOADS
from workers.settings import Settings, load_settings
from workers.stack.control import start_service, stop_service

MEMORY_BOUND_MIB = 256  # the most one worker may grow by, whatever the object size
REPLICAS = (1, 2)  # worker processes per stage


def row(result: dict[str, Any], rclone_mb_s: float, limit_mb_s: float) -> dict[str, Any]:
    latency = result["latency_s"]
    tool = result["tool"] + (f" x{result['replicas']}" if "replicas" in result else "")
    peak = (
        max(m["peak_MiB"] for m in result["memory"].values())
        if "memory" in result
        else max(result["peak_rss_MiB"].values())
    )
    return {
        "workload": f"{result['workload']}: {WORKLOADS[result['workload']].label}",
        "tool": tool,
        "seconds": result["seconds"],
        "MB/s": result["MB_per_s"],
        "obj/s": result["objects_per_s"],
        "p50 s": latency["p50"],
        "p95 s": latency["p95"],
        "p99 s": latency["p99"],
        "peak RSS MiB": peak,
        "vs rclone": f"{result['MB_per_s'] / rclone_mb_s:.2f}",
        "of limit": f"{result['MB_per_s'] / limit_mb_s:.0%}",
        "failures": result["failures"],
    }


async def timed(phases: dict[str, float], name: str, job: Awaitable[Any]) -> Any:
    began = time.monotonic()
    try:
        return await job
    finally:
        phases[name] = round(time.monotonic() - began, 1)


async def run(base: Settings, workloads: list[str]) -> dict[str, Any]:
    results: dict[str, Any] = {}
    for name in workloads:
        if base.gcs_url is None:  # fake-gcs-server keeps every upload in memory until restarted
            stop_service(base, "gcs")
            start_service(base, "gcs")
        phases: dict[str, float] = {}  # wall seconds of each step, set-up and clean-up included
        # (c) and (d) sample the same thing: one 256 MiB object per store.
        same = name == "d" and "c" in results
        limit = (
            results["c"]["limits"]
            if same
            else await timed(phases, "limits", limits.run(base, name))
        )
        runs = [
            await timed(phases, f"movingdata x{n}", pipeline.run(base, name, n)) for n in REPLICAS
        ]
        baseline = await timed(phases, "rclone", rclone.run(base, name))
        results[name] = {
            "limits": limit,
            "movingdata": runs,
            "rclone": baseline,
            "phases_s": phases,
        }
        rows = [row(r, baseline["MB_per_s"], limit["limit_MB_s"]) for r in (*runs, baseline)]
        print_rows(rows)
        print(
            f"limit {limit['limit_MB_s']} MB/s (crypto {limit['crypto_MB_s']} MB/s; stores "
            + ", ".join(f"{t} {s['replica_MB_s']}" for t, s in limit["stores"].items())
            + ")\nwall seconds: "
            + ", ".join(f"{step} {s}" for step, s in phases.items())
            + "\n",
            flush=True,
        )
        results[name]["rows"] = rows
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--workloads", default=",".join(WORKLOADS))
    args = parser.parse_args()
    began = time.monotonic()
    results = asyncio.run(run(load_settings(), args.workloads.split(",")))
    print_rows([r for w in results.values() for r in w["rows"]])
    if "d" in results:
        runs = results["d"]["movingdata"]
        rise = max(m["rise_MiB"] for run in runs for m in run["memory"].values())
        verdict = "within" if rise <= MEMORY_BOUND_MIB else "OVER"
        print(f"2 GiB object: largest worker rise {rise} MiB, {verdict} {MEMORY_BOUND_MIB} MiB")
    print(f"JSON: {write_json('bench', results)}")
    print(f"make bench: {(time.monotonic() - began) / 60:.1f} minutes")


if __name__ == "__main__":
    main()
