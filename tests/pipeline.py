"""Real worker processes against the local stack, isolated by a unique prefix per test.

Each pipeline gets its own topics, buckets, MongoDB database and source folder, so tests never
see each other's events.
"""

import contextlib
import hashlib
import json
import random
import re
import subprocess
import sys
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from tests.stores import remove_container
from tests.waiting import wait_for
from topics import ACCESS, ALL, RETRY, TopicSpec, delete_topics
from workers.broker import kafka_options
from workers.client.restore import restore_to_file
from workers.client.state import State
from workers.demo import start_worker, stop_worker, worker_env
from workers.deps import build_deps, prepare, target_url
from workers.settings import Settings, load_settings
from workers.stores import open_store

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

    async def workers_ready(self) -> bool:
        """Every worker started has finished a rebalance that included it (Faust logs "Worker
        ready" then): two members of a group started at once have both joined."""
        return all(
            "Worker ready" in path.read_text(errors="replace")
            for path in self.logs.glob("worker-*.log")
        )

    def stop_workers(self) -> None:
        for proc in self.workers:
            stop_worker(proc)

    def cli(self, *args: str, timeout_s: float = 300) -> subprocess.CompletedProcess[str]:
        """``movingdata ARGS`` as a user runs it, configured like this pipeline."""
        return subprocess.run(
            [MOVINGDATA, *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout_s,
            check=False,
        )

    def worker_logs(self) -> str:
        return "\n".join(p.read_text(errors="replace") for p in sorted(self.logs.glob("*.log")))


@pytest.fixture
def source_dir(tmp_path: Path) -> Path:
    path = tmp_path / "source"
    path.mkdir()
    return path


@pytest.fixture
def pipeline_overrides() -> dict[str, object]:
    """Extra settings for the pipeline under test (fault tests shorten timeouts)."""
    return {}


@pytest.fixture
async def pipeline(
    unique: str, source_dir: Path, tmp_path: Path, pipeline_overrides: dict[str, object]
) -> AsyncIterator[Pipeline]:
    settings = load_settings().model_copy(
        update={
            "topic_prefix": unique,
            "bucket": unique,
            "mongo_database": unique,
            "source_roots": (source_dir,),
            "source_buckets": (unique,),
            "kek_name": f"movingdata-{unique}",
            **pipeline_overrides,
        }
    )
    await prepare(settings)  # topics exist before any worker subscribes
    logs = tmp_path / "logs"
    logs.mkdir()
    env = worker_env(settings) | {"XDG_CONFIG_HOME": str(tmp_path / "config")}
    for variable in ("MOVINGDATA_API_URL", "MOVINGDATA_TOKEN", "MOVINGDATA_PROFILE"):
        env.pop(variable, None)  # the CLI of these tests runs in direct mode
    pipe = Pipeline(settings, env, logs)
    yield pipe
    pipe.stop_workers()
    await delete_topics(kafka_options(settings), settings.topic_prefix)
    state = State(settings)
    await state.client.drop_database(unique)
    await state.close()
    for target in settings.targets:
        store = open_store(target_url(target, settings), settings)
        await remove_container(store, target, settings.bucket, settings)


@pytest.fixture
async def state(pipeline: Pipeline) -> AsyncIterator[State]:
    st = State(pipeline.settings)
    yield st
    await st.close()


@pytest.fixture
def worker_all(pipeline: Pipeline) -> Iterator[subprocess.Popen[bytes]]:
    yield pipeline.start_worker("all")


def write_objects(
    folder: Path, count: int, seed: int = 7, largest: int = 64 * 1024
) -> dict[str, bytes]:
    """``count`` deterministic files of 1 B .. ``largest``; returns their bytes by name."""
    rng = random.Random(seed)
    files = {}
    for n in range(count):
        data = rng.randbytes(rng.randint(1, largest))
        (folder / f"o{n:04d}.bin").write_bytes(data)
        files[f"o{n:04d}.bin"] = data
    return files


async def messages_on(pipeline: Pipeline, spec: TopicSpec) -> int:
    """How many messages a topic of this pipeline holds."""
    name = spec.name(pipeline.settings.topic_prefix)
    consumer = AIOKafkaConsumer(**kafka_options(pipeline.settings))
    await consumer.start()
    try:
        parts = [TopicPartition(name, p) for p in range(pipeline.settings.topic_partitions)]
        ends = await consumer.end_offsets(parts)
        begins = await consumer.beginning_offsets(parts)
        return sum(ends[tp] - begins[tp] for tp in parts)
    finally:
        await consumer.stop()


async def group_lag(pipeline: Pipeline, group: str) -> int:
    """Messages on the chain's topics (not retry) that ``group`` has not committed yet.

    Partitions come from the broker (``describe_topics``), not from the consumer's metadata
    cache: ``consumer.topics()`` does not fill that cache, and a partition missing from it
    would count as no lag at all.
    """
    settings = pipeline.settings
    names = sorted(spec.name(settings.topic_prefix) for spec in ALL if spec not in (RETRY, ACCESS))
    admin = AIOKafkaAdminClient(**kafka_options(settings))
    consumer = AIOKafkaConsumer(**kafka_options(settings))
    await admin.start()
    await consumer.start()
    try:
        described = await admin.describe_topics(names)
        parts = [
            TopicPartition(t["topic"], p["partition"]) for t in described for p in t["partitions"]
        ]
        assert len(parts) == len(names) * settings.topic_partitions, described
        ends = await consumer.end_offsets(parts)
        committed = await admin.list_consumer_group_offsets(group)
        return sum(
            end - (committed[tp].offset if tp in committed else 0) for tp, end in ends.items()
        )
    finally:
        await consumer.stop()
        await admin.close()


def endpoint(pipeline: Pipeline) -> str:
    """The worker's /metrics address, from its log line ``worker endpoints``."""
    for line in pipeline.worker_logs().splitlines():
        if '"worker endpoints"' in line:
            return str(json.loads(line)["url"])
    raise AssertionError("no worker endpoints logged")


def samples(text: str, name: str) -> dict[str, float]:
    """``name{label="x"} v`` lines of a Prometheus exposition, by their one label's value."""
    pattern = re.compile(rf'^{name}\{{\w+="([^"]*)"\}} (\S+)$', re.M)
    return {label: float(value) for label, value in pattern.findall(text)}


async def snapshot(pipeline: Pipeline, state: State) -> dict[str, object]:
    """Everything a replay must leave unchanged: MongoDB documents and every stored replica."""
    db = state.db
    docs = {
        name: sorted([doc async for doc in db[name].find({})], key=lambda d: str(d["_id"]))
        for name in (
            "objects",
            "audit",
            "deadletters",
            "data_keys",
            "audit_heads",
            "names",
            "requests",
        )
    }
    deps = build_deps(pipeline.settings)
    stores = {}
    try:
        for target, store in deps.stores.items():
            stores[target] = {
                info.key: hashlib.sha256(
                    b"".join([c async for c in store.read(info.key)])
                ).hexdigest()
                async for info in store.list()
            }
    finally:
        await deps.close()
    return {"mongo": docs, "stores": stores}


def differences(after: object, before: object, path: str = "") -> list[str]:
    """Where two snapshots differ (dotted paths; list items by position or ``_id``)."""
    if isinstance(after, dict) and isinstance(before, dict):
        return [
            d
            for key in sorted({*after, *before}, key=str)
            for d in differences(after.get(key), before.get(key), f"{path}.{key}")
        ]
    if isinstance(after, list) and isinstance(before, list) and len(after) == len(before):
        return [
            d
            for n, (a, b) in enumerate(zip(after, before, strict=True))
            for d in differences(a, b, f"{path}[{a.get('_id', n) if isinstance(a, dict) else n}]")
        ]
    return [] if after == before else [f"{path}: {before!r} -> {after!r}"[:300]]


async def restore_all(
    pipeline: Pipeline, docs: list[tuple[dict, str]], folder: Path
) -> dict[str, bytes]:
    """Restore each (doc, target) into ``folder``; return the bytes by object name."""
    deps = build_deps(pipeline.settings)
    restored = {}
    try:
        for doc, target in docs:
            out = folder / f"restored-{doc['name']}"
            await restore_to_file(doc, deps.store(target), target, deps.data_keys, out)
            restored[doc["name"]] = out.read_bytes()
            out.unlink()
    finally:
        await deps.close()
    return restored


# The ok steps of one object's trail through the whole chain. ("replica.requested" is not
# counted: encrypt writes every target in one pass, and only a target it detached as down or
# slow is requested from replicate.)
EXPECTED_STEPS = {
    "object.accepted": 1,
    "object.encrypted": 1,
    "replica.written": 3,
    "replica.verified": 3,
    "replica.tiered": 3,
}


def steps(trail: list[dict[str, object]], version: int = 1) -> Counter[object]:
    """The chain's ok steps of one version in a trail (other records are not counted)."""
    return Counter(
        r["action"]
        for r in trail
        if r["outcome"] == "ok" and r["version"] == version and r["action"] in EXPECTED_STEPS
    )


async def audit_trails(state: State) -> dict[str, list[dict[str, object]]]:
    """Every object's audit records in chain order, read in one pass."""
    trails: dict[str, list[dict[str, object]]] = {}
    async for record in state.db["audit"].find({}):
        trails.setdefault(record["object_id"], []).append(record)
    return {k: sorted(v, key=lambda r: r["seq"]) for k, v in trails.items()}  # type: ignore[arg-type, return-value]


async def settled_trails(
    state: State, versions: list[tuple[str, int]]
) -> dict[str, list[dict[str, object]]]:
    """The trails once every (object, version) has all its steps (tiering follows
    verification, so a trail completes a moment after the last replica is verified), or as
    they are after 120 s: the caller's asserts say what is missing."""

    async def complete() -> bool:
        trails = await audit_trails(state)
        return all(steps(trails.get(o, []), v) == EXPECTED_STEPS for o, v in versions)

    with contextlib.suppress(TimeoutError):
        await wait_for(complete, timeout_s=120)
    return await audit_trails(state)
