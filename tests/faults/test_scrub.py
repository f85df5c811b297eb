"""Replicas corrupted or deleted behind the system's back, 200 objects: scrub finds and repairs."""

import hashlib
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path

from tests.faults.test_replay_and_crashes import TARGETS, assert_exactly_once
from tests.pipeline import Pipeline, audit_trails, write_objects
from tests.waiting import wait_for
from workers.client.identity import cli_actor
from workers.client.kafka import produce
from workers.client.ops import scrub
from workers.client.puts import requests_for_path, wait_verified
from workers.client.state import State
from workers.deps import build_deps


async def test_scrub_repairs_corrupted_and_deleted_replicas(
    pipeline: Pipeline,
    worker_all: subprocess.Popen[bytes],
    state: State,
    source_dir: Path,
    tmp_path: Path,
) -> None:
    files = write_objects(source_dir, 200, largest=32 * 1024)
    requests = requests_for_path(source_dir, TARGETS, "default", {}, actor=cli_actor())
    await produce(pipeline.settings, requests)
    assert await wait_verified(state, requests, timeout_s=600) == {}
    docs = [await state.object(r.object_id, 1) for r in requests]

    async def rot() -> AsyncIterator[bytes]:
        yield b"bit rot"

    deps = build_deps(pipeline.settings)
    damaged = {}
    try:
        for n, doc in enumerate(docs[:30]):
            assert doc is not None
            target = TARGETS[n % 3]
            if n % 2:
                await deps.store(target).write(doc["key"], rot())
            else:
                await deps.store(target).delete(doc["key"])
            damaged[doc["object_id"]] = target
        await scrub(pipeline.settings, [d for d in docs if d is not None], actor=cli_actor())

        async def all_repaired() -> bool:
            for object_id, target in damaged.items():
                doc = await state.object(object_id, 1)
                if not (doc and doc["replicas"][target].get("repaired_from")):
                    return False
            return True

        await wait_for(all_repaired, timeout_s=300)
        for doc in docs[:30]:
            assert doc is not None
            stored = b"".join(
                [c async for c in deps.store(damaged[doc["object_id"]]).read(doc["key"])]
            )
            assert hashlib.sha256(stored).hexdigest() == doc["ciphertext_sha256"]
    finally:
        await deps.close()

    async def requests_recorded() -> int:
        trails = await audit_trails(state)
        return sum(r["action"] == "scrub.requested" for t in trails.values() for r in t)

    async def every_request_recorded() -> bool:  # the sink records them as it reads them
        return await requests_recorded() >= 600

    await wait_for(every_request_recorded, timeout_s=120)
    assert await requests_recorded() == 600
    await assert_exactly_once(pipeline, state, files, tmp_path)
