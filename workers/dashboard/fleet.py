"""The Fleet tab: one row per stage (its consumer groups, their members, lag, the workers that
run it, how many are ready, their throughput) and one per worker process.

From the broker: each consumer group of the deployment (named after its prefix and stages,
``workers.app``), its state, members and committed offsets. From MongoDB: the workers'
heartbeats (``workers.jobs.heartbeat``). The rows are pure functions of both."""

import asyncio
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.protocol.admin import DescribeGroupsRequest_v1, DescribeGroupsRequest_v2
from aiokafka.protocol.api import Request

from topics import ALL, RETRY
from workers.app import CHAIN, SINK_TOPICS, STAGES
from workers.broker import kafka_options
from workers.settings import Settings

Doc = dict[str, Any]
STALE_AFTER = 3  # heartbeat intervals without a beat: the process is gone
UNITS = ("B", "KiB", "MiB", "GiB", "TiB", "PiB")


def human_bytes(size: float | None) -> str:
    """A size in binary units: ``512 B``, ``1.5 KiB``, ``20.0 MiB`` (None: empty)."""
    if size is None:
        return ""
    value = float(size)
    for unit in UNITS:
        if unit == "B" and abs(value) < 1024:
            return f"{int(value)} B"
        if unit != "B" and (round(abs(value), 1) < 1024 or unit == UNITS[-1]):
            return f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")


@dataclass(frozen=True, slots=True)
class Group:
    """A consumer group of the deployment: its stages, state, members and lag per topic."""

    name: str
    stages: tuple[str, ...]
    state: str
    members: int
    lag: Mapping[str, int]


def stages_of(group: str, prefix: str, stages: Collection[str]) -> tuple[str, ...] | None:
    """The stages a group of this deployment runs (``<prefix>-<stage>+<stage>...``), or None
    for a group that is not a worker's."""
    if not group.startswith(f"{prefix}-"):
        return None
    named = tuple(group.removeprefix(f"{prefix}-").split("+"))
    return named if named and set(named) <= set(stages) else None


def consumed(prefix: str) -> dict[str, set[str]]:
    """The topics each stage consumes, as ``workers.app.build_app`` subscribes it."""
    topics = {stage: {spec.name(prefix) for spec, _, _ in CHAIN.get(stage, [])} for stage in STAGES}
    topics["retry"] = {RETRY.name(prefix)}
    topics["sink"] = {spec.name(prefix) for spec in SINK_TOPICS}
    return topics


def live(beats: Iterable[Doc], now: datetime) -> list[Doc]:
    """The heartbeats of processes still beating (seen within three of their intervals)."""
    alive = []
    for beat in beats:
        at = beat["at"] if beat["at"].tzinfo else beat["at"].replace(tzinfo=UTC)
        if (now - at).total_seconds() <= STALE_AFTER * float(beat.get("every_s") or 0):
            alive.append(beat)
    return alive


def group_label(stages: Sequence[str], every: Sequence[str]) -> str:
    return "all stages" if set(stages) == set(every) else "+".join(stages)


def not_answering(beats: Iterable[Doc]) -> str:
    """The dependencies some of these workers could not reach at their last check."""
    down = {dep for b in beats for dep, state in (b.get("checks") or {}).items() if state != "ok"}
    return ", ".join(sorted(down))


def stage_rows(
    stages: Sequence[str],
    consumes: Mapping[str, Collection[str]],
    groups: Sequence[Group],
    beats: Iterable[Doc],
    now: datetime,
) -> list[dict[str, Any]]:
    """One row per stage: its groups (state, members), lag on the topics it consumes, the live
    workers running it, how many are ready, and their events and bytes per second."""
    alive = live(beats, now)
    rows = []
    for stage in stages:
        mine = [g for g in groups if stage in g.stages]
        workers = [b for b in alive if stage in b.get("stages", ())]
        ready = sum(1 for b in workers if b.get("ready"))
        rates = [(b.get("rates") or {}).get(stage) or {} for b in workers]
        rows.append(
            {
                "stage": stage,
                "workers": len(workers),
                "ready": f"{ready}/{len(workers)}",
                "consumers": sum(g.members for g in mine),
                "lag": sum(g.lag.get(t, 0) for g in mine for t in consumes.get(stage, ())),
                "events/s": round(sum(r.get("events", 0.0) for r in rates), 1),
                "throughput": f"{human_bytes(sum(r.get('bytes', 0.0) for r in rates))}/s",
                "groups": ", ".join(f"{group_label(g.stages, stages)} ({g.state})" for g in mine),
                "not answering": not_answering(workers),
            }
        )
    return rows


def worker_rows(beats: Iterable[Doc], stages: Sequence[str], now: datetime) -> list[dict[str, Any]]:
    """One row per live worker process: where it runs, its stages, readiness, last beat."""
    rows = []
    for beat in sorted(live(beats, now), key=lambda b: (b.get("group", ""), b["_id"])):
        at = beat["at"] if beat["at"].tzinfo else beat["at"].replace(tzinfo=UTC)
        rates = (beat.get("rates") or {}).values()
        rows.append(
            {
                "worker": beat["_id"],
                "stages": group_label(beat.get("stages", []), stages),
                "ready": "yes" if beat.get("ready") else "no",
                "not answering": not_answering([beat]),
                "events/s": round(sum(r.get("events", 0.0) for r in rates), 1),
                "throughput": f"{human_bytes(sum(r.get('bytes', 0.0) for r in rates))}/s",
                "last beat (s ago)": round((now - at).total_seconds()),
            }
        )
    return rows


class DescribeGroups(Request[DescribeGroupsRequest_v1 | DescribeGroupsRequest_v2]):
    """DescribeGroups at v1 or v2: aiokafka 0.14 reads a v3 answer with the v2 schema, so its
    ``describe_consumer_groups`` fails (Kafka 4 has no v0)."""

    API_KEY = 15

    def __init__(self, groups: list[str]) -> None:
        self.groups = groups

    def build(
        self, request_struct_class: type[DescribeGroupsRequest_v1 | DescribeGroupsRequest_v2]
    ) -> DescribeGroupsRequest_v1 | DescribeGroupsRequest_v2:
        return request_struct_class(self.groups)


async def read_groups(settings: Settings, stages: Collection[str]) -> list[Group]:
    """Every worker group of this deployment: state, members, lag per topic."""
    prefix = settings.topic_prefix
    admin = AIOKafkaAdminClient(**kafka_options(settings))
    consumer = AIOKafkaConsumer(**kafka_options(settings))
    await admin.start()
    await consumer.start()
    try:
        names = sorted(
            name
            for name, _ in await admin.list_consumer_groups()
            if stages_of(name, prefix, stages) is not None
        )
        by_coordinator: dict[int, list[str]] = {}
        for name in names:
            by_coordinator.setdefault(await admin.find_coordinator(name), []).append(name)
        described: dict[str, tuple[str, int]] = {}
        for node, asked in by_coordinator.items():
            answer = await admin._send_request(DescribeGroups(asked), node)
            for error, name, state, _type, _protocol, members in answer.groups:
                described[name] = (state if error == 0 else f"error {error}", len(members))
        topics = await admin.describe_topics([spec.name(prefix) for spec in ALL])
        parts = [
            TopicPartition(t["topic"], p["partition"]) for t in topics for p in t["partitions"]
        ]
        ends = await consumer.end_offsets(parts) if parts else {}
        groups = []
        for name in names:
            committed = await admin.list_consumer_group_offsets(name)
            lag: dict[str, int] = {}
            for tp, offset in committed.items():
                if offset.offset >= 0:
                    lag[tp.topic] = lag.get(tp.topic, 0) + max(0, ends.get(tp, 0) - offset.offset)
            state, members = described.get(name, ("Unknown", 0))
            group_stages = stages_of(name, prefix, stages) or ()
            groups.append(Group(name, group_stages, state, members, lag))
        return groups
    finally:
        await consumer.stop()
        await admin.close()


def fleet(settings: Settings, stages: Collection[str]) -> list[Group]:
    return asyncio.run(read_groups(settings, stages))
