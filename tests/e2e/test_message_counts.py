"""What one small object costs the chain: messages produced per topic, the sink's writes per
collection and the KMS requests, through the real pipeline (``-s`` prints the counts)."""

import json
from pathlib import Path

import aiohttp

from tests.pipeline import (
    EXPECTED_STEPS,
    Pipeline,
    endpoint,
    group_lag,
    messages_on,
    samples,
    settled_trails,
    steps,
)
from tests.waiting import wait_for
from topics import ALL
from workers.app import STAGES
from workers.client.state import State


async def test_one_small_object_counts(
    pipeline: Pipeline, worker_all, state: State, tmp_path: Path
) -> None:
    (tmp_path / "small.txt").write_bytes(b"small object\n" * 10)
    put = pipeline.cli("put", str(tmp_path / "small.txt"), "--wait")
    assert put.returncode == 0, put.stdout + put.stderr
    object_id, _ = await state.resolve("small.txt", "default")
    trail = (await settled_trails(state, [(object_id, 1)]))[object_id]
    assert steps(trail) == EXPECTED_STEPS
    group = f"{pipeline.settings.topic_prefix}-{'+'.join(STAGES)}"

    async def settled() -> bool:
        return await group_lag(pipeline, group) == 0

    await wait_for(settled, timeout_s=120)
    produced = {spec.suffix: await messages_on(pipeline, spec) for spec in ALL}
    async with (
        aiohttp.ClientSession() as http,
        http.get(endpoint(pipeline) + "/metrics") as resp,
    ):
        text = await resp.text()
    writes = samples(text, "movingdata_sink_writes_total")
    requests = samples(text, "movingdata_sink_requests_total")
    kms = samples(text, "movingdata_kms_requests_total")
    produced = {t: n for t, n in produced.items() if n}
    print(f"\nproduced {sum(produced.values())}: {produced}")
    print(f"sink writes {writes}")
    print(f"sink requests {requests}")
    print(f"kms requests {kms}")
    print(f"audit records {len(trail)}")
    # The lean chain: no audit copy of a step the sink derives from its chain event, one
    # merged upsert per object version and batch.
    assert produced.get("audit", 0) == 0, produced
    # ``audit tail`` still shows every step: derived from the chain's topics like the sink does.
    tail = pipeline.cli("audit", "tail", "--from-beginning", "--idle", "3", "--json")
    assert tail.returncode == 0, tail.stderr
    tailed = [json.loads(line) for line in tail.stdout.splitlines() if line.strip()]
    assert sorted(r["event_id"] for r in tailed) == sorted(r["event_id"] for r in trail)
