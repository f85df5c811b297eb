"""The delete agent deletes only what lies under the version's own prefix: a request naming
any other key, or a removal aimed at another prefix, is refused whole and deletes nothing."""

from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest

from schemas.events import DeleteRequest, ReplicaRemoval, event_id, object_id_for
from workers.agents import delete
from workers.catalog import MemoryCatalog
from workers.deps import Deps, version_prefix
from workers.errors import Permanent

OBJECT = object_id_for("default", "mine.txt")
OTHER = object_id_for("other", "theirs.txt")
MINE = version_prefix("default", OBJECT, 2)
KEPT = (
    version_prefix("other", OTHER, 1) + "w1",  # another tenant's object
    version_prefix("default", OBJECT, 1) + "w1",  # another version of the same object
    "_staging/default/request-1",  # a staged upload
)


async def one_chunk(data: bytes) -> AsyncIterator[bytes]:
    yield data


def envelope(kind: str) -> dict[str, object]:
    return {
        "kind": kind,
        "v": 1,
        "event_id": event_id(kind, OBJECT, 2, "test"),
        "object_id": OBJECT,
        "version": 2,
        "correlation_id": "request-2",
        "produced_at": datetime.now(UTC),
    }


def delete_request(keys: tuple[str, ...]) -> DeleteRequest:
    return DeleteRequest(
        **envelope(DeleteRequest.KIND), mode="delete", tenant="default", targets=("s3",), keys=keys
    )


def removal(prefix: str, keys: tuple[str, ...] = ()) -> ReplicaRemoval:
    return ReplicaRemoval(
        **envelope(ReplicaRemoval.KIND), mode="delete", target="s3", prefix=prefix, keys=keys
    )


@pytest.fixture
async def stored(deps: Deps) -> list[str]:
    """Keys of other versions, objects and the staging area, and one of this version."""
    keys = [*KEPT, MINE + "w1"]
    for key in keys:
        await deps.store("s3").write(key, one_chunk(b"bytes"))
    return keys


async def keys_left(deps: Deps) -> set[str]:
    return {info.key async for info in deps.store("s3").list()}


@pytest.mark.parametrize("foreign", KEPT)
async def test_a_delete_request_naming_a_key_outside_its_version_is_refused(
    deps: Deps, stored: list[str], foreign: str
) -> None:
    with pytest.raises(Permanent, match="outside the version's own prefix"):
        await delete.tombstone(delete_request((MINE + "w1", foreign)), deps)

    assert await deps.registry.get(OBJECT, 2) is None  # not even tombstoned
    assert await keys_left(deps) == set(stored)


@pytest.mark.parametrize(
    "keys", [(KEPT[0],), (MINE + "../../v1/w1",), (MINE + "a//b",), ("",)], ids=str
)
async def test_a_removal_naming_a_key_outside_its_prefix_deletes_nothing(
    deps: Deps, stored: list[str], keys: tuple[str, ...]
) -> None:
    with pytest.raises(Permanent, match="outside the version's own prefix"):
        await delete.remove(removal(MINE, keys), deps)

    assert await keys_left(deps) == set(stored)


@pytest.mark.parametrize(
    "prefix", ["", "default/", version_prefix("default", OBJECT, 1), "_staging/", "x/y/"]
)
async def test_a_removal_of_another_prefix_deletes_nothing(
    deps: Deps, stored: list[str], prefix: str
) -> None:
    with pytest.raises(Permanent, match="not the version's own"):
        await delete.remove(removal(prefix), deps)

    assert await keys_left(deps) == set(stored)


async def test_a_removal_of_its_own_version_deletes_exactly_it(
    deps: Deps, stored: list[str]
) -> None:
    (emitted,) = await delete.remove(removal(MINE, (MINE + "w1",)), deps)

    assert emitted.event.keys_removed == 1  # type: ignore[attr-defined]
    assert await keys_left(deps) == set(KEPT)


async def test_a_held_version_is_refused_before_its_tombstone(
    deps: Deps, stored: list[str]
) -> None:
    """A request past the doors (a replay, one sent before the hold) is dead-lettered with
    the hold named; once the legal hold is released the same request tombstones."""
    assert isinstance(deps.catalog, MemoryCatalog)
    deps.catalog.documents[OBJECT, 2] = {"name": "mine.txt"}
    hold = {"tenant": "default", "kind": "prefix", "prefix": "mine", "legal_hold": True}
    deps.catalog.hold_docs.append(hold)
    with pytest.raises(Permanent, match="held: a legal hold on prefix 'mine'"):
        await delete.tombstone(delete_request((MINE + "w1",)), deps)
    assert await deps.registry.get(OBJECT, 2) is None

    hold["legal_hold"] = False
    assert await delete.tombstone(delete_request((MINE + "w1",)), deps)
    record = await deps.registry.get(OBJECT, 2)
    assert record is not None and record.tombstone == "deleted"
