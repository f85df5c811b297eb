"""The store-digest shortcut for a write's own answer (``written_now``): no clock of another
host decides it, and the replica must exist (a stat) before it counts."""

import os
from datetime import timedelta

from schemas.events import ReplicaWritten
from tests.unit.agents.test_encrypt_one_pass import Target, accepted, stored, targets
from workers.agents import encrypt, verify
from workers.deps import Deps

__all__ = ["targets"]  # the fixture, used by name


async def written_to(deps: Deps, target: str) -> ReplicaWritten:
    event = await accepted(deps, os.urandom(5_000))
    _, *fresh = await encrypt.handle(event, deps)
    replica = next(o.event for o in fresh if o.event.target == target)  # type: ignore[attr-defined]
    assert isinstance(replica, ReplicaWritten) and replica.written_now
    return replica


async def test_a_write_s_own_answer_for_a_replica_gone_since_is_not_counted(
    deps: Deps, targets: dict[str, Target]
) -> None:
    azure = await written_to(deps, "azure")
    await targets["azure"].delete(azure.key)  # lost right after the write
    (verified,) = await verify.handle(azure, deps)
    assert verified.event.repaired_from == "s3"  # type: ignore[attr-defined]
    assert verified.event.mode == "read-back"  # type: ignore[attr-defined]
    assert await stored(targets["azure"], azure.key) == await stored(targets["s3"], azure.key)


async def test_a_write_s_own_answer_for_a_replica_of_another_size_is_not_counted(
    deps: Deps, targets: dict[str, Target]
) -> None:
    gcs = await written_to(deps, "gcs")

    async def shorter():  # type: ignore[no-untyped-def]
        yield (await stored(targets["gcs"], gcs.key))[:-1]

    await targets["gcs"].write(gcs.key, shorter())
    (verified,) = await verify.handle(gcs, deps)
    assert verified.event.repaired_from == "s3"  # type: ignore[attr-defined]


async def test_the_verifying_host_s_clock_does_not_decide_whether_an_answer_counts(
    deps: Deps, targets: dict[str, Target]
) -> None:
    """The event's time is the producing host's: a verifying host whose clock is an hour
    ahead (or behind) takes the write's own answer all the same, once a stat finds it."""
    for skew in (timedelta(hours=1), timedelta(hours=-1)):
        s3 = await written_to(deps, "s3")
        deps.now = lambda s3=s3, skew=skew: s3.produced_at + skew  # type: ignore[misc]
        (verified,) = await verify.handle(s3, deps)
        assert verified.event.mode == "store-digest"  # type: ignore[attr-defined]
        assert targets["s3"].asked == 0  # no digest asked: a stat only
