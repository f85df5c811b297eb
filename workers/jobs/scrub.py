"""The scheduled scrub: read back the replicas attempted longest ago, and publish coverage.

Each round scans the stored versions once, sends the chosen replicas through verify
(``workers.core.scrub.choose``), marks each chosen replica's ``scrub_attempted_at`` (so a
replica that cannot be proven now, archived say, goes to the back of the line) and sets the
coverage gauges: versions by state, the oldest live proof per store, the lag past the window.
"""

import uuid
from datetime import datetime, timedelta

from pymongo import UpdateOne

from workers import metrics
from workers.client.ops import scrub_requests, send_scrub
from workers.client.state import State
from workers.core.scrub import choose, coverage
from workers.core.versions import STATES
from workers.settings import Settings


async def scheduled_scrub(settings: Settings, state: State, now: datetime) -> int:
    """One round; return how many replicas were sent to be read back."""
    docs = [doc async for doc in state.db["objects"].find({})]
    window = timedelta(days=settings.scrub_window_days)
    interval = timedelta(seconds=settings.scrub_interval_s)
    chosen = choose(docs, settings.scrub_share, interval, window)
    run_id = uuid.uuid4().hex
    events = [
        e for doc, target in chosen for e in scrub_requests(doc, run_id) if e.target == target
    ]
    await send_scrub(settings, events)
    if chosen:
        attempted = [
            UpdateOne({"_id": doc["_id"]}, {"$set": {f"replicas.{target}.scrub_attempted_at": now}})
            for doc, target in chosen
        ]
        await state.db["objects"].bulk_write(attempted, ordered=False)
    publish(docs, now, window)
    return len(events)


def publish(docs: list[dict[str, object]], now: datetime, window: timedelta) -> None:
    """Set the coverage gauges from the round's scan."""
    found = coverage(docs, now, window)
    for name in STATES:
        metrics.VERSIONS.labels(name).set(found.versions.get(name, 0))
    for store, age in found.oldest_proof_s.items():
        metrics.OLDEST_PROOF.labels(store).set(age)
    metrics.SCRUB_BEHIND.set(found.behind_s)
