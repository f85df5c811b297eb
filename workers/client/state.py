"""MongoDB as the sink and ingest left it: versions, names, listings, failures."""

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from pymongo import ASCENDING, DESCENDING, AsyncMongoClient

from schemas.events import OBJECT_ID, object_id_for, safe_key
from workers.core.versions import RESTORABLE, STATES, doc_id
from workers.mongo import IDS_PER_QUERY, by_ids
from workers.settings import Settings

Doc = dict[str, Any]
NAME_ORDER = [("name", ASCENDING), ("version", DESCENDING)]  # a name's newest version first


class Unknown(LookupError):
    """What a user named does not exist (an object, a name, a version); the message says so."""


@dataclass
class Listing:
    """One page of ``ls``: the rows and, when more follow, the name to continue after."""

    rows: list[Doc]
    after: str | None
    prefixes: list[str] = field(default_factory=list)  # with a delimiter: the folders


class State:
    """Reads of MongoDB for the CLI and the tests."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.client: AsyncMongoClient[Doc] = AsyncMongoClient(settings.mongo_url)
        self.db = self.client[settings.mongo_database]

    async def close(self) -> None:
        await self.client.close()

    async def objects(self, object_id: str) -> list[Doc]:
        """Every version of an object, oldest first."""
        cursor = self.db["objects"].find({"object_id": object_id}).sort("version", ASCENDING)
        return [doc async for doc in cursor]

    async def object(self, object_id: str, version: int | None = None) -> Doc | None:
        """One version (an ``_id`` lookup), or the newest when ``version`` is None."""
        if version is not None:
            return await self.db["objects"].find_one({"_id": doc_id(object_id, version)})
        docs = await self.objects(object_id)
        return docs[-1] if docs else None

    async def audit(self, object_id: str) -> list[Doc]:
        cursor = self.db["audit"].find({"object_id": object_id}).sort("seq", ASCENDING)
        return [doc async for doc in cursor]

    async def resolve(self, ref: str, tenant: str) -> tuple[str, list[Doc]]:
        """The object an id or a name (of ``tenant``) refers to, and its versions."""
        if re.match(OBJECT_ID, ref) and (docs := await self.objects(ref)):
            return ref, docs
        try:
            object_id = object_id_for(tenant, safe_key(ref))
        except ValueError as exc:
            raise Unknown(f"no object {ref!r}: {exc}") from None
        docs = await self.objects(object_id)
        if not docs:
            raise Unknown(f"no object {ref!r} (tenant {tenant})")
        return object_id, docs

    async def listing(
        self,
        *,
        tenant: str,
        prefix: str = "",
        state: str | None = None,
        store: str | None = None,
        tier: str | None = None,
        all_versions: bool = False,
        delimiter: str = "",
        limit: int = 100,
        after: str | None = None,
    ) -> Listing:
        """A page of objects (the newest version of each name, or every version), in name
        order, read along the (tenant, name, version) index. With a ``delimiter``, the names
        past it under ``prefix`` are folded into folders (``prefixes``), each one skipped with
        a new range query, so a folder of a million names costs one."""
        if state is not None and state not in STATES:
            raise ValueError(f"state must be one of {', '.join(STATES)}")
        names: Doc = {"$gte": prefix} if prefix else {}
        if prefix:
            names["$lt"] = past(prefix)
        if after is not None and delimiter and after.endswith(delimiter):
            names["$gte"] = past(after)  # the page ended on a folder: past all of it
        elif after is not None:
            names["$gt"] = after
        query: Doc = {"tenant": tenant, **({"name": names} if names else {})}
        if delimiter:
            return await self.folders(query, prefix, delimiter, limit)
        if state is not None and not all_versions:
            states = {"$in": ["pending", None]} if state == "pending" else state  # None: unset
            return await self.newest_in_state(query | {"state": states}, store, tier, limit)
        rows: list[Doc] = []
        last_name: str | None = None
        more = False
        async for doc in self.db["objects"].find(query).sort(NAME_ORDER):
            newest = doc["name"] != last_name
            last_name = doc["name"]
            if newest and len(rows) >= limit:  # a page ends between names, never inside one
                more = True
                break
            if (all_versions or newest) and matches(doc, state, store, tier):
                rows.append(doc)
        return Listing(rows, rows[-1]["name"] if more and rows else None)

    async def folders(self, query: Doc, prefix: str, delimiter: str, limit: int) -> Listing:
        """A page of the newest versions and folders under ``prefix``, in name order."""
        rows: list[Doc] = []
        folders: list[str] = []
        last_name: str | None = None
        while True:
            folder = None
            async for doc in self.db["objects"].find(query).sort(NAME_ORDER):
                folder = folder_of(doc["name"], prefix, delimiter)
                if (folder or doc["name"] != last_name) and len(rows) + len(folders) >= limit:
                    after = max(folders[-1:] + [r["name"] for r in rows[-1:]])
                    return Listing(rows, after, folders)
                if folder:
                    folders.append(folder)
                    break
                if doc["name"] != last_name:
                    rows.append(doc)
                last_name = doc["name"]
            if folder is None:
                return Listing(rows, None, folders)
            query = query | {"name": {**query.get("name", {}), "$gte": past(folder)}}

    async def newest_in_state(
        self, query: Doc, store: str | None, tier: str | None, limit: int
    ) -> Listing:
        """A page of the names whose newest version matches ``query`` (a state among them):
        read by the (tenant, state) equality FerretDB answers from its index, names and
        versions only; then each candidate object's highest version, 500 objects a query
        (versions may have gaps), and the whole documents of the page alone."""
        best: dict[str, tuple[int, str]] = {}  # name -> (version, object id)
        fields = {"name": 1, "version": 1, "object_id": 1}
        async for doc in self.db["objects"].find(query, fields):
            if doc["version"] > best.get(doc["name"], (0, ""))[0]:
                best[doc["name"]] = (doc["version"], doc["object_id"])
        names = sorted(best)
        rows: list[Doc] = []
        for start in range(0, len(names), IDS_PER_QUERY):
            chunk = [best[name] for name in names[start : start + IDS_PER_QUERY]]
            highest: dict[str, int] = {}
            versions = {"object_id": {"$in": [o for _, o in chunk]}}
            async for doc in self.db["objects"].find(versions, {"object_id": 1, "version": 1}):
                highest[doc["object_id"]] = max(highest.get(doc["object_id"], 0), doc["version"])
            ids = [doc_id(o, v) for v, o in chunk if highest.get(o) == v]
            docs = await by_ids(self.db["objects"], ids)
            rows += [docs[i] for i in ids if i in docs and matches(docs[i], None, store, tier)]
            if len(rows) > limit:
                break
        more = len(rows) > limit
        rows = rows[:limit]
        return Listing(rows, rows[-1]["name"] if more and rows else None)

    async def decisions(self, request_ids: Sequence[str]) -> dict[str, Doc]:
        """What ingest decided for each of these requests (absent: not decided yet)."""
        return await by_ids(self.db["requests"], request_ids)

    async def request_failures(self, request_ids: Sequence[str]) -> dict[str, str]:
        """The reason of a dead letter of each of these requests that has one."""
        found: dict[str, str] = {}
        for start in range(0, len(request_ids), 500):
            ids = list(request_ids[start : start + 500])
            cursor = self.db["deadletters"].find(
                {"correlation_id": {"$in": ids}}, {"correlation_id": 1, "reason": 1}
            )
            async for doc in cursor:
                found.setdefault(doc["correlation_id"], doc["reason"])
        return found

    async def versions(self, ids: Sequence[str]) -> dict[str, Doc]:
        """``objects`` documents by ``_id``."""
        return await by_ids(self.db["objects"], ids)


def past(prefix: str) -> str:
    """The least string after every string that starts with ``prefix``."""
    return prefix[:-1] + chr(ord(prefix[-1]) + 1)


def folder_of(name: str, prefix: str, delimiter: str) -> str | None:
    """The folder under ``prefix`` that ``name`` is in (None: directly under ``prefix``)."""
    cut = name.find(delimiter, len(prefix))
    return name[: cut + len(delimiter)] if cut >= 0 else None


def matches(doc: Doc, state: str | None, store: str | None, tier: str | None) -> bool:
    """The listing's filters: a state, a store holding a verified replica, a replica's tier."""
    replicas = doc.get("replicas") or {}
    if state is not None and doc.get("state") != state:
        return False
    if store is not None and not (replicas.get(store) or {}).get("verified_at"):
        return False
    return tier is None or any(r.get("tier") == tier for r in replicas.values())


def pick_version(docs: Sequence[Doc], version: int | None, name: str) -> Doc:
    """The version asked for, else the newest one with a good replica (verified, else
    degraded); ``Unknown`` saying why not."""
    if version is not None:
        for doc in docs:
            if doc["version"] == version:
                return doc
        have = ", ".join(str(d["version"]) for d in docs)
        raise Unknown(f"{name} has no version {version} (versions: {have})")
    readable = [d for d in docs if d.get("state") in RESTORABLE]
    if not readable:
        states = ", ".join(f"v{d['version']} {d.get('state', 'pending')}" for d in docs)
        raise Unknown(f"{name} has no verified version ({states})")
    return readable[-1]
