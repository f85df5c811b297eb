"""``ls --state`` lists the names whose newest version is in that state, page by page, read
by the state's equality (what FerretDB answers from an index) on the real server."""

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import pytest

from schemas.events import object_id_for
from workers.agents.sink import create_indexes
from workers.client.state import State
from workers.core.versions import doc_id
from workers.settings import Settings


@pytest.fixture
async def state(settings: Settings, unique: str) -> AsyncIterator[State]:
    ours = settings.model_copy(update={"mongo_database": unique})
    found = State(ours)
    await create_indexes(found.db)
    yield found
    await found.client.drop_database(unique)
    await found.close()


def version(name: str, number: int, state: str | None) -> dict[str, Any]:
    object_id = object_id_for("default", name)
    doc = {
        "_id": doc_id(object_id, number),
        "object_id": object_id,
        "version": number,
        "tenant": "default",
        "name": name,
        "created_at": datetime.now(UTC),
    }
    return doc | ({"state": state} if state else {})


async def test_a_state_lists_the_names_whose_newest_version_is_in_it(state: State) -> None:
    await state.db["objects"].insert_many(
        [
            version("a", 1, "failed"),
            version("a", 2, "verified"),  # a's newest is verified: a is not failed
            version("b", 1, "failed"),
            version("b", 2, "failed"),
            version("c", 1, "verified"),
            version("e", 1, "failed"),
            version("e", 3, "verified"),  # a gap: version 2 handed out, never recorded
            version("d", 1, None),  # pending, its state not written yet
            *[version(f"f{n}", 1, "failed") for n in range(5)],
        ]
    )
    page = await state.listing(tenant="default", state="failed", limit=3)
    assert [(d["name"], d["version"]) for d in page.rows] == [("b", 2), ("f0", 1), ("f1", 1)]
    rest = await state.listing(tenant="default", state="failed", limit=3, after=page.after)
    assert [d["name"] for d in rest.rows] == ["f2", "f3", "f4"] and rest.after is None
    verified = await state.listing(tenant="default", state="verified")
    assert [d["name"] for d in verified.rows] == ["a", "c", "e"]
    pending = await state.listing(tenant="default", state="pending")
    assert [d["name"] for d in pending.rows] == ["d"]
    assert [
        d["name"]
        for d in (await state.listing(tenant="default", prefix="f", state="failed", limit=2)).rows
    ] == ["f0", "f1"]
