"""The whole chain with real worker processes and real services (no mocks).

50 files from 0 bytes to 64 MiB -> verified in S3, Azure and GCS -> restored bit for bit;
MongoDB holds one document per object and an intact audit chain; a poison message is
dead-lettered while the rest flows; a corrupted replica is detected and repaired.
"""

import hashlib
import os
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path

import orjson
from aiokafka import AIOKafkaProducer

from tests.pipeline import (
    EXPECTED_STEPS,
    MOVINGDATA,
    Pipeline,
    restore_all,
    settled_trails,
    steps,
)
from tests.waiting import wait_for
from workers.broker import kafka_options
from workers.client.identity import cli_actor
from workers.client.kafka import produce
from workers.client.ops import scrub
from workers.client.puts import requests_for_path, wait_verified
from workers.client.state import State
from workers.core.auditchain import first_broken_link
from workers.deps import target_url
from workers.stores import open_store

MiB = 1024 * 1024
TARGETS = ("s3", "azure", "gcs")
LARGE = [MiB, 3 * MiB, 5 * MiB + 1, 8 * MiB, 9 * MiB, 16 * MiB + 3, 64 * MiB]


def file_sizes() -> list[int]:
    small = [(i * 7919) % (256 * 1024) for i in range(1, 42)]
    return [0, 1, *small, *LARGE]


def write_files(folder: Path, sizes: list[int]) -> dict[str, bytes]:
    files = {}
    for n, size in enumerate(sizes):
        data = os.urandom(size)
        (folder / f"f{n:02d}.bin").write_bytes(data)
        files[f"f{n:02d}.bin"] = data
    return files


async def test_fifty_files_verified_everywhere_and_restored(
    pipeline: Pipeline,
    worker_all: subprocess.Popen[bytes],
    state: State,
    source_dir: Path,
    tmp_path: Path,
) -> None:
    sizes = file_sizes()
    assert len(sizes) == 50 and max(sizes) == 64 * MiB
    files = write_files(source_dir, sizes)
    requests = requests_for_path(source_dir, TARGETS, "default", {}, actor=cli_actor())
    await produce(pipeline.settings, requests)

    failures = await wait_verified(state, requests, timeout_s=900)
    assert failures == {}, pipeline.worker_logs()[-3000:]

    assert await state.db["objects"].count_documents({}) == 50
    trails = await settled_trails(state, [(r.object_id, 1) for r in requests])
    for request in requests:
        (doc,) = await state.objects(request.object_id)
        data = files[request.placement.name]
        assert doc["plaintext_sha256"] == hashlib.sha256(data).hexdigest()
        assert doc["size"] == len(data)
        for target in TARGETS:
            assert doc["replicas"][target]["sha256"] == doc["ciphertext_sha256"]
        audit = trails[request.object_id]
        assert steps(audit) == EXPECTED_STEPS
        assert first_broken_link(audit) is None

    # Every object restores bit for bit, each store serving a third of them.
    docs = [await state.object(r.object_id, 1) for r in requests]
    pairs = [(doc, TARGETS[n % 3]) for n, doc in enumerate(docs) if doc is not None]
    assert await restore_all(pipeline, pairs, tmp_path) == files

    # The stores hold ciphertext: a plaintext sample appears in no replica.
    doc = next(d for d in docs if d and d["name"] == "f10.bin")
    assert doc is not None
    sample = files["f10.bin"][1000:1064]
    for target in TARGETS:
        store = open_store(target_url(target, pipeline.settings), pipeline.settings)
        stored = b"".join([chunk async for chunk in store.read(doc["key"])])
        await store.close()
        assert sample not in stored

    # A stopped worker closes its store, KMS and database sessions: none is left for the
    # closing event loop to log as an error.
    pipeline.stop_workers()
    logs = pipeline.worker_logs()
    assert "Closing event loop" in logs
    assert "Unclosed" not in logs, logs[-3000:]


async def test_poison_message_is_dead_lettered_while_the_rest_flows(
    pipeline: Pipeline, worker_all: subprocess.Popen[bytes], state: State, source_dir: Path
) -> None:
    producer = AIOKafkaProducer(**kafka_options(pipeline.settings))
    await producer.start()
    await producer.send_and_wait(f"{pipeline.settings.topic_prefix}.ingest", b"{poison")
    await producer.stop()
    (source_dir / "good.txt").write_bytes(b"still flowing")
    requests = requests_for_path(source_dir, TARGETS, "default", {}, actor=cli_actor())
    await produce(pipeline.settings, requests)

    assert await wait_verified(state, requests[:1], timeout_s=300) == {}
    letter = await state.db["deadletters"].find_one({"stage": "ingest"})
    assert letter is not None
    assert "malformed JSON" in letter["reason"]
    assert letter["topic"] == f"{pipeline.settings.topic_prefix}.ingest"
    assert worker_all.poll() is None


async def test_corrupted_replica_is_detected_and_repaired(
    pipeline: Pipeline, worker_all: subprocess.Popen[bytes], state: State, source_dir: Path
) -> None:
    (source_dir / "precious.bin").write_bytes(os.urandom(3 * MiB))
    (request,) = requests_for_path(source_dir, TARGETS, "default", {}, actor=cli_actor())
    await produce(pipeline.settings, [request])
    assert await wait_verified(state, [request], timeout_s=300) == {}
    doc = await state.object(request.object_id)
    assert doc is not None

    azure = open_store(target_url("azure", pipeline.settings), pipeline.settings)

    async def garbage() -> AsyncIterator[bytes]:
        yield b"bit rot"

    await azure.write(doc["key"], garbage())
    await scrub(pipeline.settings, [doc], actor=cli_actor())

    async def repaired() -> bool:
        current = await state.object(request.object_id)
        return bool(current and current["replicas"]["azure"].get("repaired_from"))

    await wait_for(repaired, timeout_s=120)
    stored = b"".join([chunk async for chunk in azure.read(doc["key"])])
    await azure.close()
    assert hashlib.sha256(stored).hexdigest() == doc["ciphertext_sha256"]
    audit = await state.audit(request.object_id)
    assert first_broken_link(audit) is None


def test_cli_put_wait_show_and_restore(
    pipeline: Pipeline, worker_all: subprocess.Popen[bytes], source_dir: Path, tmp_path: Path
) -> None:
    data = os.urandom(200_000)
    (source_dir / "cli.bin").write_bytes(data)
    put = subprocess.run(
        [MOVINGDATA, "put", str(source_dir / "cli.bin"), "--wait", "--json", "--timeout", "300"],
        env=pipeline.env,
        capture_output=True,
        text=True,
        timeout=400,
        check=False,
    )
    assert put.returncode == 0, put.stdout + put.stderr
    object_id = orjson.loads(put.stdout.splitlines()[0])["object_id"]
    show = subprocess.run(
        [MOVINGDATA, "show", object_id, "--json"],
        env=pipeline.env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    doc = orjson.loads(show.stdout)
    assert set(doc["replicas"]) == set(TARGETS)
    out = tmp_path / "back.bin"
    subprocess.run(
        [MOVINGDATA, "restore", object_id, "--from", "azure", "-o", str(out)],
        env=pipeline.env,
        capture_output=True,
        timeout=120,
        check=True,
    )
    assert out.read_bytes() == data
