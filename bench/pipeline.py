"""MovingData on one workload: time from the first ingest request to the last replica verified
in all three stores, with N worker processes per stage.

    .venv/bin/python -m bench.pipeline --workload c --replicas 1 [--mode read-back] [--profile]

Each run has its own topics, buckets and database, removed afterwards. Reports objects/s, MB/s,
per-object latency percentiles (request -> last replica verified), the median time each
stage adds per object, CPU seconds per stage and per service, and every worker's idle and peak
RSS (sampled every 100 ms). ``--mode`` is the workers' verification mode (``verify_mode``).
``--profile`` attaches py-spy to every worker and prints the hottest functions.
"""

import argparse
import asyncio
import json
import subprocess
import sys
import time
import uuid
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal, get_args

from aiokafka import AIOKafkaConsumer
from aiokafka.client import AIOKafkaClient, CoordinationType
from aiokafka.errors import GroupCoordinatorNotAvailableError
from aiokafka.protocol.admin import (
    DescribeGroupsRequest_v0,
    DescribeGroupsRequest_v1,
    DescribeGroupsRequest_v2,
)
from aiokafka.protocol.api import Request

from bench.rclone import Rclone
from bench.report import (
    Processes,
    cpu_by_name,
    cpu_delta,
    isolated,
    percentiles,
    print_rows,
    service_pids,
    throughput,
    write_json,
)
from bench.workloads import WORKLOADS, materialise
from schemas.codec import decode
from schemas.events import DeadLetter, ReplicaVerified
from topics import DEADLETTER, VERIFIED, delete_topics
from workers.app import STAGES
from workers.broker import kafka_options
from workers.client.identity import cli_actor
from workers.client.kafka import produce
from workers.client.puts import requests_for_path, wait_verified
from workers.client.state import Doc, State
from workers.demo import start_worker, stop_worker
from workers.deps import prepare
from workers.settings import Settings, load_settings

VerifyMode = Literal["store-digest", "read-back"]  # workers.settings.Settings.verify_mode

# The chain's timestamps, in order: the time each stage adds is the gap to the previous one.
STEPS = ("accepted", "encrypted", "written", "verified", "tiered")


class DescribeGroups(
    Request[DescribeGroupsRequest_v0 | DescribeGroupsRequest_v1 | DescribeGroupsRequest_v2]
):
    """DescribeGroups up to v2: aiokafka 0.14 reads v3 replies with the v2 schema and fails."""

    API_KEY = 15

    def __init__(self, groups: list[str]) -> None:
        self.groups = groups

    def build(self, request_struct_class: type[Any]) -> Any:
        return request_struct_class(self.groups)


async def wait_groups_ready(settings: Settings, replicas: int, timeout_s: float = 120) -> None:
    """Until every stage's consumer group is stable with all its members (partitions assigned)."""
    groups = [f"{settings.topic_prefix}-{stage}" for stage in STAGES]
    client = AIOKafkaClient(**kafka_options(settings))
    await client.bootstrap()
    try:
        deadline = time.monotonic() + timeout_s
        states: list[Any] = []
        while time.monotonic() < deadline:
            try:
                node = await client.coordinator_lookup(CoordinationType.GROUP, groups[0])
            except GroupCoordinatorNotAvailableError:  # a new broker: its offsets topic is not up
                await asyncio.sleep(0.2)
                continue
            states = (await client.send(node, DescribeGroups(groups))).groups
            if all(g[2] == "Stable" and len(g[5]) == replicas for g in states):
                return
            await asyncio.sleep(0.2)
        raise TimeoutError(f"consumer groups not ready: {[(g[1], g[2]) for g in states]}")
    finally:
        await client.close()


async def wait_on_topics(
    settings: Settings, object_ids: list[str], timeout_s: float
) -> dict[str, str]:
    """Until every object has a verified event for each target; dead letters are failures.

    Read from the broker, not MongoDB: watching the run puts no load on the database.
    """
    pending = {(oid, t) for oid in object_ids for t in settings.targets}
    failures: dict[str, str] = {}
    topics = [VERIFIED.name(settings.topic_prefix), DEADLETTER.name(settings.topic_prefix)]
    consumer = AIOKafkaConsumer(*topics, **kafka_options(settings), auto_offset_reset="earliest")
    await consumer.start()
    try:
        deadline = time.monotonic() + timeout_s
        while pending and time.monotonic() < deadline:
            batches = await consumer.getmany(timeout_ms=200)
            for message in (m for batch in batches.values() for m in batch):
                event = decode(message.value, ReplicaVerified, DeadLetter)
                if isinstance(event, ReplicaVerified):
                    pending.discard((event.object_id, event.target))
                elif any(oid == event.object_id for oid, _ in pending):
                    failures[event.object_id] = event.reason
                    pending = {(o, t) for o, t in pending if o != event.object_id}
    finally:
        await consumer.stop()
    return failures | {oid: "not verified in time" for oid, _ in pending}


def stage_times(doc: Doc, requested: datetime) -> dict[str, float]:
    """Seconds each stage added to one object (the slowest replica for per-target steps).

    Tiering may still be running when the last replica is verified: then it has no figure.
    """
    replicas = list((doc.get("replicas") or {}).values())
    at = {
        "requested": requested.astimezone(UTC).replace(tzinfo=None),  # MongoDB's dates: naive UTC
        "accepted": doc["accepted_at"],
        "encrypted": doc["encrypted_at"],
    }
    for step in STEPS[2:]:
        if all(f"{step}_at" in r for r in replicas):
            at[step] = max(r[f"{step}_at"] for r in replicas)
    times = {"latency": (at["verified"] - at["requested"]).total_seconds()}
    for previous, step in zip(("requested", *STEPS), STEPS, strict=False):
        if step in at:
            times[step] = (at[step] - at[previous]).total_seconds()
    return times


def start_profiler(pid: int, out: Path) -> subprocess.Popen[bytes]:
    py_spy = str(Path(sys.executable).parent / "py-spy")
    cmd = [py_spy, "record", "--pid", str(pid), "--format", "raw", "-r", "50", "-o", str(out)]
    return subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


# Leaf frames of a thread that is waiting, not working: left out of the profile.
IDLE = ("EpollSelector.select ", "_worker (concurrent/", "Condition.wait ", "Event.wait ")
ROOTS = {"main (workers/cli/__init__.py)", "worker (workers/cli/serve.py)"}  # on every stack


def hottest(raw: list[Path], top: int = 12) -> list[tuple[str, float]]:
    """Our functions (``workers/``) by share of the busy samples in which they
    are on the stack; py-spy's collapsed stacks, idle samples left out."""
    inclusive: Counter[str] = Counter()
    busy = 0
    for path in raw:
        for line in path.read_text().splitlines():
            stack, _, count = line.rpartition(" ")
            frames = stack.split(";")
            if frames[-1].startswith(IDLE):
                continue
            busy += int(count)
            ours = {
                f.rsplit(":", 1)[0] + ")" for f in frames if " (workers/" in f or " (schemas/" in f
            }
            for frame in ours - ROOTS:
                inclusive[frame] += int(count)
    return [(name, round(100 * n / max(busy, 1), 1)) for name, n in inclusive.most_common(top)]


async def run(
    base: Settings,
    workload: str,
    replicas: int,
    profile: bool = False,
    mode: VerifyMode = "store-digest",
) -> dict[str, Any]:
    spec = WORKLOADS[workload]
    folder = materialise(spec, base.home / "bench" / "workloads")
    name = f"md{workload}{replicas}{mode[0]}{uuid.uuid4().hex[:6]}"
    logs = base.home / "bench" / "logs" / name
    logs.mkdir(parents=True)
    settings = isolated(base, name, folder, verify_mode=mode)
    await prepare(settings)
    workers = Processes(
        {
            stage: [
                start_worker(settings, logs / f"{stage}-{n}.log", agents=stage)
                for n in range(replicas)
            ]
            for stage in STAGES
        }
    )
    profilers = [start_profiler(p, logs / f"{p}.txt") for p in workers.pids()] if profile else []
    state = State(settings)
    stop = asyncio.Event()
    try:
        await wait_groups_ready(settings, replicas)
        workers.sample()
        sampler = asyncio.create_task(workers.sample_until(stop))
        requests = requests_for_path(folder, settings.targets, "bench", {}, actor=cli_actor())
        processes = {
            **{s: [p.pid for p in ps] for s, ps in workers.procs.items()},
            **{name: [pid] for name, pid in service_pids(settings).items()},
        }
        cpu_before = cpu_by_name(processes)
        began = time.monotonic()
        await produce(settings, requests)
        ids = [r.object_id for r in requests]
        failures = await wait_on_topics(settings, ids, timeout_s=1800)
        seconds = time.monotonic() - began
        cpu = cpu_delta(cpu_before, cpu_by_name(processes))
        await wait_verified(state, [r for r in requests if r.object_id not in failures], 300)
        stop.set()
        await sampler
        docs = {d["object_id"]: d async for d in state.db["objects"].find({})}
    finally:
        stop.set()
        procs = [p for ps in workers.procs.values() for p in ps]
        await asyncio.gather(*(asyncio.to_thread(stop_worker, p) for p in procs))
        for profiler in profilers:
            profiler.wait(timeout=60)
        await state.client.drop_database(name)
        await state.close()
        await delete_topics(kafka_options(settings), settings.topic_prefix)
        Rclone(settings, name).purge(logs)
    per_object = [
        stage_times(docs[r.object_id], r.produced_at)
        for r in requests
        if r.object_id not in failures
    ]
    total = sum(f.stat().st_size for f in folder.iterdir())
    result: dict[str, Any] = {
        "tool": "movingdata",
        "workload": workload,
        "replicas": replicas,
        "mode": mode,
        **throughput(len(requests), total, seconds),
        "latency_s": percentiles([o["latency"] for o in per_object]),
        "stage_p50_s": {s: percentiles([o[s] for o in per_object if s in o])["p50"] for s in STEPS},
        "memory": workers.memory(),
        "cpu_s": cpu,
        "cpu_total_s": round(sum(cpu.values()), 1),
        "failures": len(failures),
        "bucket": name,
    }
    if profile:
        result["profile"] = hottest(sorted(logs.glob("*.txt")))
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--workload", choices=sorted(WORKLOADS), default="b")
    parser.add_argument("--replicas", type=int, default=1, help="worker processes per stage")
    parser.add_argument("--mode", choices=get_args(VerifyMode), default="store-digest")
    parser.add_argument("--profile", action="store_true")
    args = parser.parse_args()
    result = asyncio.run(
        run(load_settings(), args.workload, args.replicas, args.profile, args.mode)
    )
    print_rows([{k: v for k, v in result.items() if k not in ("memory", "profile", "cpu_s")}])
    print(json.dumps({"memory": result["memory"], "cpu_s": result["cpu_s"]}))
    for frame, share in result.get("profile", []):
        print(f"{share:5.1f}%  {frame}")
    write_json(f"pipeline-{args.workload}x{args.replicas}-{args.mode}", result)


if __name__ == "__main__":
    main()
