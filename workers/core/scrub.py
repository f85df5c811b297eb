"""The scheduled scrub's choices and coverage, pure: which replicas to read back this round,
and how the estate's proofs stand.

A replica's turn comes by its last attempt, not its last success: a replica the scrub tried
and could not prove (archived, a store refusing) goes to the back of the line like one it
proved, so no failing replica starves the others. Each round takes at least ``share`` of the
replicas and at least what reading every one back within ``window`` needs at this interval.

An archived replica no store digest proves is rehydrated within a daily byte budget
(``to_rehydrate``); once its rehydration should be done (``readable_at``) it goes to the front
of the line, since neither S3's temporary readable copy nor Azure's Cold placement lasts long.
"""

import heapq
import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from workers.core.versions import GONE, utc, verdict

NEVER = datetime.min.replace(tzinfo=UTC)
Doc = Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class Coverage:
    """How the estate's proofs stand: versions by state, the oldest good verdict per store
    (its age), and how far past the window the least recently attempted replica is."""

    versions: dict[str, int] = field(default_factory=dict)
    oldest_proof_s: dict[str, float] = field(default_factory=dict)
    behind_s: float = 0.0


def scrubbable(doc: Doc) -> bool:
    """A stored version (its ciphertext recorded), not deleted or shredded."""
    return "ciphertext_sha256" in doc and doc.get("state") not in GONE


def last_attempt(replica: Mapping[str, Any]) -> datetime:
    """When the scrub last tried this replica, or read it back; else when it was verified or
    written (a new replica is not overdue before a whole window has passed)."""
    for names in (("scrub_attempted_at", "read_back_at"), ("verified_at", "written_at")):
        times = [utc(replica[n]) for n in names if replica.get(n)]
        if times:
            return max(times)
    return NEVER


def replica_of(doc: Doc, target: str) -> Mapping[str, Any]:
    """The recorded state of ``doc``'s replica in ``target`` (empty before its write)."""
    return (doc.get("replicas") or {}).get(target) or {}


Key = tuple[bool, datetime, str, str]  # (no rehydration due, last attempt, version id, target)


def replica_keys(doc: Doc, now: datetime) -> list[Key]:
    """The turn of each replica of a scrubbable ``doc``: a due rehydration first, then the
    one attempted longest ago (small: a round keeps these, not the documents)."""
    if not scrubbable(doc):
        return []
    return [
        (
            not rehydration_due(replica_of(doc, target), now),
            last_attempt(replica_of(doc, target)),
            doc["_id"],
            target,
        )
        for target in doc.get("targets", ())
    ]


def per_round(total: int, share: float, interval: timedelta, window: timedelta) -> int:
    """How many replicas one round reads back: ``share`` of them, and at least what covers
    every replica within ``window`` at one round per ``interval`` (at least one)."""
    if total == 0:
        return 0
    needed = total * interval / window if window > timedelta(0) else total
    return min(total, max(1, math.ceil(share * total), math.ceil(needed)))


def rehydration_due(replica: Mapping[str, Any], now: datetime) -> bool:
    """A rehydration the scrub started should be done by ``now``, and no scrub tried the
    replica since."""
    ready = replica.get("readable_at")
    return ready is not None and last_attempt(replica) < utc(ready) <= now


def pick(
    keys: list[Key], share: float, interval: timedelta, window: timedelta
) -> list[tuple[str, str]]:
    """The (version id, target) of the replicas this round reads back, first turns first."""
    count = per_round(len(keys), share, interval, window)
    return [(version, target) for _, _, version, target in heapq.nsmallest(count, keys)]


@dataclass(frozen=True, slots=True)
class Rehydrations:
    """A round's archived replicas no store digest proves: those to rehydrate now, and those
    the day's budget has no room left for."""

    start: tuple[tuple[Doc, str], ...] = ()
    deferred: tuple[tuple[Doc, str], ...] = ()


def to_rehydrate(
    chosen: Iterable[tuple[Doc, str]],
    archived: Callable[[Doc, str], bool],
    budget: int,
    now: datetime,
) -> Rehydrations:
    """Which of this round's ``chosen`` replicas to rehydrate with ``budget`` bytes: those
    written and not removed, in an ``archived`` tier, with no store digest to prove them by
    (``store_digest``), and none whose last rehydration no scrub tried since (under way, or
    due: read back this round); attempted longest ago first, whole replicas only (the
    ciphertext's size; one larger than what is left waits, a smaller one behind it may still
    fit)."""

    def unproven(doc: Doc, target: str) -> bool:
        replica = replica_of(doc, target)
        if not replica.get("key") or replica.get("removed_at") or replica.get("store_digest"):
            return False
        ready = replica.get("readable_at")
        return not (ready and last_attempt(replica) < utc(ready)) and archived(doc, target)

    wanted = sorted(
        [
            (last_attempt(replica_of(doc, target)), doc["_id"], target, doc)
            for doc, target in chosen
            if unproven(doc, target)
        ],
        key=lambda r: r[:3],
    )
    start: list[tuple[Doc, str]] = []
    deferred: list[tuple[Doc, str]] = []
    for _, _, target, doc in wanted:
        size = size_of(doc)
        if size <= budget:
            start.append((doc, target))
            budget -= size
        else:
            deferred.append((doc, target))
    return Rehydrations(tuple(start), tuple(deferred))


def size_of(doc: Doc) -> int:
    """The ciphertext's size a rehydration of one replica costs (0 where not recorded)."""
    return int(doc.get("ciphertext_size") or 0)


class Tally:
    """Coverage counted one document at a time (a round streams the estate through it)."""

    def __init__(self, now: datetime) -> None:
        self.now = now
        self.versions: dict[str, int] = {}
        self.oldest: dict[str, datetime] = {}
        self.first_attempt = now

    def add(self, doc: Doc) -> None:
        state = str(doc.get("state") or "pending")
        self.versions[state] = self.versions.get(state, 0) + 1
        if not scrubbable(doc):
            return
        for target, replica in (doc.get("replicas") or {}).items():
            if target not in doc.get("targets", ()) or replica.get("removed_at"):
                continue
            self.first_attempt = min(self.first_attempt, last_attempt(replica))
            proven = replica.get("proven_at") or replica.get("verified_at")
            if verdict(replica) == "good" and proven:
                self.oldest[target] = min(self.oldest.get(target, self.now), utc(proven))

    def coverage(self, window: timedelta) -> Coverage:
        now = self.now
        return Coverage(
            versions=dict(self.versions),
            oldest_proof_s={t: (now - at).total_seconds() for t, at in sorted(self.oldest.items())},
            behind_s=max(0.0, (now - self.first_attempt - window).total_seconds()),
        )
