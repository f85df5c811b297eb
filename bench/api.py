"""The HTTP API's throughput and memory on one large object: upload, then download.

    .venv/bin/python -m bench.api [--mib 256]

A ``movingdata api`` process and one ``--agents all`` worker on an isolated prefix; the
upload is streamed from a generated file and timed until the API answered (the object is in
the staging area and its request sent), then until every replica is verified; the download is
streamed to nowhere, the plaintext digest checked. The API's RSS is sampled all along.
"""

import argparse
import asyncio
import hashlib
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import psutil

from bench.report import isolated, remove_run, write_json
from bench.workloads import MiB, Workload, materialise
from workers.client.state import State
from workers.demo import start_worker, stop_worker, worker_env
from workers.deps import prepare
from workers.settings import Settings, load_settings


async def sample_rss(pid: int, stop: asyncio.Event, peak: list[int]) -> None:
    proc = psutil.Process(pid)
    while not stop.is_set():
        peak[0] = max(peak[0], sum(p.memory_info().rss for p in [proc, *proc.children(True)]))
        await asyncio.sleep(0.1)


async def run(base: Settings, mib: int) -> dict[str, Any]:
    name = f"api{uuid.uuid4().hex[:8]}"
    folder = materialise(Workload(f"api{mib}", 1, mib * MiB, mib * MiB), base.home / "bench")
    (path,) = sorted(folder.iterdir())
    settings = isolated(base, name, folder, kek_name=f"movingdata-{name}", source_roots=())
    await prepare(settings)
    worker = start_worker(settings, base.home / "bench" / f"{name}-worker.log")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {**worker_env(settings), "MOVINGDATA_API_MAX_UPLOAD_BYTES": str(4 * mib * MiB)}
    api = subprocess.Popen(
        [str(Path(sys.executable).parent / "movingdata"), "api", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    state = State(settings)
    from workers.api import tokens

    token = await tokens.create(state.db, "bench", "writer", "default")
    headers = {"Authorization": f"Bearer {token}"}
    stop, peak = asyncio.Event(), [0]
    try:
        async with httpx.AsyncClient(base_url=url, timeout=1800) as http:
            while True:
                try:
                    if (await http.get("/healthz")).status_code == 200:
                        break
                except httpx.HTTPError:
                    await asyncio.sleep(0.5)
            idle = psutil.Process(api.pid).memory_info().rss
            sampler = asyncio.create_task(sample_rss(api.pid, stop, peak))

            async def chunks():
                with path.open("rb") as handle:
                    while block := handle.read(MiB):
                        yield block

            began = time.monotonic()
            put = await http.post(
                "/v1/objects", params={"name": "big.bin"}, content=chunks(), headers=headers
            )
            upload_s = time.monotonic() - began  # staged, and its request sent and decided
            put.raise_for_status()
            object_id = put.json()["object_id"]
            while True:
                shown = (await http.get(f"/v1/objects/{object_id}", headers=headers)).json()
                if shown["versions"][-1]["state"] == "verified":
                    break
                await asyncio.sleep(0.5)
            verified_s = time.monotonic() - began
            began = time.monotonic()
            digest, size = hashlib.sha256(), 0
            async with http.stream("GET", f"/v1/objects/{object_id}/content", headers=headers) as r:
                r.raise_for_status()
                async for block in r.aiter_bytes():
                    digest.update(block)
                    size += len(block)
            read_s = time.monotonic() - began
            stop.set()
            await sampler
        assert size == mib * MiB and digest.hexdigest() == put.json()["plaintext_sha256"]
    finally:
        stop.set()
        api.terminate()
        api.wait(timeout=30)
        stop_worker(worker)
        await remove_run(settings, state)
    return {
        "mib": mib,
        "upload_s": round(upload_s, 1),
        "upload_MB_s": round(mib * MiB / 1e6 / upload_s, 1),
        "upload_to_verified_s": round(verified_s, 1),
        "upload_to_verified_MB_s": round(mib * MiB / 1e6 / verified_s, 1),
        "download_s": round(read_s, 1),
        "download_MB_s": round(mib * MiB / 1e6 / read_s, 1),
        "api_idle_rss_MiB": round(idle / MiB),
        "api_peak_rss_MiB": round(peak[0] / MiB),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--mib", type=int, default=256)
    result = asyncio.run(run(load_settings(operator=True), parser.parse_args().mib))
    print(result)
    write_json("api", result)


if __name__ == "__main__":
    main()
