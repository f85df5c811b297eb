"""Every worker's heartbeat: every ``MOVINGDATA_WORKER_HEARTBEAT_S`` a worker process records
itself in MongoDB's ``workers`` collection, one document per process (``_id`` host:pid): its
deployment's prefix, consumer group and stages, its readiness (``workers.health``: whether it
can serve, each dependency's state, never a reason), and what each of its stages handled since
it started and per second since its last beat. The dashboard's Fleet tab reads them
(``workers.dashboard.fleet``): a process that stops beating drops out of it after three
intervals; heartbeats a day old are removed by a worker that beats (at most once an hour).

Unlike the sink leader's jobs this runs in every worker, from its first second (an app task,
not a timer: a timer's first round waits an interval)."""

import asyncio
import logging
import os
import socket
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from prometheus_client import REGISTRY, Metric
from pymongo import AsyncMongoClient
from pymongo.errors import PyMongoError

from workers.settings import Settings

log = logging.getLogger("movingdata.heartbeat")

COLLECTION = "workers"
KEPT = timedelta(days=1)  # a heartbeat older than this is removed
PRUNE_EVERY_S = 3600.0
# Per stage: what it handled in all, or per second ("events": handled without a retry or a
# dead letter; "bytes": object bytes moved).
Totals = dict[str, dict[str, float]]


def totals(families: Iterable[Metric], stages: Sequence[str]) -> Totals:
    """Events handled (outcome ``ok``) and bytes moved per stage, from the metric families of
    this process (``movingdata_events_total``, ``movingdata_stage_bytes_total``)."""
    out: Totals = {stage: {"events": 0.0, "bytes": 0.0} for stage in stages}
    for family in families:
        for sample in family.samples:
            counts = out.get(sample.labels.get("stage", ""))
            if counts is None:
                continue
            if sample.name == "movingdata_events_total" and sample.labels["outcome"] == "ok":
                counts["events"] += sample.value
            elif sample.name == "movingdata_stage_bytes_total":
                counts["bytes"] += sample.value
    return out


def rates(before: Totals | None, now: Totals, seconds: float) -> Totals:
    """Per second from ``before`` to ``now``, ``seconds`` apart (0 with nothing before)."""
    if before is None or seconds <= 0:
        return {stage: dict.fromkeys(counts, 0.0) for stage, counts in now.items()}
    return {
        stage: {
            kind: max(0.0, value - before.get(stage, {}).get(kind, 0.0)) / seconds
            for kind, value in counts.items()
        }
        for stage, counts in now.items()
    }


def heartbeat(
    *,
    prefix: str,
    group: str,
    stages: Sequence[str],
    host: str,
    pid: int,
    started: datetime,
    at: datetime,
    every_s: float,
    readiness: Mapping[str, Any],
    handled: Totals,
    per_second: Totals,
) -> dict[str, Any]:
    """The document a worker records (``readiness`` is its ``/readyz`` body)."""
    return {
        "_id": f"{host}:{pid}",
        "prefix": prefix,
        "group": group,
        "stages": list(stages),
        "host": host,
        "pid": pid,
        "started_at": started,
        "at": at,
        "every_s": every_s,
        "ready": bool(readiness.get("ready")),
        "checks": dict(readiness.get("checks") or {}),
        "handled": handled,
        "rates": per_second,
    }


class Heartbeat:
    """One worker process's heartbeat; ``run`` is its app task."""

    def __init__(
        self,
        settings: Settings,
        group: str,
        stages: Sequence[str],
        ready: Callable[[], Awaitable[Mapping[str, Any]]],
    ) -> None:
        self.settings, self.group, self.stages, self.ready = settings, group, stages, ready
        self.host, self.pid = socket.gethostname(), os.getpid()
        self.started = datetime.now(UTC)
        self.before: tuple[float, Totals] | None = None
        self.pruned_at: float | None = None
        self.client: AsyncMongoClient[dict[str, Any]] | None = None

    async def beat(self) -> None:
        """Record this process now; a failure (the database away) waits for the next beat."""
        if self.client is None:  # inside the event loop that uses it
            self.client = AsyncMongoClient(self.settings.mongo_url, serverSelectionTimeoutMS=5000)
        collection = self.client[self.settings.mongo_database][COLLECTION]
        readiness = await self.ready()
        clock = time.monotonic()
        handled = totals(REGISTRY.collect(), self.stages)
        per_second = rates(
            self.before[1] if self.before else None,
            handled,
            clock - self.before[0] if self.before else 0.0,
        )
        self.before = (clock, handled)
        now = datetime.now(UTC)
        doc = heartbeat(
            prefix=self.settings.topic_prefix,
            group=self.group,
            stages=self.stages,
            host=self.host,
            pid=self.pid,
            started=self.started,
            at=now,
            every_s=self.settings.worker_heartbeat_s,
            readiness=readiness,
            handled=handled,
            per_second=per_second,
        )
        try:
            await collection.replace_one({"_id": doc["_id"]}, doc, upsert=True)
            if self.pruned_at is None or clock - self.pruned_at >= PRUNE_EVERY_S:
                await collection.delete_many({"at": {"$lt": now - KEPT}})
                self.pruned_at = clock
        except PyMongoError as exc:
            log.warning("heartbeat not recorded", extra={"error": str(exc)[:200]})

    async def run(self) -> None:
        while True:
            await self.beat()
            await asyncio.sleep(self.settings.worker_heartbeat_s)

    async def close(self) -> None:
        if self.client is not None:
            await self.client.close()
