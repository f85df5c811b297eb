"""Re-driving versions that stopped moving, pure.

The sink records, per version, where on the broker it read each chain event (``refs``: the
topic, partition and offset of the accepted, encrypted, replicate and replicated events). A
version still pending long after its last step (``stalled``) is re-driven: the events that
should have led to its next steps are sent again through the retry agent, which re-reads them
from those coordinates (``redrive``); every stage is idempotent, so an event handled twice
changes nothing. This is the guard against an event acknowledged without being handled (a
start-up rebalance was seen to do that).
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
