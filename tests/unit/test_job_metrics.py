"""The metrics alerts read beyond the pipeline's counters: the sink leader's jobs (failed
rounds, last success) and the consumer lag a worker serves (its own partitions only)."""

import time
from typing import Any

import aiohttp
from prometheus_client import REGISTRY
from pymongo.errors import AutoReconnect

from workers import metrics
from workers.client.state import State
from workers.jobs.runner import StateJob
from workers.settings import Settings


def sample(name: str, **labels: str) -> float | None:
    return REGISTRY.get_sample_value(name, labels)


async def test_a_jobs_failed_round_is_counted_and_a_good_one_timed(tmp_path: Any) -> None:
    outcomes: list[BaseException | None] = [AutoReconnect("database away"), None]

    async def job(_: Settings, __: State) -> int:
        outcome = outcomes.pop(0)
        if outcome is not None:
            raise outcome
        return 0

    runner = StateJob(Settings(home=tmp_path), job, "unit job", "done", "unit")
    runner.state = object()  # type: ignore[assignment]  # no database: the job is a stand-in
    failed = sample("movingdata_job_failures_total", task="unit") or 0.0
    await runner.run()
    assert sample("movingdata_job_failures_total", task="unit") == failed + 1
    assert sample("movingdata_job_last_success_timestamp_seconds", task="unit") is None
    before = time.time()
    await runner.run()
    assert sample("movingdata_job_failures_total", task="unit") == failed + 1
    succeeded = sample("movingdata_job_last_success_timestamp_seconds", task="unit")
    assert succeeded is not None and before <= succeeded <= time.time()


async def test_lag_is_served_for_the_partitions_held_now_only() -> None:
    held = [{("t.lag", 0): 5, ("t.lag", 1): 3}, {("t.lag", 1): 2}]  # partition 0 revoked

    async def ready() -> dict[str, object]:
        return {"ready": True, "checks": {}}

    runner = await metrics.serve("127.0.0.1", 0, ready, lambda: held.pop(0))
    port = runner.addresses[0][1]
    try:
        async with aiohttp.ClientSession() as http:
            for expected in ({"0": 5.0, "1": 3.0}, {"1": 2.0}):
                async with http.get(f"http://127.0.0.1:{port}/metrics") as response:
                    text = await response.text()
                served = {
                    line.split('partition="')[1].split('"')[0]: float(line.rsplit(" ", 1)[1])
                    for line in text.splitlines()
                    if line.startswith("movingdata_consumer_lag{") and 't.lag"' in line
                }
                assert served == expected
    finally:
        await runner.cleanup()
