"""One store slowed to a trickle: does worker memory stay bounded, do the others keep going?

    .venv/bin/python -m bench.backpressure [--objects 16] [--size-mib 8] [--rate-mbps 2]

A throttling proxy sits in front of fake-gcs-server (uploads pass at --rate-mbps). The same
workload runs twice, without and with the throttle; for each run it prints the time until
every object is verified in S3 and Azure, the time until GCS too, and the worker's peak RSS.
Needs the local stack (`make stack`).
"""

import argparse
import asyncio
import os
import time
import uuid

from bench.relay import relay
from bench.report import Processes, isolated, write_json
from workers.client.identity import cli_actor
from workers.client.kafka import produce
from workers.client.puts import requests_for_path
from workers.client.state import State
from workers.demo import start_worker, stop_worker
from workers.deps import prepare
from workers.settings import Settings, load_settings


async def run(base: Settings, objects: int, size: int, gcs_url: str | None) -> dict[str, float]:
    name = f"bp{uuid.uuid4().hex[:8]}"
    folder = base.home / "bench" / name
    folder.mkdir(parents=True)
    for n in range(objects):
        (folder / f"o{n:03d}.bin").write_bytes(os.urandom(size))
    settings = isolated(base, name, folder, kek_name=f"movingdata-{name}", gcs_url=gcs_url)
    await prepare(settings)
    worker = start_worker(settings, folder.parent / f"{name}-worker.log")
    workers = Processes({"all": [worker]})
    stop = asyncio.Event()
    sampler = asyncio.create_task(workers.sample_until(stop))
    state = State(settings)
    requests = requests_for_path(folder, settings.targets, "bench", {}, actor=cli_actor())
    began = time.monotonic()
    await produce(settings, requests)
    fast_done = all_done = None
    try:
        while all_done is None and time.monotonic() - began < 1800:
            docs = [await state.object(r.object_id, 1) for r in requests]
            reps = [(d or {}).get("replicas") or {} for d in docs]
            fast = all(r.get(t, {}).get("verified_at") for r in reps for t in ("s3", "azure"))
            if fast and fast_done is None:
                fast_done = time.monotonic() - began
            if fast and all(r.get("gcs", {}).get("verified_at") for r in reps):
                all_done = time.monotonic() - began
            await asyncio.sleep(0.5)
    finally:
        stop.set()
        await sampler
        stop_worker(worker)
        await state.client.drop_database(name)
        await state.close()
        for path in folder.iterdir():
            path.unlink()
        folder.rmdir()
    return {
        "s3_and_azure_verified_s": round(fast_done or float("nan"), 1),
        "gcs_verified_s": round(all_done or float("nan"), 1),
        "worker_peak_rss_MiB": workers.memory()["all"]["peak_MiB"],
    }


async def main(objects: int, size_mib: int, rate_mbps: float) -> dict[str, dict[str, float]]:
    base = load_settings()
    size = size_mib * 2**20
    results = {"unthrottled": await run(base, objects, size, None)}
    async with relay(base.gcs_endpoint, upload_rate_bps=rate_mbps * 1e6) as proxy:
        results[f"gcs at {rate_mbps} MB/s"] = await run(base, objects, size, proxy)
    return results


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--objects", type=int, default=16)
    parser.add_argument("--size-mib", type=int, default=8)
    parser.add_argument("--rate-mbps", type=float, default=2.0)
    args = parser.parse_args()
    results = asyncio.run(main(args.objects, args.size_mib, args.rate_mbps))
    for run_name, figures in results.items():
        print(f"{run_name:18} " + "  ".join(f"{k}={v}" for k, v in figures.items()))
    write_json("backpressure", results)
