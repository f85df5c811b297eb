"""``movingdata demo``: the pipeline on generated sample data, end to end, with a summary.

Starts one worker process for every stage, puts a folder of deterministic sample files to
S3, Azure and GCS, waits until every replica is verified, restores one object from each store
and checks it bit for bit.
"""

import json
import os
import random
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from workers.client import State, produce, requests_for_path, wait_verified
from workers.deps import build_deps, prepare
from workers.restore import restore_to_file
from workers.settings import Settings

KiB, MiB = 1024, 1024 * 1024
SAMPLE_SIZES = [0, 1, 100, 4 * KiB, 64 * KiB, 300 * KiB, MiB, 3 * MiB, 8 * MiB + 5, 16 * MiB]


@dataclass
class DemoResult:
    objects: int
    bytes: int
    seconds: float
    verified: dict[str, int] = field(default_factory=dict)
    restored: dict[str, bool] = field(default_factory=dict)
    failures: dict[str, str] = field(default_factory=dict)


def write_samples(folder: Path) -> None:
    """Deterministic sample files (same bytes every run)."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = random.Random(2026)
    for n, size in enumerate(SAMPLE_SIZES):
        (folder / f"sample-{n:02d}.bin").write_bytes(rng.randbytes(size))


WORKER_SETTINGS = (
    "home",
    "topic_prefix",
    "bucket",
    "mongo_database",
    "source_roots",
    "source_buckets",
    "kek_name",
    "broker_session_timeout_s",
    "max_attempts",
    "retry_cap_s",
    "gcs_url",
)


def worker_env(settings: Settings) -> dict[str, str]:
    """The environment that configures a worker process like ``settings``."""
    values = settings.model_dump(mode="json", include=set(WORKER_SETTINGS))
    return {
        **os.environ,
        **{
            f"MOVINGDATA_{name.upper()}": v if isinstance(v, str) else json.dumps(v)
            for name, v in values.items()
            if v is not None
        },
    }


def start_worker(settings: Settings, log: Path, agents: str = "all") -> subprocess.Popen[bytes]:
    """A ``movingdata worker --agents ...`` process configured like ``settings``."""
    env = worker_env(settings)
    with log.open("wb") as out:
        return subprocess.Popen(
            [str(Path(sys.executable).parent / "movingdata"), "worker", "--agents", agents],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def stop_worker(worker: subprocess.Popen[bytes], grace_s: float = 30.0) -> None:
    """SIGTERM the worker's session; SIGKILL it if it has not exited after ``grace_s``."""
    if worker.poll() is None:
        os.killpg(worker.pid, signal.SIGTERM)
    try:
        worker.wait(timeout=grace_s)
    except subprocess.TimeoutExpired:
        os.killpg(worker.pid, signal.SIGKILL)
        worker.wait()


async def run_demo(base: Settings) -> DemoResult:
    folder = base.home / "demo" / "samples"
    write_samples(folder)
    settings = base.model_copy(update={"source_roots": (folder,)})
    await prepare(settings)
    worker = start_worker(settings, base.home / "demo" / "worker.log")
    state = State(settings)
    try:
        requests = requests_for_path(folder, settings.targets, "demo", {"source": "demo"})
        began = time.monotonic()
        await produce(settings, requests)
        failures = await wait_verified(state, [r.object_id for r in requests], timeout_s=600)
        seconds = time.monotonic() - began
        docs = [await state.object(r.object_id) for r in requests]
        result = DemoResult(
            objects=len(requests),
            bytes=sum(p.stat().st_size for p in folder.iterdir()),
            seconds=seconds,
            failures=failures,
        )
        for target in settings.targets:
            result.verified[target] = sum(
                1
                for d in docs
                if d and (d.get("replicas") or {}).get(target, {}).get("verified_at")
            )
        largest = max((d for d in docs if d), key=lambda d: d.get("size", 0))
        deps = build_deps(settings)
        original = (folder / largest["name"]).read_bytes()
        try:
            for target in settings.targets:
                out = base.home / "demo" / f"restored-{target}.bin"
                await restore_to_file(largest, deps.store(target), target, deps.data_keys, out)
                result.restored[target] = out.read_bytes() == original
                out.unlink()
        finally:
            await deps.close()
        return result
    finally:
        await state.close()
        stop_worker(worker)
