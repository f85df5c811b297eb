"""A worker's heartbeat (``workers.jobs.heartbeat``): what it counts, its rates, the document
it records (readiness without reasons), and that a database away costs a log line only."""

import logging
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry, Counter
from pymongo.errors import AutoReconnect

from workers.jobs.heartbeat import COLLECTION, Heartbeat, heartbeat, rates, totals
from workers.settings import Settings


def test_totals_count_each_stages_handled_events_and_bytes() -> None:
    registry = CollectorRegistry()
    events = Counter("movingdata_events", "", ["stage", "outcome"], registry=registry)
    moved = Counter("movingdata_stage_bytes", "", ["stage"], registry=registry)
    events.labels("encrypt", "ok").inc(3)
    events.labels("encrypt", "retry").inc(5)  # not handled (yet)
    events.labels("verify", "ok").inc(7)  # not this worker's stage
    moved.labels("encrypt").inc(4096)
    assert totals(registry.collect(), ["encrypt", "sink"]) == {
        "encrypt": {"events": 3.0, "bytes": 4096.0},
        "sink": {"events": 0.0, "bytes": 0.0},
    }


def test_rates_per_second_since_the_last_beat() -> None:
    now = {"encrypt": {"events": 30.0, "bytes": 3000.0}}
    assert rates(None, now, 0.0) == {"encrypt": {"events": 0.0, "bytes": 0.0}}
    before = {"encrypt": {"events": 0.0, "bytes": 1500.0}}
    assert rates(before, now, 15.0) == {"encrypt": {"events": 2.0, "bytes": 100.0}}
    assert rates({"encrypt": {"events": 50.0, "bytes": 0.0}}, now, 15.0)["encrypt"]["events"] == 0


def test_the_document_holds_readiness_states_not_reasons() -> None:
    at = datetime(2026, 12, 7, tzinfo=UTC)
    body = {"ready": False, "checks": {"broker": "ok", "kms": "timeout"}, "required": ["kms"]}
    doc = heartbeat(
        prefix="md", group="md-sink", stages=["sink"], host="h", pid=7, started=at, at=at,
        every_s=30.0, readiness=body, handled={}, per_second={},
    )  # fmt: skip
    assert doc["_id"] == "h:7" and doc["prefix"] == "md" and doc["group"] == "md-sink"
    assert (doc["ready"], doc["checks"]) == (False, {"broker": "ok", "kms": "timeout"})


class Collection:
    """A MongoDB collection that records what is sent to it (or refuses it)."""

    def __init__(self, refuse: bool = False) -> None:
        self.refuse = refuse
        self.calls: list[tuple[Any, ...]] = []

    async def replace_one(self, query: dict[str, Any], doc: dict[str, Any], upsert: bool) -> None:
        if self.refuse:
            raise AutoReconnect("database away")
        self.calls.append(("replace_one", query, doc, upsert))

    async def delete_many(self, query: dict[str, Any]) -> None:
        self.calls.append(("delete_many", query))


async def test_each_beat_records_the_worker_and_prunes_at_most_hourly(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    async def ready() -> dict[str, Any]:
        return {"ready": True, "checks": {"broker": "ok"}}

    settings = Settings(home=tmp_path, topic_prefix="md", worker_heartbeat_s=5.0)
    beat = Heartbeat(settings, "md-encrypt", ["encrypt"], ready)
    collection = Collection()
    beat.client = {settings.mongo_database: {COLLECTION: collection}}  # type: ignore[assignment]
    await beat.beat()
    await beat.beat()
    kinds = [c[0] for c in collection.calls]
    assert kinds == ["replace_one", "delete_many", "replace_one"]
    _, query, doc, upsert = collection.calls[2]
    assert upsert and query == {"_id": f"{beat.host}:{beat.pid}"} == {"_id": doc["_id"]}
    assert (doc["stages"], doc["every_s"], doc["ready"]) == (["encrypt"], 5.0, True)
    assert set(doc["rates"]) == {"encrypt"}

    beat.client = {settings.mongo_database: {COLLECTION: Collection(refuse=True)}}  # type: ignore[assignment]
    with caplog.at_level(logging.WARNING, "movingdata.heartbeat"):
        await beat.beat()  # no exception: the next beat tries again
    assert "heartbeat not recorded" in caplog.text
