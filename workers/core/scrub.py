"""The scheduled scrub's choices and coverage, pure: which replicas to read back this round,
and how the estate's proofs stand.

A replica's turn comes by its last attempt, not its last success: a replica the scrub tried
and could not prove (archived, a store refusing) goes to the back of the line like one it
proved, so no failing replica starves the others. Each round takes at least ``share`` of the
replicas and at least what reading every one back within ``window`` needs at this interval.
"""

import math
from collections.abc import Iterable, Mapping
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


def replicas_of(docs: Iterable[Doc]) -> list[tuple[datetime, str, str, Doc]]:
    """(last attempt, version id, target, document) of every replica of the scrubbable docs."""
    out = []
    for doc in docs:
        if not scrubbable(doc):
            continue
        replicas = doc.get("replicas") or {}
        for target in doc.get("targets", ()):
            out.append((last_attempt(replicas.get(target) or {}), doc["_id"], target, doc))
    return out


def per_round(total: int, share: float, interval: timedelta, window: timedelta) -> int:
    """How many replicas one round reads back: ``share`` of them, and at least what covers
    every replica within ``window`` at one round per ``interval`` (at least one)."""
    if total == 0:
        return 0
    needed = total * interval / window if window > timedelta(0) else total
    return min(total, max(1, math.ceil(share * total), math.ceil(needed)))


def choose(
    docs: Iterable[Doc], share: float, interval: timedelta, window: timedelta
) -> list[tuple[Doc, str]]:
    """The replicas this round reads back: those attempted longest ago first."""
    replicas = sorted(replicas_of(docs), key=lambda r: r[:3])
    count = per_round(len(replicas), share, interval, window)
    return [(doc, target) for _, _, target, doc in replicas[:count]]


def coverage(docs: Iterable[Doc], now: datetime, window: timedelta) -> Coverage:
    """Versions by state, each store's oldest live proof, and the scrub's lag past ``window``."""
    versions: dict[str, int] = {}
    oldest: dict[str, datetime] = {}
    first_attempt = now
    for doc in docs:
        state = str(doc.get("state") or "pending")
        versions[state] = versions.get(state, 0) + 1
        if not scrubbable(doc):
            continue
        for target, replica in (doc.get("replicas") or {}).items():
            if target not in doc.get("targets", ()) or replica.get("removed_at"):
                continue
            first_attempt = min(first_attempt, last_attempt(replica))
            proven = replica.get("proven_at") or replica.get("verified_at")
            if verdict(replica) == "good" and proven:
                oldest[target] = min(oldest.get(target, now), utc(proven))
    return Coverage(
        versions=versions,
        oldest_proof_s={t: (now - at).total_seconds() for t, at in sorted(oldest.items())},
        behind_s=max(0.0, (now - first_attempt - window).total_seconds()),
    )
