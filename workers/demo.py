"""``movingdata demo``: the pipeline on generated sample data, end to end, with a summary.

Starts one worker process for every stage, puts a folder of deterministic sample files to
S3, Azure and GCS through the staging area (the workers read no client path), waits until
every replica is verified, restores one object from each store and checks it bit for bit.
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

from schemas.events import Placement
from workers.client.identity import cli_actor
from workers.client.puts import files_to_put, put_files, wait_puts
from workers.client.restore import restore_to_file
from workers.client.state import State
from workers.deps import build_deps, prepare
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
    "sync_page",
    "kek_name",
    "broker_session_timeout_s",
    "max_attempts",
    "retry_cap_s",
    "gcs_url",
    "staging_ttl_s",
    "staging_sweep_s",
    "retain_versions",
    "retention_interval_s",
    "audit_checkpoint_s",
    "audit_sweep_segments",
    "audit_lock_bucket",
    "audit_lock_days",
    "tier_policy",
    "tier_prices",
    "tier_sweep_s",
    "verify_mode",
    "scrub_interval_s",
    "scrub_share",
    "scrub_rehydrate_bytes_per_day",
    "reconcile_interval_s",
    "reconcile_after_s",
    "kafka_servers",
    "kafka_security_protocol",
    "kafka_sasl_mechanism",
    "kafka_ssl_cafile",
    "worker_port",
)
SECRET_SETTINGS = ("s3_access_key", "s3_secret_key")


def worker_env(settings: Settings) -> dict[str, str]:
    """The environment that configures a worker process like ``settings`` (credentials set
    explicitly included; they reach the child through its environment, never a log)."""
    values = settings.model_dump(mode="json", include=set(WORKER_SETTINGS))
    for name in SECRET_SETTINGS:
        secret = getattr(settings, name)
        if secret is not None:
            values[name] = secret.get_secret_value()
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
    settings = base
    await prepare(settings)
    worker = start_worker(settings, base.home / "demo" / "worker.log")
    state = State(settings)
    try:
        placement = Placement(
            name="-", targets=settings.targets, tenant="demo", tags={"source": "demo"}
        )  # type: ignore[arg-type]
        began = time.monotonic()
        sent = await put_files(
            settings,
            files_to_put([folder]),
            lambda name: placement.model_copy(update={"name": name}),
            force=True,  # a new version each run, so the demo moves its bytes every time
            actor=cli_actor(),
        )
        results = await wait_puts(state, [one.request for one in sent], timeout_s=600)
        seconds = time.monotonic() - began
        docs = [await state.object(r.request.object_id, r.version) for r in results]
        result = DemoResult(
            objects=len(sent),
            bytes=sum(p.stat().st_size for p in folder.iterdir()),
            seconds=seconds,
            failures={r.request.placement.name: r.reason for r in results if not r.ok},
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


SURFACE = ("worker", "api", "dashboard")


def surface_pid(settings: Settings, name: str) -> Path:
    return settings.home / "demo" / f"{name}.pid"


async def start_surface(settings: Settings) -> dict[str, str]:
    """Leave a worker, the API and the dashboard running (``make down`` stops them), with a
    reader token for the demo tenant in a file of mode 600; return where each one is."""
    from workers.api import tokens
    from workers.stack import process
    from workers.stack.localenv import write_secret

    token_file = settings.home / "demo" / "reader.token"
    if not token_file.exists():
        state = State(settings)
        try:
            name = f"demo-reader-{os.urandom(3).hex()}"
            # Never expires: the demo reuses this file on every run; it reads one tenant.
            made = await tokens.create(state.db, name, "demo", tokens.ROLE_SCOPES["reader"], None)
            write_secret(token_file, made + "\n")
        finally:
            await state.close()
    movingdata = str(Path(sys.executable).parent / "movingdata")
    commands = {
        "worker": ([movingdata, "worker", "--agents", "all"], {}),
        "api": ([movingdata, "api"], {}),
        "dashboard": (
            [movingdata, "dashboard"],
            {"MOVINGDATA_DASHBOARD_TOKEN": token_file.read_text().strip()},
        ),
    }
    for name, (argv, env) in commands.items():
        tracked = process.read_pid_file(surface_pid(settings, name))
        if tracked is None or not process.is_alive(tracked):
            process.spawn(
                argv,
                marker=f"movingdata {name}",
                pid_file=surface_pid(settings, name),
                log_file=settings.home / "demo" / f"{name}.log",
                cwd=Path.cwd(),
                env=env,
            )
    return {
        "API": f"http://{settings.api_host}:{settings.api_port} (docs at /docs)",
        "dashboard": f"http://127.0.0.1:{settings.dashboard_port}",
        "reader token (tenant demo)": str(token_file),
    }


def stop_surface(settings: Settings) -> list[str]:
    """Stop what ``start_surface`` left running."""
    from workers.stack import process

    stopped = []
    for name in SURFACE:
        pid_file = surface_pid(settings, name)
        tracked = process.read_pid_file(pid_file)
        if tracked is not None and process.is_alive(tracked):
            process.stop(tracked, grace_s=30)
            stopped.append(name)
        pid_file.unlink(missing_ok=True)
    return stopped
