"""Sync jobs in MongoDB: the job (``syncs``), what each page of its listing planned
(``sync_pages``, one document per page, so a re-planned page counts once), and what the
versions its puts made became (``objects``, by their request ids)."""

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from pymongo import ASCENDING, DESCENDING, AsyncMongoClient
from pymongo.asynchronous.database import AsyncDatabase

from schemas.events import SyncPage
from workers.core.sync import Recorded
from workers.core.versions import GONE
from workers.mongo import by_ids, translated_errors

Doc = dict[str, Any]
COUNTS = ("seen", "new", "changed", "unchanged", "delete", "refused", "bytes")
# A version that failed is no copy of its source: the next sync puts it again.
NOT_A_COPY = frozenset({*GONE, "failed"})
BROKEN = ("failed", "lost", "degraded")


def job_doc(first: SyncPage, at: datetime) -> Doc:
    """The job's document as its first page asks for it."""
    return {
        "_id": first.correlation_id,
        "tenant": first.tenant,
        "source": first.source,
        "targets": list(first.targets),
        "prefix": first.prefix,
        # As rclone's --filter rules ("+ glob", "- glob"): FerretDB stores no nested arrays.
        "rules": [f"{'+' if kind == 'include' else '-'} {glob}" for kind, glob in first.rules],
        "delete": first.delete,
        "checksum": first.checksum,
        "requested_by": first.actor,
        "created_at": at,
        "state": "listing",
    }


def recorded_of(docs: Sequence[Doc]) -> Recorded | None:
    """What a name's newest version that is a copy of its source recorded (its versions
    newest first); None when none is."""
    for doc in docs:
        if doc.get("state") not in NOT_A_COPY:
            digests = {"sha256": doc["plaintext_sha256"]} if doc.get("plaintext_sha256") else {}
            digests |= doc.get("source_digests") or {}
            return Recorded(doc.get("size"), doc.get("source_fingerprint"), digests)
    return None


class SyncBook:
    """The jobs' records; the client is made inside the event loop that uses it."""

    def __init__(self, url: str, database: str) -> None:
        self.url = url
        self.database = database
        self.client: AsyncMongoClient[Doc] | None = None

    @property
    def db(self) -> AsyncDatabase[Doc]:
        if self.client is None:
            self.client = AsyncMongoClient(self.url, serverSelectionTimeoutMS=5000)
        return self.client[self.database]

    async def close(self) -> None:
        if self.client is not None:
            await self.client.close()

    async def start(self, first: SyncPage, at: datetime) -> Doc:
        """Record the job unless it is recorded; its document."""
        doc = job_doc(first, at)
        with translated_errors("sync jobs"):
            await self.db["syncs"].update_one(
                {"_id": doc["_id"]}, {"$setOnInsert": doc}, upsert=True
            )
            return await self.db["syncs"].find_one({"_id": doc["_id"]}) or doc

    async def job(self, job_id: str) -> Doc | None:
        with translated_errors("sync jobs"):
            return await self.db["syncs"].find_one({"_id": job_id})

    async def jobs(self, tenant: str | None, limit: int = 100) -> list[Doc]:
        """The newest jobs first (of one tenant, or every one's)."""
        query = {} if tenant is None else {"tenant": tenant}
        cursor = self.db["syncs"].find(query).sort("created_at", DESCENDING).limit(limit)
        with translated_errors("sync jobs"):
            return [doc async for doc in cursor]

    async def cancel(self, job_id: str, at: datetime) -> bool:
        """Stop a job still listing (its next page is not planned); False if it is not."""
        with translated_errors("sync jobs"):
            done = await self.db["syncs"].update_one(
                {"_id": job_id, "state": "listing"},
                {"$set": {"state": "cancelled", "finished_at": at}},
            )
        return done.modified_count == 1

    async def record_page(
        self,
        page: SyncPage,
        counts: Mapping[str, int],
        removals: Sequence[str],
        last: bool,
        at: datetime,
    ) -> None:
        """What one page planned (``removals``: the ``_id``s of the versions it removes); the
        last page ends the listing."""
        job_id = page.correlation_id
        doc = {"job": job_id, "page": page.page, "after": page.after, "removals": list(removals)}
        with translated_errors("sync jobs"):
            await self.db["sync_pages"].update_one(
                {"_id": f"{job_id}:{page.page}"}, {"$set": doc | dict(counts)}, upsert=True
            )
            if last:
                await self.db["syncs"].update_one(
                    {"_id": job_id, "state": "listing"},
                    {"$set": {"state": "listed", "listed_at": at, "pages": page.page + 1}},
                )

    async def recorded(self, tenant: str, low: str, high: str | None) -> dict[str, list[Doc]]:
        """The versions of each name in ``(low, high]`` (``high`` None: every name above
        ``low``), newest first."""
        names: Doc = {"$gt": low} | ({"$lte": high} if high is not None else {})
        query = {"tenant": tenant, "name": names}
        order = [("name", ASCENDING), ("version", DESCENDING)]
        found: dict[str, list[Doc]] = {}
        with translated_errors("sync jobs"):
            async for doc in self.db["objects"].find(query).sort(order):
                found.setdefault(doc["name"], []).append(doc)
        return found

    async def status(self, job: Doc) -> Doc:
        """The job with its totals: what its pages planned, and what became of it."""
        totals = dict.fromkeys(COUNTS, 0)
        removals: list[str] = []
        with translated_errors("sync jobs"):
            async for page in self.db["sync_pages"].find({"job": job["_id"]}):
                for name in COUNTS:
                    totals[name] += page.get(name, 0)
                removals += page.get("removals", [])
            made = self.db["objects"].find(
                {"tenant": job["tenant"], "request_id": {"$regex": f"^{job['_id']}-"}},
                {"state": 1},
            )
            states = [doc.get("state") async for doc in made]
            removed = await by_ids(self.db["objects"], removals)
        moved = states.count("verified")
        broken = sum(states.count(s) for s in BROKEN)
        gone = sum(1 for doc in removed.values() if doc.get("state") in GONE)
        planned = totals["new"] + totals["changed"]
        settled = moved + broken >= planned and gone >= len(removals)
        done = job["state"] == "cancelled" or (job["state"] == "listed" and settled)
        return job | {
            "counts": totals,
            "planned": planned,
            "moved": moved,
            "removed": gone,
            "errors": totals["refused"] + broken,
            "done": done,
        }
