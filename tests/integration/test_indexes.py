"""Every query the CLI makes is answered from an index (the local FerretDB build included).

The queries are the ones the client code really sends, captured with pymongo's command
monitoring, then explained by the server: a plan that scans the collection fails the test.
"""

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import pytest
from pymongo import AsyncMongoClient, monitoring

from schemas.events import object_id_for
from workers.agents.sink import create_indexes
from workers.api import ratelimit
from workers.catalog import MongoCatalog, recent_versions
from workers.client import links
from workers.client.holds import listed
from workers.client.ops import refusals
from workers.client.state import State
from workers.kms.keyregistry import DataKeyRecord, MongoKeyRegistry
from workers.settings import Settings
from workers.sync.control import first_page
from workers.sync.jobs import SyncBook


class Finds(monitoring.CommandListener):
    """Collects every ``find`` command sent."""

    def __init__(self) -> None:
        self.commands: list[dict[str, Any]] = []

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        if event.command_name == "find":
            self.commands.append(dict(event.command))

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        """Only the requests matter."""

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        """Only the requests matter."""


@pytest.fixture
async def seeded(settings: Settings, unique: str) -> AsyncIterator[Settings]:
    ours = settings.model_copy(update={"mongo_database": unique})
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(ours.mongo_url)
    db = client[unique]
    await create_indexes(db)
    now = datetime.now(UTC)
    docs = []
    for n in range(30):
        name = f"docs/{n:02d}.txt" if n % 2 else f"other/{n:02d}.txt"
        oid = object_id_for("default", name)
        state = ("verified", "deleted", "failed")[n % 3]
        docs.append(
            {
                "_id": f"{oid}:v1",
                "object_id": oid,
                "version": 1,
                "tenant": "default",
                "name": name,
                "state": state,
                "created_at": now,
            }
        )
    await db["objects"].insert_many(docs)
    await db["names"].insert_one({"_id": docs[0]["object_id"], "last": 1, "last_request": "r0"})
    await db["requests"].insert_one(
        {
            "_id": "r0",
            "object_id": docs[0]["object_id"],
            "version": 1,
            "unchanged": False,
            "at": now,
        }
    )
    await db["deadletters"].insert_one({"_id": "l1", "correlation_id": "r1", "reason": "x"})
    held = {"tenant": "default", "legal_hold": True}
    await db["holds"].insert_many(
        [
            {"_id": docs[1]["_id"], "kind": "version", "version": 1, **held},
            {"_id": "default/docs/", "kind": "prefix", "prefix": "docs/", **held},
        ]
    )
    yield ours
    await client.drop_database(unique)
    await client.close()


async def test_every_client_query_is_answered_from_an_index(seeded: Settings) -> None:
    finds = Finds()
    state = State(seeded)
    await state.client.close()
    state.client = AsyncMongoClient(seeded.mongo_url, event_listeners=[finds])
    state.db = state.client[seeded.mongo_database]
    catalog = MongoCatalog(seeded.mongo_url, seeded.mongo_database)
    catalog.client = AsyncMongoClient(seeded.mongo_url, event_listeners=[finds])
    registry = MongoKeyRegistry(seeded.mongo_url, seeded.mongo_database)
    registry.client = AsyncMongoClient(seeded.mongo_url, event_listeners=[finds])
    syncs = SyncBook(seeded.mongo_url, seeded.mongo_database)
    syncs.client = AsyncMongoClient(seeded.mongo_url, event_listeners=[finds])
    try:
        record = DataKeyRecord("o1", 1, None, None, datetime.now(UTC), tombstone="deleted")
        await registry.insert(record)
        asked = len(finds.commands)
        found = await asyncio.gather(*(registry.get(f"o{n}", 1) for n in range(1, 9)))
        assert [r and r.tombstone for r in found] == ["deleted", *[None] * 7]
        assert len(finds.commands) == asked + 1  # a batch's tombstone checks: one query
        decided = await asyncio.gather(*(catalog.decision(f"r{n}") for n in range(8)))
        assert [d and d.version for d in decided] == [1, *[None] * 7]
        named = object_id_for("default", "other/00.txt")  # seeded with last version 1
        heads = await asyncio.gather(*(catalog.head(o) for o in [named, *"abcdefg"]))
        assert [h and h.last for h in heads] == [1, *[None] * 7]
        assert len(finds.commands) == asked + 3  # ingest's lookups of a batch: one query each
        page = await state.listing(tenant="default", prefix="docs/", limit=5)
        assert [d["name"] for d in page.rows] == [f"docs/{n:02d}.txt" for n in (1, 3, 5, 7, 9)]
        await state.listing(tenant="default", prefix="docs/", after=page.after, state="failed")
        await state.listing(tenant="default", all_versions=True, store="gcs")
        folders = await state.listing(tenant="default", delimiter="/", limit=1)
        assert (folders.rows, folders.prefixes) == ([], ["docs/"])
        await state.listing(tenant="default", delimiter="/", after=folders.after)
        await ratelimit.spent(state.db, "address:127.0.0.1", 600, 0.0)  # the API's, by _id
        object_id, _ = await state.resolve("docs/01.txt", "default")
        await state.objects(object_id)
        await state.audit(object_id)
        await state.decisions(["r0", "r1"])
        await state.request_failures(["r0", "r1"])
        await state.versions([f"{object_id}:v1"])
        await recent_versions(catalog, object_id)
        assert len(await refusals(state.db, page.rows, datetime.now(UTC))) == 5
        assert len(await listed(state.db, "default")) == 2
        assert await links.of_object(state.db, object_id) == []
        first = first_page("s3://theirs", ["s3"], "default", actor="me")
        job = await syncs.start(first, datetime.now(UTC))  # a sync's page, its status
        assert len(await syncs.recorded("default", "docs/", "docs/09.txt")) == 5
        assert (await syncs.status(job))["counts"]["seen"] == 0
        assert [j["_id"] for j in await syncs.jobs("default")] == [job["_id"]]
        scans = []
        for command in finds.commands:
            explain = {k: command[k] for k in ("find", "filter", "sort") if k in command}
            plan = await state.db.command("explain", explain)
            text = str(plan.get("queryPlanner"))
            if ("SCAN" in text and "USING INDEX" not in text) or "COLLSCAN" in text:
                scans.append((command["find"], command.get("filter"), text))
        assert len(finds.commands) >= 10
        assert scans == []
    finally:
        await state.close()
        await catalog.close()
        await registry.close()
        await syncs.close()
