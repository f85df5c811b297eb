"""The ceiling the pipeline is measured against.

    .venv/bin/python -m bench.limits [--workload c]

* crypto: the per-object CPU path alone, in this process on one core: streaming AES-256-GCM
  encryption in 1 MiB chunks plus two SHA-256 passes (plaintext and ciphertext) over the bytes.
* stores: each store's raw put, then get, of a sample of the workload's files through the same
  client the workers use, 4 at a time (the topics' partition count). Every replica is written
  once and read back once, so a store's limit for the pipeline is 1 / (1/put + 1/get); the
  stores work in parallel, so the pipeline's is the slowest store's.
"""

import argparse
import asyncio
import hashlib
import os
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from bench.rclone import Rclone
from bench.report import print_rows, write_json
from bench.workloads import WORKLOADS, materialise
from workers.core.envelope import Algorithm, Header, StreamEncryptor
from workers.deps import target_url
from workers.settings import Settings, load_settings
from workers.stores import ObjectStore, open_store

CHUNK = 1024 * 1024
SAMPLE_BYTES = 256 * CHUNK  # per store and workload
SAMPLE_FILES = 500  # enough small objects for a steady rate
CONCURRENCY = 4


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


async def bounded(jobs: list[Any]) -> None:
    gate = asyncio.Semaphore(CONCURRENCY)

    async def one(job: Any) -> None:
        async with gate:
            await job

    await asyncio.gather(*(one(j) for j in jobs))


async def drain(store: ObjectStore, key: str) -> None:
    async for _ in store.read(key):
        pass


async def store_limit(store: ObjectStore, files: list[Path]) -> dict[str, float]:
    total = sum(f.stat().st_size for f in files)
    await store.ensure_container()
    began = time.perf_counter()
    await bounded([store.write(f.name, chunks_of(f)) for f in files])
    put = total / (time.perf_counter() - began) / 1e6
    began = time.perf_counter()
    await bounded([drain(store, f.name) for f in files])
    get = total / (time.perf_counter() - began) / 1e6
    replica = 1 / (1 / put + 1 / get)
    return {"put_MB_s": round(put, 1), "get_MB_s": round(get, 1), "replica_MB_s": round(replica, 1)}


async def run(base: Settings, workload: str) -> dict[str, Any]:
    folder = materialise(WORKLOADS[workload], base.home / "bench" / "workloads")
    files = sample(folder)
    bucket = f"lim{workload}{uuid.uuid4().hex[:6]}"
    settings = base.model_copy(update={"bucket": bucket})
    logs = base.home / "bench" / "logs" / bucket
    logs.mkdir(parents=True)
    stores: dict[str, dict[str, float]] = {}
    try:
        for target in settings.targets:
            store = open_store(target_url(target, settings), settings)
            try:
                stores[target] = await store_limit(store, files)
            finally:
                await store.close()
    finally:
        Rclone(settings, bucket).purge(logs)
    store_mb_s = min(s["replica_MB_s"] for s in stores.values())
    crypto_mb_s = round(crypto_limit(), 1)
    return {
        "workload": workload,
        "sample_objects": len(files),
        "crypto_MB_s": crypto_mb_s,
        "stores": stores,
        "limit_MB_s": min(crypto_mb_s, store_mb_s),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--workload", choices=sorted(WORKLOADS), default="c")
    args = parser.parse_args()
    result = asyncio.run(run(load_settings(), args.workload))
    print_rows([{"store": t, **s} for t, s in result["stores"].items()])
    print(f"crypto {result['crypto_MB_s']} MB/s; limit {result['limit_MB_s']} MB/s")
    write_json(f"limits-{args.workload}", result)


if __name__ == "__main__":
    main()
