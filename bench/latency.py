"""Latency of one 64 KiB object, request to verified in all three stores: on an idle stack,
and in a steady stream at half the measured throughput.

    .venv/bin/python -m bench.latency [--mode store-digest] [--idle 30] [--stream 120]

One worker process per stage, its own topics, buckets and database (removed afterwards):

1. idle: ``--idle`` objects one at a time, each sent once the one before is verified;
2. throughput: ``--burst`` objects sent at once, objects/s until the last is verified;
3. stream: ``--stream`` objects sent at half that rate, evenly spaced.

Latency is per object, from the request (stamped when it is sent) to its last replica
verified, from the chain's own timestamps as in ``bench.pipeline``; p50/p95/p99 of each phase,
and the median time each stage adds.
"""

import argparse
import asyncio
import os
import time
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, get_args

from aiokafka import AIOKafkaConsumer

from bench.pipeline import STEPS, VerifyMode, stage_times, wait_groups_ready
from bench.rclone import Rclone
from bench.report import isolated, percentiles, print_rows, write_json
from schemas.codec import decode
from schemas.events import DeadLetter, IngestRequest, ReplicaVerified
from topics import DEADLETTER, INGEST, VERIFIED, delete_topics
from workers.app import STAGES
from workers.broker import kafka_options
from workers.client.identity import cli_actor
from workers.client.kafka import Producer
from workers.client.puts import requests_for_path, wait_verified
from workers.client.state import State
from workers.demo import start_worker, stop_worker
from workers.deps import prepare
from workers.settings import Settings, load_settings

SIZE = 64 * 1024


class Verified:
    """Follows the verified and dead-letter topics: ``await done(object_id)`` returns once
    the object is verified in every target (raises if it was dead-lettered)."""

    def __init__(self, settings: Settings) -> None:
        topics = [VERIFIED.name(settings.topic_prefix), DEADLETTER.name(settings.topic_prefix)]
        self.consumer = AIOKafkaConsumer(
            *topics, **kafka_options(settings), auto_offset_reset="earliest"
        )
        self.targets = set(settings.targets)
        self.seen: dict[str, set[str]] = {}
        self.failed: dict[str, str] = {}
        self.changed = asyncio.Condition()
        self.task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> "Verified":
        await self.consumer.start()
        self.task = asyncio.create_task(self.follow())
        return self

    async def __aexit__(self, *_: object) -> None:
        if self.task:
            self.task.cancel()
        await self.consumer.stop()

    async def follow(self) -> None:
        while True:
            batches = await self.consumer.getmany(timeout_ms=100)
            for message in (m for batch in batches.values() for m in batch):
                event = decode(message.value, ReplicaVerified, DeadLetter)
                if isinstance(event, ReplicaVerified):
                    self.seen.setdefault(event.object_id, set()).add(event.target)
                else:
                    self.failed[event.object_id] = event.reason
            if batches:
                async with self.changed:
                    self.changed.notify_all()

    async def done(self, object_ids: Sequence[str], timeout_s: float = 300) -> None:
        def ended() -> bool:
            return all(
                self.seen.get(oid, set()) >= self.targets or oid in self.failed
                for oid in object_ids
            )

        async with self.changed:
            await asyncio.wait_for(self.changed.wait_for(ended), timeout_s)
        if failed := {oid: self.failed[oid] for oid in object_ids if oid in self.failed}:
            raise RuntimeError(f"dead-lettered: {failed}")


def stamped(request: IngestRequest) -> IngestRequest:
    return request.model_copy(update={"produced_at": datetime.now(UTC)})


async def send(producer: Producer, request: IngestRequest) -> IngestRequest:
    request = stamped(request)
    await producer.send(INGEST, request)
    await producer.producer.flush()  # on its way now, not after the linger
    return request


def write_objects(folder: Path, count: int) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for n in range(count):
        (folder / f"l-{n:04d}.bin").write_bytes(os.urandom(SIZE))


async def run(
    base: Settings,
    mode: VerifyMode = "store-digest",
    idle: int = 30,
    burst: int = 100,
    stream: int = 120,
) -> dict[str, Any]:
    name = f"lat{mode[0]}{uuid.uuid4().hex[:8]}"
    folder = base.home / "bench" / "latency" / name
    logs = base.home / "bench" / "logs" / name
    logs.mkdir(parents=True)
    write_objects(folder, idle + burst + stream)
    settings = isolated(base, name, folder, verify_mode=mode)
    await prepare(settings)
    requests = requests_for_path(folder, settings.targets, "bench", {}, actor=cli_actor())
    phases = {
        "idle": requests[:idle],
        "burst": requests[idle : idle + burst],
        "stream": requests[idle + burst :],
    }
    workers = [start_worker(settings, logs / f"{s}.log", agents=s) for s in STAGES]
    state = State(settings)
    sent: dict[str, list[IngestRequest]] = {phase: [] for phase in phases}
    try:
        await wait_groups_ready(settings, 1)
        async with Verified(settings) as verified, Producer(settings) as producer:
            for request in phases["idle"]:
                sent["idle"].append(await send(producer, request))
                await verified.done([request.object_id])
            began = time.monotonic()
            sent["burst"] = [await send(producer, r) for r in phases["burst"]]
            await verified.done([r.object_id for r in phases["burst"]], timeout_s=900)
            per_s = burst / (time.monotonic() - began)
            rate = per_s / 2
            start = time.monotonic()
            for n, request in enumerate(phases["stream"]):
                await asyncio.sleep(max(0.0, start + n / rate - time.monotonic()))
                sent["stream"].append(await send(producer, request))
            await verified.done([r.object_id for r in phases["stream"]], timeout_s=900)
        everything = [r for rs in sent.values() for r in rs]
        failures = await wait_verified(state, everything, 300)
        docs = {d["object_id"]: d async for d in state.db["objects"].find({})}
    finally:
        await asyncio.gather(*(asyncio.to_thread(stop_worker, w) for w in workers))
        await state.client.drop_database(name)
        await state.close()
        await delete_topics(kafka_options(settings), settings.topic_prefix)
        Rclone(settings, name).purge(logs)
        for path in folder.iterdir():
            path.unlink()
        folder.rmdir()
    result: dict[str, Any] = {
        "mode": mode,
        "object_bytes": SIZE,
        "throughput_objects_per_s": round(per_s, 1),
        "stream_objects_per_s": round(rate, 1),
        "failures": len(failures),
    }
    for phase in ("idle", "stream"):
        times = [stage_times(docs[r.object_id], r.produced_at) for r in sent[phase]]
        result[phase] = {
            "objects": len(times),
            "latency_s": percentiles([t["latency"] for t in times]),
            "stage_p50_s": {s: percentiles([t[s] for t in times if s in t])["p50"] for s in STEPS},
        }
    return result


def print_result(result: dict[str, Any]) -> None:
    rows = [
        {
            "latency, 64 KiB": phase
            + (f" at {result['stream_objects_per_s']} obj/s" if phase == "stream" else ""),
            "mode": result["mode"],
            "objects": result[phase]["objects"],
            **{f"{p} s": v for p, v in result[phase]["latency_s"].items()},
            **{f"{s} p50": v for s, v in result[phase]["stage_p50_s"].items()},
        }
        for phase in ("idle", "stream")
    ]
    print_rows(rows)
    print(
        f"throughput (burst of 64 KiB objects): {result['throughput_objects_per_s']} obj/s; "
        f"stream at half: {result['stream_objects_per_s']} obj/s; failures {result['failures']}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--mode", choices=get_args(VerifyMode), default="store-digest")
    parser.add_argument("--idle", type=int, default=30, help="objects sent one at a time")
    parser.add_argument("--burst", type=int, default=100, help="objects to measure throughput")
    parser.add_argument("--stream", type=int, default=120, help="objects in the steady stream")
    args = parser.parse_args()
    result = asyncio.run(run(load_settings(), args.mode, args.idle, args.burst, args.stream))
    print_result(result)
    write_json(f"latency-{args.mode}", result)


if __name__ == "__main__":
    main()
