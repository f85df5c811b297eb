"""Real worker processes against the local stack, isolated by a unique prefix per test.

Each pipeline gets its own topics, buckets, MongoDB database and source folder, so tests never
see each other's events.
"""

import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from workers.client import State
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
        with path.open("wb") as log:  # the child keeps its own descriptor
            proc = subprocess.Popen(
                [MOVINGDATA, "worker", "--agents", agents],
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.workers.append(proc)
        return proc

    def stop_workers(self) -> None:
        for proc in self.workers:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        for proc in self.workers:
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()

    def worker_logs(self) -> str:
        return "\n".join(p.read_text(errors="replace") for p in sorted(self.logs.glob("*.log")))


@pytest.fixture
def source_dir(tmp_path: Path) -> Path:
    path = tmp_path / "source"
    path.mkdir()
    return path


@pytest.fixture
async def pipeline(unique: str, source_dir: Path, tmp_path: Path) -> AsyncIterator[Pipeline]:
    overrides = {
        "MOVINGDATA_TOPIC_PREFIX": unique,
        "MOVINGDATA_BUCKET": unique,
        "MOVINGDATA_MONGO_DATABASE": unique,
        "MOVINGDATA_SOURCE_ROOTS": f'["{source_dir}"]',
        "MOVINGDATA_SOURCE_BUCKETS": f'["{unique}"]',
        "MOVINGDATA_HOME": str(load_settings().home),
    }
    env = {**os.environ, **overrides}
    settings = load_settings().model_copy(
        update={
            "topic_prefix": unique,
            "bucket": unique,
            "mongo_database": unique,
            "source_roots": (source_dir,),
            "source_buckets": (unique,),
        }
    )
    await prepare(settings)  # topics exist before any worker subscribes
    logs = tmp_path / "logs"
    logs.mkdir()
    pipe = Pipeline(settings, env, logs)
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
