"""The ceiling the pipeline is measured against.

    .venv/bin/python -m bench.limits [--workload c]

* crypto: the per-object CPU path alone, in this process on one core: streaming AES-256-GCM
  encryption in 1 MiB chunks plus two SHA-256 passes (plaintext and ciphertext) over the bytes.
* stores: a sample of the workload's files put to all three stores at once, then read back
  from all three at once, through the same clients the workers use, each store
  ``stage_batch`` requests at a time (the pipeline's concurrency: the events one stage agent
  handles at once). Every object must reach every store, so the stores' limit is the sample's
  bytes over the time the slowest store took: in store-digest mode the put alone (the store's
  digest of the upload is the check), in read-back mode the put then the get.
* CPU per object: CPU seconds of the store services and of this client during the put (and the
  get), per object; on small objects the stack is CPU-bound, and this is the part of a core the
  stores alone take for each object written to all three. The services are shared with
  anything else using the local stack at the time, which this figure then includes.
"""

import argparse
import asyncio
import hashlib
import os
import time
import uuid
from collections.abc import AsyncIterator, Awaitable
from pathlib import Path
from typing import Any

from bench.rclone import Rclone
from bench.report import cpu_by_name, cpu_delta, print_rows, service_pids, write_json
from bench.workloads import WORKLOADS, materialise
from workers.core.envelope import Algorithm, Header, StreamEncryptor
from workers.deps import target_url
from workers.settings import Settings, load_settings
from workers.stores import ObjectStore, open_store

CHUNK = 1024 * 1024
SAMPLE_BYTES = 256 * CHUNK  # per store and workload
SAMPLE_FILES = 500  # enough small objects for a steady rate
STORE_SERVICES = {"s3": "seaweedfs", "azure": "azurite", "gcs": "gcs"}  # target: service


def crypto_limit(size: int = 512 * CHUNK) -> float:
    """MB/s of encrypt + two SHA-256 passes, one core."""
    data = os.urandom(64 * CHUNK)
    header = Header(Algorithm.AES256GCM_CHUNKED, "dek:bench:v1", b"", CHUNK, os.urandom(7))
    began = time.perf_counter()
    encryptor = StreamEncryptor(os.urandom(32), header, b"bench")
    plain, cipher = hashlib.sha256(), hashlib.sha256()
    view = memoryview(data)
    for n in range(size // CHUNK):
        chunk = view[(n % 64) * CHUNK : (n % 64 + 1) * CHUNK]
        plain.update(chunk)
        cipher.update(encryptor.update(bytes(chunk)))
    cipher.update(encryptor.finalize())
    return size / (time.perf_counter() - began) / 1e6


def sample(folder: Path) -> list[Path]:
    """The workload's first files, up to SAMPLE_BYTES and SAMPLE_FILES (at least one)."""
    files, total = [], 0
    for path in sorted(folder.iterdir()):
        if files and (total + path.stat().st_size > SAMPLE_BYTES or len(files) == SAMPLE_FILES):
            break
        files.append(path)
        total += path.stat().st_size
    return files


async def chunks_of(path: Path) -> AsyncIterator[bytes]:
    with path.open("rb") as fh:
        while chunk := await asyncio.to_thread(fh.read, CHUNK):
            yield chunk


async def bounded(jobs: list[Awaitable[Any]], concurrency: int) -> float:
    """Run ``jobs`` ``concurrency`` at a time; the seconds until the last one ended."""
    gate = asyncio.Semaphore(concurrency)
    began = time.perf_counter()

    async def one(job: Awaitable[Any]) -> None:
        async with gate:
            await job

    await asyncio.gather(*(one(j) for j in jobs))
    return time.perf_counter() - began


async def drain(store: ObjectStore, key: str) -> None:
    async for _ in store.read(key):
        pass


async def all_stores(
    settings: Settings,
    stores: dict[str, ObjectStore],
    jobs: dict[str, list[Awaitable[Any]]],
    cpu_pids: dict[str, list[int]],
) -> tuple[float, dict[str, float], dict[str, float]]:
    """Every store's jobs at once: wall seconds, each store's seconds, CPU seconds by process."""
    before = cpu_by_name(cpu_pids)
    began = time.perf_counter()
    each = await asyncio.gather(*(bounded(jobs[t], settings.stage_batch) for t in stores))
    wall = time.perf_counter() - began
    return wall, dict(zip(stores, each, strict=True)), cpu_delta(before, cpu_by_name(cpu_pids))


def per_object_ms(cpu: dict[str, float], objects: int) -> dict[str, float]:
    return {
        name: round(1000 * s / objects, 2)
        for name, s in {"total": sum(cpu.values()), **cpu}.items()
    }


async def stores_limit(settings: Settings, files: list[Path]) -> dict[str, Any]:
    total = sum(f.stat().st_size for f in files)
    stores = {t: open_store(target_url(t, settings), settings) for t in settings.targets}
    services = service_pids(settings)
    cpu_pids = {"client": [os.getpid()]}
    cpu_pids |= {s: [services[s]] for s in STORE_SERVICES.values() if s in services}
    try:
        for store in stores.values():
            await store.ensure_container()
        put_s, put_each, put_cpu = await all_stores(
            settings,
            stores,
            {t: [s.write(f.name, chunks_of(f)) for f in files] for t, s in stores.items()},
            cpu_pids,
        )
        get_s, get_each, get_cpu = await all_stores(
            settings,
            stores,
            {t: [drain(s, f.name) for f in files] for t, s in stores.items()},
            cpu_pids,
        )
    finally:
        for store in stores.values():
            await store.close()

    def mb_s(seconds: float) -> float:
        return round(total / seconds / 1e6, 1)

    return {
        "concurrency": settings.stage_batch,
        "stores": {
            t: {"put_MB_s": mb_s(put_each[t]), "get_MB_s": mb_s(get_each[t])} for t in stores
        },
        "put_MB_s": mb_s(put_s),
        "get_MB_s": mb_s(get_s),
        "store-digest_MB_s": mb_s(put_s),
        "read-back_MB_s": mb_s(put_s + get_s),
        "cpu_ms_per_object": {
            "put": per_object_ms(put_cpu, len(files)),
            "get": per_object_ms(get_cpu, len(files)),
        },
    }


async def run(base: Settings, workload: str) -> dict[str, Any]:
    folder = materialise(WORKLOADS[workload], base.home / "bench" / "workloads")
    files = sample(folder)
    bucket = f"lim{workload}{uuid.uuid4().hex[:6]}"
    settings = base.model_copy(update={"bucket": bucket})
    logs = base.home / "bench" / "logs" / bucket
    logs.mkdir(parents=True)
    try:
        stores = await stores_limit(settings, files)
    finally:
        Rclone(settings, bucket).purge(logs)
    crypto_mb_s = round(crypto_limit(), 1)
    return {
        "workload": workload,
        "sample_objects": len(files),
        "crypto_MB_s": crypto_mb_s,
        **stores,
        "limit_MB_s": {
            mode: min(crypto_mb_s, stores[f"{mode}_MB_s"]) for mode in ("store-digest", "read-back")
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--workload", choices=sorted(WORKLOADS), default="c")
    args = parser.parse_args()
    result = asyncio.run(run(load_settings(), args.workload))
    print_rows([{"store": t, **s} for t, s in result["stores"].items()])
    print(
        f"all stores at once ({result['concurrency']} requests each): put {result['put_MB_s']}, "
        f"get {result['get_MB_s']} MB/s; crypto {result['crypto_MB_s']} MB/s; "
        f"limit {result['limit_MB_s']}"
    )
    print(f"CPU ms per object: {result['cpu_ms_per_object']}")
    write_json(f"limits-{args.workload}", result)


if __name__ == "__main__":
    main()
