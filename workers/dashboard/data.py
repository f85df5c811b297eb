"""What the dashboard shows, read from MongoDB and the broker; the sums are pure functions."""

from collections import Counter
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from pymongo import MongoClient

from workers.api.tokens import Principal, Refused, digest, granted
from workers.app import STAGES
from workers.core.versions import live_replicas
from workers.dashboard.fleet import Group, fleet
from workers.jobs.heartbeat import COLLECTION
from workers.settings import Settings

Doc = dict[str, Any]


def by_state(docs: Iterable[Doc]) -> dict[str, int]:
    """Object versions per state."""
    return dict(Counter(d.get("state", "pending") for d in docs))


def by_store_and_tier(docs: Iterable[Doc]) -> list[dict[str, Any]]:
    """Replicas and their bytes per store and tier (verified replicas not removed)."""
    counts: Counter[tuple[str, str]] = Counter()
    sizes: Counter[tuple[str, str]] = Counter()
    for doc in docs:
        for store, replica in live_replicas(doc).items():
            key = (store, replica.get("tier") or "hot")
            counts[key] += 1
            sizes[key] += doc.get("ciphertext_size") or 0
    return [
        {"store": s, "tier": t, "replicas": counts[s, t], "bytes": sizes[s, t]}
        for s, t in sorted(counts)
    ]


def stage_latency(docs: Iterable[Doc]) -> list[dict[str, Any]]:
    """Per verified version: seconds from accepted to encrypted and to the last replica."""
    rows = []
    for doc in docs:
        accepted, encrypted = doc.get("accepted_at"), doc.get("encrypted_at")
        verified = [
            r["verified_at"] for r in (doc.get("replicas") or {}).values() if r.get("verified_at")
        ]
        if accepted and encrypted and verified:
            rows.append(
                {
                    "at": max(verified),
                    "encrypt_s": (encrypted - accepted).total_seconds(),
                    "verified_s": (max(verified) - accepted).total_seconds(),
                }
            )
    return sorted(rows, key=lambda r: r["at"])


def per_minute(times: Iterable[datetime]) -> list[dict[str, Any]]:
    """How many events in each minute."""
    counts = Counter(t.replace(second=0, microsecond=0) for t in times)
    return [{"minute": m, "events": counts[m]} for m in sorted(counts)]


class Data:
    """The dashboard's reads, scoped to one token's tenant."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.db = MongoClient(settings.mongo_url, serverSelectionTimeoutMS=5000)[
            settings.mongo_database
        ]

    def principal(self, token: str) -> Principal | None:
        """The token's principal if it is live and holds the read scope (None: not)."""
        doc = self.db["tokens"].find_one({"_id": digest(token)})
        if doc is None:
            return None
        try:
            who = granted(doc, datetime.now(UTC))
        except Refused:
            return None
        return who if who.allows("read") else None

    def objects(self, who: Principal) -> list[Doc]:
        query = {} if who.allows("admin") else {"tenant": who.tenant}
        return list(self.db["objects"].find(query))

    def audit(self, object_ids: Iterable[str], limit: int | None = None) -> list[Doc]:
        records = list(
            self.db["audit"].find(
                {"object_id": {"$in": list(object_ids)}}, {"hash": 0, "prev_hash": 0}
            )
        )
        records.sort(key=lambda r: r["produced_at"], reverse=True)
        return records[:limit] if limit else records

    def deadletters(self, object_ids: Iterable[str], who: Principal) -> list[Doc]:
        query: Doc = {} if who.allows("admin") else {"object_id": {"$in": list(object_ids)}}
        fields = {"payload_b64": 0}
        return sorted(
            self.db["deadletters"].find(query, fields), key=lambda d: d["produced_at"], reverse=True
        )

    def fleet(self) -> list[Group]:
        """Each worker group of this deployment (its stages, state, members, lag)."""
        return fleet(self.settings, STAGES)

    def heartbeats(self) -> list[Doc]:
        """The heartbeats of this deployment's workers (the live ones are the fleet's)."""
        return list(self.db[COLLECTION].find({"prefix": self.settings.topic_prefix}))
