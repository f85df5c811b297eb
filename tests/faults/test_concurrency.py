"""Two encrypts of one version, and a key rotation racing encrypts: every replica that counts
as verified decrypts with the key the registry holds."""

import asyncio
from pathlib import Path

from tests.pipeline import Pipeline, restore_all, write_objects
from tests.waiting import wait_for
from workers.client.identity import cli_actor
from workers.client.kafka import produce
from workers.client.puts import requests_for_path, wait_verified
from workers.client.state import State

TARGETS = ("s3", "azure", "gcs")


async def every_replica_restores(
    pipeline: Pipeline, state: State, files: dict[str, bytes], tmp_path: Path
) -> None:
    docs = [doc async for doc in state.db["objects"].find({})]
    assert sorted(d["name"] for d in docs) == sorted(files)
    for target in TARGETS:
        restored = await restore_all(pipeline, [(doc, target) for doc in docs], tmp_path)
        assert restored == files, target


async def test_two_consumer_groups_encrypting_one_prefix(
    pipeline: Pipeline, state: State, source_dir: Path, tmp_path: Path
) -> None:
    """``--agents all`` next to ``--agents encrypt``: two groups, two encrypts of every
    version, one data key and one recorded write each."""
    files = write_objects(source_dir, 40, largest=2 * 1024 * 1024)
    pipeline.start_worker("all")
    pipeline.start_worker("encrypt")
    requests = requests_for_path(source_dir, TARGETS, "default", {}, actor=cli_actor())
    await produce(pipeline.settings, requests)
    assert await wait_verified(state, requests, timeout_s=600) == {}, pipeline.worker_logs()[-3000:]
    assert await state.db["data_keys"].count_documents({}) == len(files)
    await every_replica_restores(pipeline, state, files, tmp_path)


async def test_rotation_with_disable_old_racing_encrypts(
    pipeline: Pipeline, state: State, source_dir: Path, tmp_path: Path
) -> None:
    files = write_objects(source_dir, 60)
    pipeline.start_worker("all")
    requests = requests_for_path(source_dir, TARGETS, "default", {}, actor=cli_actor())
    await produce(pipeline.settings, requests)

    async def encrypting() -> bool:
        return await state.db["data_keys"].count_documents({}) >= 5

    await wait_for(encrypting, timeout_s=120, interval_s=0.1)
    rotated = await asyncio.to_thread(pipeline.cli, "keys", "rotate", "--disable-old")
    assert rotated.returncode == 0, rotated.stdout + rotated.stderr
    assert await wait_verified(state, requests, timeout_s=600) == {}, pipeline.worker_logs()[-3000:]
    newest = rotated.stdout.split("under ")[-1].strip()
    keks = {doc["kek_key_id"] async for doc in state.db["data_keys"].find({})}
    assert keks == {newest}
    await every_replica_restores(pipeline, state, files, tmp_path)
