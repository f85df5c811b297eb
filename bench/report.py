"""What the benchmarks share: isolated run settings, process sampling (memory, CPU),
percentiles and throughput, a plain-text table, JSON output to ``bench/results/<name>.json``
(not committed)."""

import asyncio
import json
import statistics
import subprocess
from collections import Counter
from collections.abc import Iterable, Sequence
from contextlib import suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil

from topics import delete_topics
from workers.broker import kafka_options
from workers.client.state import State
from workers.deps import target_url
from workers.settings import Settings
from workers.stack.control import status
from workers.stores import open_store

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


def throughput(objects: int, total: int, seconds: float) -> dict[str, float]:
    """The figures every benchmark reports for a run that moved ``total`` bytes."""
    return {
        "objects": objects,
        "bytes": total,
        "seconds": round(seconds, 2),
        "MB_per_s": round(total / seconds / 1e6, 2),
        "objects_per_s": round(objects / seconds, 1),
    }


def isolated(base: Settings, name: str, folder: Path, **extra: object) -> Settings:
    """Settings for one run: its own topics, buckets and database, sources from ``folder``."""
    return base.model_copy(
        update={
            "topic_prefix": name,
            "bucket": name,
            "mongo_database": name,
            "source_roots": (folder,),
            **extra,
        }
    )


async def remove_run(settings: Settings, state: State) -> None:
    """Everything an isolated run made: its database, its topics, its keys in every store."""
    await state.client.drop_database(settings.mongo_database)
    await state.close()
    await delete_topics(kafka_options(settings), settings.topic_prefix)
    for target in settings.targets:
        store = open_store(target_url(target, settings), settings)
        try:
            for key in [i.key async for i in store.list()]:
                await store.delete(key)
        finally:
            await store.close()


def write_json(name: str, result: object) -> Path:
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / f"{name}.json"
    out.write_text(json.dumps(result, indent=2, default=str))
    return out


@dataclass
class Processes:
    """Processes by name (a stage, a tool) and their memory, sampled while they run."""

    procs: dict[str, list[subprocess.Popen[bytes]]]
    idle: dict[int, int] = field(default_factory=dict)
    peak: Counter[int] = field(default_factory=Counter)

    def pids(self) -> list[int]:
        return [p.pid for ps in self.procs.values() for p in ps]

    def sample(self) -> None:
        for pid in self.pids():
            try:
                rss = psutil.Process(pid).memory_info().rss
            except psutil.NoSuchProcess:
                continue
            self.idle.setdefault(pid, rss)
            self.peak[pid] = max(self.peak[pid], rss)

    async def sample_until(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            self.sample()
            await asyncio.sleep(0.1)

    def memory(self) -> dict[str, dict[str, int]]:
        """Per name: the largest idle and peak RSS and the largest rise of one process, MiB
        (0 for a process that ended before it was sampled)."""
        out = {}
        for name, procs in self.procs.items():
            pids = [p.pid for p in procs]
            out[name] = {
                "idle_MiB": max(self.idle.get(p, 0) for p in pids) >> 20,
                "peak_MiB": max(self.peak[p] for p in pids) >> 20,
                "rise_MiB": max(self.peak[p] - self.idle.get(p, 0) for p in pids) >> 20,
            }
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
