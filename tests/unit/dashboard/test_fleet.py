"""The Fleet tab's rows (``workers.dashboard.fleet``): one per stage from the broker's groups
and the workers' heartbeats, one per live worker; sizes in binary units."""

import types
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, cast

import pytest

from topics import ACCEPTED, VERIFIED
from workers.app import STAGES, build_app
from workers.dashboard.fleet import (
    Group,
    consumed,
    human_bytes,
    live,
    stage_rows,
    stages_of,
    worker_rows,
)
from workers.deps import Deps
from workers.settings import Settings

NOW = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)
P = "md"


@pytest.mark.parametrize(
    ("size", "shown"),
    [
        (None, ""),
        (0, "0 B"),
        (1023, "1023 B"),
        (1024, "1.0 KiB"),
        (1536, "1.5 KiB"),
        (1024**2 - 1, "1.0 MiB"),  # not "1024.0 KiB"
        (20 * 1024**2, "20.0 MiB"),
        (3.25 * 1024**3, "3.2 GiB"),
        (5 * 1024**6, "5120.0 PiB"),
    ],
)
def test_sizes_are_in_binary_units(size: float | None, shown: str) -> None:
    assert human_bytes(size) == shown


def test_a_groups_stages_come_from_its_name() -> None:
    assert stages_of(f"{P}-encrypt", P, STAGES) == ("encrypt",)
    assert stages_of(f"{P}-{'+'.join(STAGES)}", P, STAGES) == tuple(STAGES)
    assert stages_of(f"{P}-encrypt+nothing", P, STAGES) is None  # not a worker's group
    assert stages_of("other-encrypt", P, STAGES) is None  # another deployment's


def beat(name: str, stages: list[str], ago_s: float, **fields: Any) -> dict[str, Any]:
    at = (NOW - timedelta(seconds=ago_s)).replace(tzinfo=None)  # MongoDB's naive UTC
    return {"_id": name, "stages": stages, "at": at, "every_s": 30.0, **fields}


def test_a_worker_is_live_for_three_of_its_intervals() -> None:
    beats = [beat("a", ["ingest"], 89), beat("b", ["ingest"], 91), beat("c", ["ingest"], 0)]
    assert [b["_id"] for b in live(beats, NOW)] == ["a", "c"]


def test_one_row_per_stage_from_its_groups_and_workers() -> None:
    consumes = consumed(P)
    groups = [
        Group(f"{P}-{'+'.join(STAGES)}", tuple(STAGES), "Stable", 1,
              {ACCEPTED.name(P): 5, VERIFIED.name(P): 2}),
        Group(f"{P}-encrypt", ("encrypt",), "PreparingRebalance", 2, {ACCEPTED.name(P): 3}),
    ]  # fmt: skip
    beats = [
        beat("host-a:1", list(STAGES), 10, ready=True, checks={"broker": "ok"},
             rates={"encrypt": {"events": 2.0, "bytes": 1024.0**2}}),
        beat("host-b:2", ["encrypt"], 20, ready=False,
             checks={"broker": "ok", "store:gcs": "unreachable", "kms": "timeout"},
             rates={"encrypt": {"events": 1.0, "bytes": 512.0 * 1024}}),
        beat("host-c:3", ["encrypt"], 600, ready=True, rates={"encrypt": {"events": 9.0}}),
    ]  # fmt: skip
    rows = {r["stage"]: r for r in stage_rows(STAGES, consumes, groups, beats, NOW)}
    assert list(rows) == list(STAGES)
    assert rows["encrypt"] == {
        "stage": "encrypt",
        "workers": 2,  # host-c is gone
        "ready": "1/2",
        "consumers": 3,
        "lag": 8,  # accepted, in both of its groups
        "events/s": 3.0,
        "throughput": "1.5 MiB/s",
        "groups": "all stages (Stable), encrypt (PreparingRebalance)",
        "not answering": "kms, store:gcs",
    }
    assert (rows["sink"]["lag"], rows["sink"]["workers"], rows["sink"]["ready"]) == (7, 1, "1/1")
    assert rows["verify"]["lag"] == 0  # verify reads replicated.*, not verified
    assert rows["tier"]["lag"] == 2  # tier reads verified
    assert rows["sink"]["throughput"] == "0 B/s"


def test_no_group_and_no_worker_is_a_row_of_zeros() -> None:
    (row,) = stage_rows(["retry"], consumed(P), [], [], NOW)
    assert (row["workers"], row["ready"], row["consumers"], row["lag"]) == (0, "0/0", 0, 0)
    assert (row["groups"], row["not answering"]) == ("", "")


def test_one_row_per_live_worker() -> None:
    beats = [
        beat("h:2", ["encrypt"], 5, ready=False, checks={"kms": "timeout"},
             rates={"encrypt": {"events": 1.5, "bytes": 2048.0}}),
        beat("h:1", list(STAGES), 40, ready=True, checks={"kms": "ok"}, rates={}),
        beat("h:0", ["sink"], 4000, ready=True),
    ]  # fmt: skip
    rows = worker_rows(beats, STAGES, NOW)
    assert [r["worker"] for r in rows] == ["h:1", "h:2"]
    assert rows[0] | {"last beat (s ago)": 0} == {
        "worker": "h:1", "stages": "all stages", "ready": "yes", "not answering": "",
        "events/s": 0.0, "throughput": "0 B/s", "last beat (s ago)": 0,
    }  # fmt: skip
    assert rows[1]["last beat (s ago)"] == 5 and rows[1]["not answering"] == "kms"
    assert rows[1]["throughput"] == "2.0 KiB/s"


def test_the_topics_of_each_stage_are_those_its_worker_subscribes_to(tmp_path: Path) -> None:
    async def close() -> None:
        return None

    deps = cast(Deps, types.SimpleNamespace(stores={}, close=close))
    consumes = consumed(P)
    assert set(consumes) == set(STAGES)
    for stage in STAGES:
        settings = Settings(
            home=tmp_path / stage, topic_prefix=P, kek_provider="local", openbao_sink_token="x"
        )
        app = build_app(settings, [stage], deps)
        subscribed = {t for agent in app.agents.values() for t in agent.channel.topics}
        assert subscribed == consumes[stage], stage
