"""Pipeline throughput and worker memory: N files of SIZE through the whole chain.

    .venv/bin/python -m bench.pipeline --size 1GiB --count 1
    .venv/bin/python -m bench.pipeline --size 1MiB --count 200

Needs the local stack (`make stack`). Prints MB/s, objects/s and the worker's peak RSS
(sampled every 100 ms), and writes bench/results/pipeline-<size>x<count>.json.
"""

import argparse
import asyncio
import json
import os
import re
import time
import uuid
from pathlib import Path

import psutil

from workers.client import State, produce, requests_for_path, wait_verified
from workers.demo import start_worker, stop_worker
from workers.deps import prepare
from workers.settings import load_settings

UNITS = {"B": 1, "KIB": 1024, "MIB": 1024**2, "GIB": 1024**3}


def parse_size(text: str) -> int:
    match = re.fullmatch(r"(\d+)\s*([KMG]iB|B)", text, re.IGNORECASE)
    if not match:
        raise argparse.ArgumentTypeError(f"size like 64MiB, not {text!r}")
    return int(match.group(1)) * UNITS[match.group(2).upper()]


def write_file(path: Path, size: int) -> None:
    block = os.urandom(4 * 1024 * 1024)
    with path.open("wb") as fh:
        for _ in range(size // len(block)):
            fh.write(block)
        fh.write(block[: size % len(block)])


async def sample_rss(pid: int, stop: asyncio.Event) -> int:
    peak = 0
    proc = psutil.Process(pid)
    while not stop.is_set():
        try:
            peak = max(peak, proc.memory_info().rss)
        except psutil.NoSuchProcess:
            break
        await asyncio.sleep(0.1)
    return peak


async def main(size: int, count: int) -> dict[str, float]:
    run = f"bench{uuid.uuid4().hex[:8]}"
    base = load_settings()
    folder = base.home / "bench" / run
    folder.mkdir(parents=True)
    for n in range(count):
        write_file(folder / f"obj-{n:04d}.bin", size)
    settings = base.model_copy(
        update={
            "topic_prefix": run,
            "bucket": run,
            "mongo_database": run,
            "source_roots": (folder,),
        }
    )
    await prepare(settings)
    worker = start_worker(settings, folder.parent / f"{run}-worker.log")
    stop = asyncio.Event()
    sampler = asyncio.create_task(sample_rss(worker.pid, stop))
    state = State(settings)
    try:
        await asyncio.sleep(1.0)
        idle_rss = psutil.Process(worker.pid).memory_info().rss
        requests = requests_for_path(folder, settings.targets, "bench", {})
        began = time.monotonic()
        await produce(settings, requests)
        failures = await wait_verified(state, [r.object_id for r in requests], timeout_s=3600)
        seconds = time.monotonic() - began
    finally:
        stop.set()
        peak = await sampler
        stop_worker(worker)
        await state.client.drop_database(run)
        await state.close()
        for path in folder.iterdir():
            path.unlink()
        folder.rmdir()
    total = size * count
    return {
        "objects": count,
        "bytes": total,
        "seconds": round(seconds, 2),
        "MB_per_s": round(total / seconds / 1e6, 1),
        "objects_per_s": round(count / seconds, 2),
        "worker_idle_rss_MiB": round(idle_rss / 2**20),
        "worker_peak_rss_MiB": round(peak / 2**20),
        "failures": len(failures),
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--size", type=parse_size, default=parse_size("1GiB"))
    parser.add_argument("--count", type=int, default=1)
    args = parser.parse_args()
    result = asyncio.run(main(args.size, args.count))
    for key, value in result.items():
        print(f"{key:22} {value}")
    out = Path(__file__).parent / "results" / f"pipeline-{args.size}x{args.count}.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
