"""Once-per-group timers run on the worker holding partition 0 of the group's first topic."""

from types import SimpleNamespace
from typing import Any

from aiokafka import TopicPartition

from workers.app import leads, when


def app_holding(*partitions: TopicPartition) -> Any:
    return SimpleNamespace(consumer=SimpleNamespace(assignment=lambda: set(partitions)))


def test_the_leader_holds_partition_zero_of_the_first_topic() -> None:
    assert leads(app_holding(TopicPartition("p.accepted", 0)), "p.accepted")
    assert not leads(app_holding(TopicPartition("p.accepted", 1)), "p.accepted")
    assert not leads(app_holding(TopicPartition("p.verified", 0)), "p.accepted")
    assert not leads(app_holding(), "p.accepted")  # before the first assignment


async def test_a_job_runs_only_while_its_condition_holds() -> None:
    ran: list[int] = []
    holding = [False]

    async def job() -> None:
        ran.append(1)

    timer = when(lambda: holding[0], job)
    await timer()
    holding[0] = True
    await timer()
    assert ran == [1]
