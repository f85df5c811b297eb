"""Re-driving versions that stopped moving, pure.

The sink records, per version, where on the broker it read each chain event (``refs``: the
topic, partition and offset of the accepted, encrypted, replicate and replicated events). A
version still pending long after its last step (``stalled``) is re-driven: the events that
should have led to its next steps are sent again through the retry agent, which re-reads them
from those coordinates (``redrive``); every stage is idempotent, so an event handled twice
changes nothing. This is the guard against an event acknowledged without being handled (a
start-up rebalance was seen to do that).

Removals are reconciled the same way. The sink records each delete (or forget) request it
reads (``<mode>_requested_at``, ref ``<mode>_request``) and each per-target removal (ref
``<mode>_remove_<target>``). A request with no tombstone after the bound, or a tombstone with
a target whose ``replica.removed`` has not come (``stalled_removals``), is re-driven
(``redrive_removal``): the target's recorded removal, else the request (which tombstones
again, idempotently, and asks every target again), else, with nothing recorded to re-read,
a request built anew from the document. A removal complete everywhere is ``removal_done``.
A removal the delete stage refused because the version is held (``removal_refused_at``, the
sink's record of that dead letter, later than the removal's last step) is not re-driven: it
would only be refused again; asked anew once the hold is gone, it goes through the doors.

Long operations hold a lease: the encrypt of an object records ``encrypt_progress_at`` on
the version's document while its bytes keep moving (every quarter of the bound at most;
``progress_interval``), so a large object being encrypted is never "quiet" (``stalled``);
an encrypt that stops moving loses its lease after the bound and is re-driven. Two encrypts
of a version can then overlap: the one that records its write first wins, and the other
deletes its own key; an encrypt that finds the version contended (its data key or write
registered by another attempt) also deletes every other key under the version's prefix
once the winner is recorded, so a losing attempt that died half-way leaves nothing behind
(``workers.agents.encrypt``).
"""

from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from workers.core.versions import utc

Doc = Mapping[str, Any]


def _times(fields: Mapping[str, Any]) -> list[datetime]:
    """The ``*_at`` times of a document level, in UTC (MongoDB gives naive UTC back)."""
    return [utc(v) for k, v in fields.items() if k.endswith("_at") and isinstance(v, datetime)]


def last_progress(doc: Doc) -> datetime | None:
    """The latest step recorded for the version, or its latest re-drive."""
    times = _times(doc)
    for replica in (doc.get("replicas") or {}).values():
        times.extend(_times(replica))
    return max(times, default=None)


def stalled(doc: Doc, now: datetime, after: timedelta) -> bool:
    """Pending, with no step and no re-drive for ``after``."""
    if doc.get("state", "pending") != "pending":
        return False
    moved = last_progress(doc)
    return moved is not None and now - moved >= after


def redrive(doc: Doc) -> list[dict[str, Any]]:
    """The recorded events to send again for a stalled version, deduplicated, in chain order:
    the accepted event when nothing is encrypted yet; else, per target not verified, its
    replicated event if the replica was written, otherwise its replicate request (or the
    encrypted event the requests come from)."""
    refs: Mapping[str, dict[str, Any]] = doc.get("refs") or {}
    if not doc.get("encrypted_at"):
        wanted = ["accepted"]
    else:
        wanted = []
        for target in doc.get("targets") or ():
            replica = (doc.get("replicas") or {}).get(target) or {}
            if replica.get("verified_at"):
                continue
            if replica.get("written_at"):
                wanted.append(f"replicated_{target}")
            else:
                wanted.append(
                    f"replicate_{target}" if f"replicate_{target}" in refs else "encrypted"
                )
    return [refs[name] for name in dict.fromkeys(wanted) if name in refs]


MODES = ("delete", "forget")
# The time the sink records once a mode's tombstone is written (its first removal read).
TOMBSTONE_AT = {"delete": "deleted_at", "forget": "shredded_at"}


def progress_interval(after: timedelta) -> timedelta:
    """How often a long operation renews its lease (records progress): well inside the
    bound after which a quiet version is re-driven."""
    return after / 4


def tombstoned(doc: Doc, mode: str) -> bool:
    """The mode's tombstone is recorded (a shredded version is deleted as well)."""
    return bool(doc.get(TOMBSTONE_AT[mode]) or doc.get("shredded_at"))


def unremoved(doc: Doc) -> list[str]:
    """The targets whose ``replica.removed`` has not been recorded."""
    replicas = doc.get("replicas") or {}
    return [t for t in doc.get("targets") or () if not (replicas.get(t) or {}).get("removed_at")]


def removal_done(doc: Doc, mode: str) -> bool:
    """The mode's tombstone is recorded and no target holds a replica any more."""
    return tombstoned(doc, mode) and not unremoved(doc)


def removal_progress(doc: Doc, mode: str) -> datetime | None:
    """The latest step of a removal: its request, tombstone, a replica removed, a re-drive."""
    names = (f"{mode}_requested_at", TOMBSTONE_AT[mode], "shredded_at", "removal_redriven_at")
    times = [utc(doc[n]) for n in names if isinstance(doc.get(n), datetime)]
    for replica in (doc.get("replicas") or {}).values():
        if isinstance(moment := (replica or {}).get("removed_at"), datetime):
            times.append(utc(moment))
    return max(times, default=None)


def stalled_removals(doc: Doc, now: datetime, after: timedelta) -> list[str]:
    """The modes requested for the version whose removal is not done and has made no step
    (nor been re-driven) for ``after``."""
    stalled_modes = []
    for mode in MODES:
        if not doc.get(f"{mode}_requested_at") or removal_done(doc, mode):
            continue
        if mode == "delete" and doc.get("forget_requested_at") and not tombstoned(doc, "delete"):
            continue  # a forget asked too: re-driving it does the delete's work as well
        moved = removal_progress(doc, mode)
        refused = doc.get("removal_refused_at")
        if isinstance(refused, datetime) and moved is not None and utc(refused) >= moved:
            continue  # refused while held: re-driving it would be refused again
        if moved is not None and now - moved >= after:
            stalled_modes.append(mode)
    return stalled_modes


def redrive_removal(doc: Doc, mode: str) -> tuple[list[dict[str, Any]], bool]:
    """What to send again for a stalled removal: the recorded events (deduplicated), and
    whether a request must be built anew instead, none being recorded. No tombstone: the
    request. Tombstoned: each unremoved target's removal, or the request for a target whose
    removal was not recorded (it asks every target again)."""
    refs: Mapping[str, dict[str, Any]] = doc.get("refs") or {}
    request = f"{mode}_request"
    if not tombstoned(doc, mode):
        wanted = [request]
    else:
        wanted = [
            f"{mode}_remove_{t}" if f"{mode}_remove_{t}" in refs else request
            for t in unremoved(doc)
        ]
    names = list(dict.fromkeys(wanted))
    if any(name not in refs for name in names):
        return [], True  # a request anew asks every target again: nothing else is needed
    return [refs[n] for n in names], False
