"""A folder put as a user puts it, then put again unchanged: the two times rclone users know.

    .venv/bin/python -m bench.puts [--files 1000]

Through the client as ``movingdata put FOLDER --wait`` runs it (staged uploads, requests,
waiting for every version verified in S3, Azure and GCS) with one ``--agents all`` worker;
then the same folder again, which must come back ``unchanged`` for every file and write
nothing. Files are 4-64 KiB (workload a's sizes). Needs the local stack (`make stack`).
"""

import argparse
import asyncio
import time
import uuid
from typing import Any

from bench.report import isolated, remove_run, write_json
from bench.workloads import KiB, Workload, materialise
from schemas.events import Placement
from workers.client.identity import cli_actor
from workers.client.puts import files_to_put, put_files, wait_puts
from workers.client.state import State
from workers.demo import start_worker, stop_worker
from workers.deps import prepare
from workers.settings import Settings, load_settings


async def timed_put(settings: Settings, folder: Any, state: State) -> tuple[float, dict[str, int]]:
    placement = Placement(name="-", targets=settings.targets, tenant="bench")  # type: ignore[arg-type]
    began = time.monotonic()
    sent = await put_files(
        settings,
        files_to_put([folder]),
        lambda n: placement.model_copy(update={"name": n}),
        actor=cli_actor(),
    )
    results = await wait_puts(state, [s.request for s in sent], timeout_s=1800)
    seconds = time.monotonic() - began
    outcomes: dict[str, int] = {}
    for result in results:
        outcomes[result.outcome] = outcomes.get(result.outcome, 0) + 1
    return seconds, outcomes


async def run(base: Settings, files: int) -> dict[str, Any]:
    name = f"pu{uuid.uuid4().hex[:8]}"
    folder = materialise(Workload(f"puts{files}", files, 4 * KiB, 64 * KiB), base.home / "bench")
    settings = isolated(base, name, folder, kek_name=f"movingdata-{name}")
    await prepare(settings)
    worker = start_worker(settings, base.home / "bench" / f"{name}-worker.log")
    state = State(settings)
    try:
        first, first_outcomes = await timed_put(settings, folder, state)
        again, again_outcomes = await timed_put(settings, folder, state)
    finally:
        stop_worker(worker)
        await remove_run(settings, state)
    return {
        "files": files,
        "first_put_s": round(first, 1),
        "first_put_outcomes": first_outcomes,
        "unchanged_put_s": round(again, 1),
        "unchanged_put_outcomes": again_outcomes,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--files", type=int, default=1000)
    result = asyncio.run(run(load_settings(), parser.parse_args().files))
    print(result)
    write_json("puts", result)


if __name__ == "__main__":
    main()
