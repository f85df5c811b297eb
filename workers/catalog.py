"""The version catalog: which version each put request got. Ingest is its only writer.

- ``names``: one document per object (``_id`` = object id): tenant, name, the last version
  handed out (``last``, advanced atomically, so racing puts get distinct versions) and the
  content that version was put with.
- ``requests``: one document per put request (``_id`` = request id): the version it got, or
  the version it repeated when its content was unchanged. Recorded once (insert if absent),
  so a replayed or redelivered request gets the same answer and changes nothing.

Version states come from the sink's ``objects`` documents, read by ``_id`` only. The one
field of them written here is encrypt's lease (``record_progress``: ``encrypt_progress_at``,
only ever later, on a document the sink created), read by the reconcile.
"""

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any, Protocol

from pymongo import AsyncMongoClient, ReturnDocument
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from workers.coalesce import Coalesced
from workers.core.holds import version_hold_id
from workers.core.versions import LIVE, Content, VersionView, content_of, doc_id, version_state
from workers.mongo import by_ids, translated_errors

Doc = dict[str, Any]


@dataclass(frozen=True, slots=True)
class Decision:
    """What a put request got: a new version, or (``unchanged``) the version it repeats."""

    request_id: str
    object_id: str
    version: int
    unchanged: bool
    at: datetime


@dataclass(frozen=True, slots=True)
class Head:
    """The last version handed out for an object: the content and request it was for."""

    last: int
    content: Content | None
    request_id: str | None = None


class Catalog(Protocol):
    async def decision(self, request_id: str) -> Decision | None:
        """The decision recorded for a request, if any."""

    async def head(self, object_id: str) -> Head | None:
        """The last version handed out for an object (None: never put)."""

    async def versions(self, object_id: str, versions: Sequence[int]) -> dict[int, VersionView]:
        """The sink's view of those versions (missing: not recorded by the sink yet)."""

    async def document(self, object_id: str, version: int) -> Doc | None:
        """The sink's ``objects`` document of one version, as stored (None: not yet)."""

    async def allocate(
        self, object_id: str, tenant: str, name: str, content: Content | None, request_id: str
    ) -> int:
        """Hand out the next version of an object to a request."""

    async def record(self, decision: Decision) -> Decision:
        """Store the decision unless the request has one; return the stored one."""

    async def dead_lettered(self, request_ids: Sequence[str]) -> set[str]:
        """Those of the requests a stage dead-lettered (the sink's ``deadletters``)."""

    async def record_progress(self, object_id: str, version: int, at: datetime) -> None:
        """Renew encrypt's lease on a version: it moved bytes ``at`` (``encrypt_progress_at``,
        only ever later; nothing before the sink recorded the version)."""

    async def holds(self, version: Doc) -> list[Doc]:
        """The holds that may cover a version (``object_id``, ``version``, ``tenant``):
        ``workers.core.holds`` decides which do."""

    async def close(self) -> None: ...


HOLDS = "holds"  # retention and legal holds (workers.client.holds places them)


async def covering(db: AsyncDatabase[Doc], versions: Sequence[Doc]) -> list[Doc]:
    """The holds that may cover these versions: theirs (by ``_id``) and the prefix holds of
    their tenants (``tenant, kind`` equality)."""
    ids = [version_hold_id(v["object_id"], v["version"]) for v in versions]
    holds = list((await by_ids(db[HOLDS], ids)).values())
    for tenant in sorted({str(v.get("tenant", "")) for v in versions}):
        holds += [h async for h in db[HOLDS].find({"tenant": tenant, "kind": "prefix"})]
    return holds


def stored_version(doc: Doc) -> VersionView:
    """One version as the sink recorded it: what a put decision needs."""
    return VersionView(doc["version"], version_state(doc), content_of(doc))


async def recent_versions(catalog: Catalog, object_id: str) -> list[VersionView]:
    """An object's versions from the newest down to the newest live one (empty: never put).

    The newest may not be in the sink's documents yet: it counts as pending when its request
    was recorded (a version handed out to a request that never recorded it is a gap).
    """
    views: list[VersionView] = []
    head = await catalog.head(object_id)
    if head is None:
        return views
    for version in range(head.last, 0, -1):
        view = (await catalog.versions(object_id, [version])).get(version)
        if view is None:
            if version != head.last or not await handed_out(catalog, head):
                continue
            view = VersionView(version, "pending", head.content)
        views.append(view)
        if view.state in LIVE:
            break
    return views


async def handed_out(catalog: Catalog, head: Head) -> bool:
    """The last version was recorded for the request it was allocated to (not a gap)."""
    if head.request_id is None:
        return False
    decision = await catalog.decision(head.request_id)
    return decision is not None and decision.version == head.last


class MongoCatalog:
    """The catalog in MongoDB (``names``, ``requests``; reads ``objects``)."""

    def __init__(self, url: str, database: str) -> None:
        self.url = url
        self.database = database
        self.client: AsyncMongoClient[Doc] | None = None
        # Ingest decides a batch's requests at once: their lookups are one query each.
        self.requests: Coalesced[str, Doc] = Coalesced(lambda ids: self.by_ids("requests", ids))
        self.names: Coalesced[str, Doc] = Coalesced(lambda ids: self.by_ids("names", ids))

    @property
    def db(self) -> AsyncDatabase[Doc]:
        if self.client is None:  # created inside the event loop that uses it
            self.client = AsyncMongoClient(self.url, serverSelectionTimeoutMS=5000)
        return self.client[self.database]

    async def by_ids(self, collection: str, ids: list[str]) -> dict[str, Doc]:
        with translated_errors("catalog"):
            return await by_ids(self.db[collection], ids)

    async def close(self) -> None:
        if self.client is not None:
            await self.client.close()

    async def decision(self, request_id: str) -> Decision | None:
        doc = await self.requests.get(request_id)
        return decision_of(doc) if doc else None

    async def head(self, object_id: str) -> Head | None:
        doc = await self.names.get(object_id)
        if doc is None:
            return None
        content = Content(doc["last_size"], doc["last_sha256"]) if doc.get("last_sha256") else None
        return Head(doc["last"], content, doc.get("last_request"))

    async def versions(self, object_id: str, versions: Sequence[int]) -> dict[int, VersionView]:
        found = {}
        with translated_errors("catalog"):
            for version in versions:  # one _id lookup each: the one filter every server indexes
                doc = await self.db["objects"].find_one({"_id": doc_id(object_id, version)})
                if doc is not None:
                    found[version] = stored_version(doc)
        return found

    async def document(self, object_id: str, version: int) -> Doc | None:
        with translated_errors("catalog"):
            return await self.db["objects"].find_one({"_id": doc_id(object_id, version)})

    async def allocate(
        self, object_id: str, tenant: str, name: str, content: Content | None, request_id: str
    ) -> int:
        last = {"last_size": content.size, "last_sha256": content.sha256} if content else {}
        named = {"tenant": tenant, "name": name, "last_request": request_id, **last}
        with translated_errors("catalog"):
            doc = await self.db["names"].find_one_and_update(
                {"_id": object_id},
                {"$inc": {"last": 1}, "$set": named},
                upsert=True,
                return_document=ReturnDocument.AFTER,
            )
            if not content:  # the content of the new version is unknown: forget the old one
                await self.db["names"].update_one(
                    {"_id": object_id, "last": doc["last"]},
                    {"$unset": {"last_size": "", "last_sha256": ""}},
                )
        return int(doc["last"])

    async def record(self, decision: Decision) -> Decision:
        doc = {"_id": decision.request_id, **asdict(decision)}
        del doc["request_id"]
        with translated_errors("catalog"):
            try:
                await self.db["requests"].insert_one(doc)
            except DuplicateKeyError:  # the same request, decided meanwhile by another ingest
                stored = await self.db["requests"].find_one({"_id": decision.request_id})
                assert stored is not None
                return decision_of(stored)
        return decision

    async def dead_lettered(self, request_ids: Sequence[str]) -> set[str]:
        found: set[str] = set()
        with translated_errors("catalog"):
            for start in range(0, len(request_ids), 500):
                query = {"correlation_id": {"$in": list(request_ids[start : start + 500])}}
                cursor = self.db["deadletters"].find(query, {"correlation_id": 1})
                found |= {doc["correlation_id"] async for doc in cursor}
        return found

    async def holds(self, version: Doc) -> list[Doc]:
        with translated_errors("catalog"):
            return await covering(self.db, [version])

    async def record_progress(self, object_id: str, version: int, at: datetime) -> None:
        with translated_errors("catalog"):
            await self.db["objects"].update_one(
                {"_id": doc_id(object_id, version)}, {"$max": {"encrypt_progress_at": at}}
            )


def decision_of(doc: Doc) -> Decision:
    return Decision(
        request_id=doc["_id"],
        object_id=doc["object_id"],
        version=doc["version"],
        unchanged=doc["unchanged"],
        at=doc["at"],
    )


class MemoryCatalog:
    """The same rules over dicts, for unit tests; ``stored`` plays the sink's documents."""

    def __init__(self) -> None:
        self.requests: dict[str, Decision] = {}
        self.heads: dict[str, Head] = {}
        self.stored: dict[tuple[str, int], VersionView] = {}
        self.documents: dict[tuple[str, int], Doc] = {}
        self.letters: set[str] = set()  # request ids the sink holds a dead letter of
        self.hold_docs: list[Doc] = []  # the ``holds`` collection

    async def decision(self, request_id: str) -> Decision | None:
        return self.requests.get(request_id)

    async def head(self, object_id: str) -> Head | None:
        return self.heads.get(object_id)

    async def versions(self, object_id: str, versions: Sequence[int]) -> dict[int, VersionView]:
        return {v: self.stored[object_id, v] for v in versions if (object_id, v) in self.stored}

    async def document(self, object_id: str, version: int) -> Doc | None:
        return self.documents.get((object_id, version))

    async def allocate(
        self, object_id: str, tenant: str, name: str, content: Content | None, request_id: str
    ) -> int:
        head = self.heads.get(object_id)
        self.heads[object_id] = Head((head.last if head else 0) + 1, content, request_id)
        return self.heads[object_id].last

    async def record(self, decision: Decision) -> Decision:
        return self.requests.setdefault(decision.request_id, decision)

    async def dead_lettered(self, request_ids: Sequence[str]) -> set[str]:
        return self.letters.intersection(request_ids)

    async def holds(self, version: Doc) -> list[Doc]:
        return self.hold_docs

    async def record_progress(self, object_id: str, version: int, at: datetime) -> None:
        doc = self.documents.get((object_id, version))
        if doc is not None:
            doc["encrypt_progress_at"] = max(at, doc.get("encrypt_progress_at", at))

    async def close(self) -> None:
        """Nothing to release."""
