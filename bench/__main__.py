"""``make bench``: every workload through MovingData in both verification modes and through
rclone 1.60 and 1.76, against the stores' and crypto limits, then the latency benchmark, in one
run on the local stack.

    .venv/bin/python -m bench [--workloads a,b,c,d] [--rounds N|a=1,d=1] [--replicas 1,2]
                              [--keep-gcs] [--no-latency]

Each workload runs ROUNDS[workload] rounds (b: three; a, c and d one, each minutes per tool);
each round runs every tool once, every other round in reverse order, and each figure is the
median of the rounds. One rclone run gives both modes (copy; copy then cryptcheck).
MovingData is compared with the faster rclone in the same mode ("vs rclone", the version in
brackets). Prints one table and writes bench/results/bench.json. Workload (d), a single
object, also checks the memory bound: no worker may grow by more than MEMORY_BOUND_MIB.

fake-gcs-server keeps every upload in memory until restarted, so it is restarted before each
round; ``--keep-gcs`` leaves it alone (when others use the stack at the same time).
"""

import argparse
import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from bench import latency, limits, pipeline, rclone
from bench.compare import faster, median_of, parse_rounds, ratio, run_orders
from bench.report import print_rows, write_json
from bench.workloads import WORKLOADS
from workers.settings import Settings, load_settings
from workers.stack.control import start_service, stop_service

MEMORY_BOUND_MIB = 256  # the most one worker may grow by, whatever the object size
MODES: tuple[pipeline.VerifyMode, ...] = ("store-digest", "read-back")
ROUNDS = {"a": 1, "b": 3, "c": 1, "d": 1}  # a, c and d trimmed: make bench in about 20 minutes


@dataclass(frozen=True)
class Tool:
    """One entry of a round: a MovingData configuration, an rclone version, or the limits."""

    name: str
    job: Callable[[Settings, str], Awaitable[Any]]


def tools(replicas: list[int]) -> list[Tool]:
    def movingdata(n: int, mode: pipeline.VerifyMode) -> Tool:
        async def job(base: Settings, workload: str) -> list[dict[str, Any]]:
            return [await pipeline.run(base, workload, n, mode=mode)]

        return Tool(f"movingdata x{n} {mode}", job)

    def peer(version: str) -> Tool:
        async def job(base: Settings, workload: str) -> list[dict[str, Any]]:
            return await rclone.run(base, workload, version)

        return Tool(f"rclone {version}", job)

    return [
        Tool("limits", limits.run),
        *(movingdata(n, mode) for mode in MODES for n in replicas),
        *(peer(v) for v in rclone.VERSIONS),
    ]


def label(result: dict[str, Any]) -> str:
    return result["tool"] + (f" x{result['replicas']}" if "replicas" in result else "")


def peak_mib(result: dict[str, Any]) -> int:
    if "memory" in result:
        return max(m["peak_MiB"] for m in result["memory"].values())
    return int(result["peak_rss_MiB"])


def row(
    result: dict[str, Any], best: dict[str, Any], limit: dict[str, Any], rounds: int
) -> dict[str, Any]:
    latency_s = result["latency_s"]
    return {
        "workload": f"{result['workload']}: {WORKLOADS[result['workload']].label}",
        "tool": label(result),
        "mode": result["mode"],
        "runs": rounds,
        "seconds": result["seconds"],
        "MB/s": result["MB_per_s"],
        "obj/s": result["objects_per_s"],
        "p50 s": latency_s["p50"],
        "p95 s": latency_s["p95"],
        "p99 s": latency_s["p99"],
        "CPU-s": result["cpu_total_s"],
        "peak RSS MiB": peak_mib(result),
        "vs rclone": f"{ratio(result, best):.2f} ({best['version']})",
        "of limit": f"{result['MB_per_s'] / limit['limit_MB_s'][result['mode']]:.0%}",
        "failures": result["failures"],
    }


def summarise(runs: dict[str, list[dict[str, Any]]]) -> list[dict[str, Any]]:
    """Median results, one per tool and mode, from every round's results by tool."""
    merged = []
    for results in runs.values():
        for mode in MODES:
            of_mode = [r for r in results if r["mode"] == mode]
            if of_mode:
                merged.append(median_of(of_mode))
    return merged


def rows_of(
    medians: list[dict[str, Any]], limit: dict[str, Any], rounds: int
) -> list[dict[str, Any]]:
    rows = []
    for mode in MODES:
        peers = [m for m in medians if m["mode"] == mode and "version" in m]
        best = faster(peers)
        rows += [row(m, best, limit, rounds) for m in medians if m["mode"] == mode]
    return rows


async def timed(phases: dict[str, float], name: str, job: Awaitable[Any]) -> Any:
    began = time.monotonic()
    try:
        return await job
    finally:
        phases[name] = round(phases.get(name, 0.0) + time.monotonic() - began, 1)


async def run_workload(
    base: Settings,
    name: str,
    entries: list[Tool],
    rounds: int,
    restart_gcs: bool,
    limit: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """``rounds`` rounds of every tool; the limits too unless ``limit`` is given."""
    if limit is not None:
        entries = [tool for tool in entries if tool.name != "limits"]
    phases: dict[str, float] = {}  # wall seconds of each tool over all rounds, set-up included
    runs: dict[str, list[Any]] = {tool.name: [] for tool in entries}
    for order in run_orders(entries, rounds):
        if restart_gcs:
            await timed(phases, "gcs restart", asyncio.to_thread(restart_gcs_service, base))
        for tool in order:
            found = await timed(phases, tool.name, tool.job(base, name))
            runs[tool.name] += found if isinstance(found, list) else [found]
    limit_runs = runs.pop("limits", [])
    limit = limit or median_of(limit_runs)
    medians = summarise(runs)
    rows = rows_of(medians, limit, rounds)
    print_rows(rows)
    print(
        f"limit MB/s: store-digest {limit['limit_MB_s']['store-digest']}, read-back "
        f"{limit['limit_MB_s']['read-back']} (crypto {limit['crypto_MB_s']}; all stores at once, "
        f"{limit['concurrency']} requests each: put {limit['put_MB_s']}, get {limit['get_MB_s']}; "
        + ", ".join(f"{t} {s['put_MB_s']}/{s['get_MB_s']}" for t, s in limit["stores"].items())
        + ")\nstores' CPU ms per object, put to all three: "
        + ", ".join(f"{p} {ms}" for p, ms in limit["cpu_ms_per_object"]["put"].items())
        + "\nwall seconds: "
        + ", ".join(f"{step} {s}" for step, s in phases.items())
        + "\n",
        flush=True,
    )
    return {
        "limits": limit,
        "limit_runs": limit_runs,
        "runs": runs,
        "medians": medians,
        "rows": rows,
        "phases_s": phases,
    }


def restart_gcs_service(base: Settings) -> None:
    stop_service(base, "gcs")
    start_service(base, "gcs")


async def run(
    base: Settings,
    workloads: list[str],
    rounds: dict[str, int],
    replicas: list[int],
    restart_gcs: bool,
    with_latency: bool,
) -> dict[str, Any]:
    restart_gcs = restart_gcs and base.gcs_url is None  # only the local emulator
    entries = tools(replicas)
    results: dict[str, Any] = {}
    for name in workloads:
        # (c) and (d) sample the same thing: one 256 MiB object per store.
        same = results["c"]["limits"] if name == "d" and "c" in results else None
        results[name] = await run_workload(base, name, entries, rounds[name], restart_gcs, same)
    if with_latency:
        began = time.monotonic()
        results["latency"] = await latency.run(base)
        results["latency"]["wall_s"] = round(time.monotonic() - began, 1)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--workloads", default=",".join(WORKLOADS))
    parser.add_argument(
        "--rounds", default="", help=f"N for every workload, or e.g. a=1,d=1 (default {ROUNDS})"
    )
    parser.add_argument("--replicas", default="1", help="worker processes per stage, e.g. 1,2")
    parser.add_argument("--keep-gcs", action="store_true", help="never restart fake-gcs-server")
    parser.add_argument("--no-latency", action="store_true")
    args = parser.parse_args()
    began = time.monotonic()
    results = asyncio.run(
        run(
            load_settings(),
            args.workloads.split(","),
            parse_rounds(args.rounds, ROUNDS) if args.rounds else ROUNDS,
            [int(n) for n in args.replicas.split(",")],
            not args.keep_gcs,
            not args.no_latency,
        )
    )
    workloads = [w for name, w in results.items() if name != "latency"]
    print_rows([r for w in workloads for r in w["rows"]])
    if "d" in results:
        runs = [r for name, rs in results["d"]["runs"].items() if "movingdata" in name for r in rs]
        rise = max(m["rise_MiB"] for run in runs for m in run["memory"].values())
        verdict = "within" if rise <= MEMORY_BOUND_MIB else "OVER"
        print(f"2 GiB object: largest worker rise {rise} MiB, {verdict} {MEMORY_BOUND_MIB} MiB")
    if "latency" in results:
        latency.print_result(results["latency"])
    print(f"JSON: {write_json('bench', results)}")
    print(f"make bench: {(time.monotonic() - began) / 60:.1f} minutes")


if __name__ == "__main__":
    main()
