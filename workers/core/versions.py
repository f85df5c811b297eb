"""Object versions, pure: a version's state, unchanged puts, retention.

An object is (tenant, name); every put of changed content is a new version. A version's state
is a function of its ``objects`` document alone, so it does not depend on the order in which
the sink saw the events that built the document:

- ``shredded`` / ``deleted``: a tombstone was written (forget / rm); nothing brings it back;
- ``verified``: every target holds a replica whose latest verdict is good, and the version's
  registered data key was unwrapped once (``key_checked_at``): a present-tense claim,
  withdrawn as soon as a check (a scrub, a verification) finds a replica bad;
- ``degraded``: some target's replica was found bad (damaged, missing, unreadable) and at
  least one target's is good: restorable, and waiting for a repair;
- ``lost``: replicas were found bad and none is good;
- ``failed``: a stage of the chain gave up on it before it was verified;
- ``pending``: on its way.

A replica's verdict is the latest check's (``verdict``, ``checked_at``); ``proven_at`` is the
time of its latest good one. Documents from before verdicts count a verified replica as good.

Retention (``MOVINGDATA_RETAIN_VERSIONS=N``, ``to_retire``) keeps an object's newest N
verified versions and every version newer than the oldest of them; only what is older goes.
So a version is retired only once N newer ones are verified: a put that fails, or a version
found degraded or lost, never lets an older verified version go.
"""

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal, get_args

StateName = Literal["pending", "verified", "degraded", "lost", "failed", "deleted", "shredded"]
STATES: tuple[str, ...] = get_args(StateName)
LIVE = frozenset({"pending", "verified"})  # what an unchanged put may point at
GONE = frozenset({"deleted", "shredded"})
RESTORABLE = frozenset({"verified", "degraded"})  # at least one good replica
BAD = frozenset({"damaged", "missing", "unreadable"})


@dataclass(frozen=True, slots=True)
class Content:
    """What a version holds, as the client measured it."""

    size: int
    sha256: str


@dataclass(frozen=True, slots=True)
class VersionView:
    """One version as a put decision sees it."""

    version: int
    state: str
    content: Content | None = None


def doc_id(object_id: str, version: int) -> str:
    """The ``_id`` of one object version's document in ``objects``."""
    return f"{object_id}:v{version}"


def verdict(replica: Mapping[str, Any] | None) -> str | None:
    """A replica's current verdict: its latest check's, ``good`` for one verified before
    verdicts were recorded, None when it was never checked."""
    if not replica:
        return None
    if replica.get("verdict"):
        return str(replica["verdict"])
    return "good" if replica.get("verified_at") else None


def live_replicas(doc: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """The version's replicas whose current verdict is good, not removed, by target (sorted):
    the ones a restore may read."""
    replicas = doc.get("replicas") or {}
    return {
        t: r
        for t, r in sorted(replicas.items())
        if verdict(r) == "good" and not r.get("removed_at")
    }


def utc(moment: datetime) -> datetime:
    """A stored time in UTC (MongoDB gives naive UTC datetimes back)."""
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def verdicts(doc: Mapping[str, Any]) -> dict[str, str | None]:
    """Each target's replica's current verdict (None: never checked)."""
    replicas = doc.get("replicas") or {}
    return {t: verdict(replicas.get(t)) for t in doc.get("targets") or ()}


def verified_everywhere(doc: Mapping[str, Any] | None) -> bool:
    """Every target of the version holds a good replica now."""
    found = verdicts(doc) if doc is not None else {}
    return bool(found) and all(v == "good" for v in found.values())


def key_checked(doc: Mapping[str, Any]) -> bool:
    """The version's registered data key was unwrapped once and was the key its ciphertext
    was made with (encrypt's ``key_checked_at``). A document from before key checks (its
    encryption recorded with none) counts as checked."""
    return bool(doc.get("key_checked_at")) or (
        "key_checked_at" not in doc and bool(doc.get("encrypted_at"))
    )


def version_state(doc: Mapping[str, Any]) -> str:
    """The state of one version, from its ``objects`` document."""
    if doc.get("shredded_at"):
        return "shredded"
    if doc.get("deleted_at"):
        return "deleted"
    if verified_everywhere(doc) and key_checked(doc):
        return "verified"
    found = verdicts(doc)
    good = [t for t, v in found.items() if v == "good"]
    if any(v in BAD for v in found.values()):
        return "degraded" if good else "lost"
    if doc.get("failed_at"):
        return "failed"
    return "pending"


def content_of(doc: Mapping[str, Any]) -> Content | None:
    """The size and plaintext SHA-256 a version's document records, if any."""
    if doc.get("size") is None or not doc.get("plaintext_sha256"):
        return None
    return Content(int(doc["size"]), str(doc["plaintext_sha256"]))


def latest_live(views: Iterable[VersionView]) -> VersionView | None:
    """The newest version that is verified or on its way."""
    live = [v for v in views if v.state in LIVE]
    return max(live, key=lambda v: v.version, default=None)


def unchanged_version(
    views: Iterable[VersionView], content: Content | None, force: bool
) -> int | None:
    """The version a put of ``content`` would repeat (None: the put makes a new version).

    Like rclone's skip of matching files: same size and same plaintext SHA-256 as the newest
    live version. A failed, deleted or shredded version never counts, so putting the same
    bytes again after a failure or a delete stores them again.
    """
    if force or content is None:
        return None
    latest = latest_live(views)
    if latest is None or latest.content != content:
        return None
    return latest.version


def retention_view(doc: Mapping[str, Any]) -> VersionView:
    """One version as retention sees it, from its ``objects`` document and the sink's
    ``state``: a version whose removal was asked for (``rm``, ``forget``, an earlier
    retirement) counts as deleted, so it is not asked again and never counts as a verified
    version that lets older ones go."""
    asked = any(doc.get(f"{mode}_requested_at") for mode in ("delete", "forget"))
    state = "deleted" if asked else str(doc.get("state") or "pending")
    return VersionView(int(doc["version"]), state)


def to_retire(views: Iterable[VersionView], keep: int) -> list[int]:
    """The versions of one object the retention deletes, keeping ``keep`` (0: keep all).

    Only verified versions count: the newest ``keep`` of them stay, with every version newer
    than the oldest of them (pending, failed, degraded, lost); older versions that are not
    gone already are retired. Fewer than ``keep`` verified versions: nothing is retired.
    """
    if keep <= 0:
        return []
    found = list(views)
    verified = sorted((v.version for v in found if v.state == "verified"), reverse=True)
    if len(verified) < keep:
        return []
    oldest_kept = verified[keep - 1]
    return sorted(v.version for v in found if v.version < oldest_kept and v.state not in GONE)
