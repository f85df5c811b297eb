"""Real worker processes against the local stack, isolated by a unique prefix per test.

Each pipeline gets its own topics, buckets, MongoDB database and source folder, so tests never
see each other's events.
"""

import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from workers.client import State
from workers.demo import start_worker, stop_worker, worker_env
from workers.deps import prepare
from workers.settings import Settings, load_settings

MOVINGDATA = str(Path(sys.executable).parent / "movingdata")


@dataclass
class Pipeline:
    """Settings of an isolated chain plus the worker processes running it."""

    settings: Settings
    env: dict[str, str]
    logs: Path
    workers: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def start_worker(self, agents: str = "all") -> subprocess.Popen[bytes]:
        path = self.logs / f"worker-{len(self.workers)}-{agents.replace(',', '+')}.log"
        proc = start_worker(self.settings, path, agents)
        self.workers.append(proc)
        return proc

    def stop_workers(self) -> None:
        for proc in self.workers:
            stop_worker(proc)

    def worker_logs(self) -> str:
        return "\n".join(p.read_text(errors="replace") for p in sorted(self.logs.glob("*.log")))


@pytest.fixture
def source_dir(tmp_path: Path) -> Path:
    path = tmp_path / "source"
    path.mkdir()
    return path


@pytest.fixture
async def pipeline(unique: str, source_dir: Path, tmp_path: Path) -> AsyncIterator[Pipeline]:
    settings = load_settings().model_copy(
        update={
            "topic_prefix": unique,
            "bucket": unique,
            "mongo_database": unique,
            "source_roots": (source_dir,),
            "source_buckets": (unique,),
            "kek_name": f"movingdata-{unique}",
        }
    )
    await prepare(settings)  # topics exist before any worker subscribes
    logs = tmp_path / "logs"
    logs.mkdir()
    pipe = Pipeline(settings, worker_env(settings), logs)
    yield pipe
    pipe.stop_workers()
    state = State(settings)
    await state.client.drop_database(unique)
    await state.close()


@pytest.fixture
async def state(pipeline: Pipeline) -> AsyncIterator[State]:
    st = State(pipeline.settings)
    yield st
    await st.close()


@pytest.fixture
def worker_all(pipeline: Pipeline) -> Iterator[subprocess.Popen[bytes]]:
    yield pipeline.start_worker("all")
