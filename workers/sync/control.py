"""What a client does with sync jobs (the CLI in direct mode, the API): start one, plan one
without moving anything (``--dry-run``), read and cancel them."""

import uuid
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime

from schemas.events import SyncPage, SyncRule, event_id, safe_key
from topics import SYNC
from workers.client.kafka import produce_events
from workers.core.sync import Action, Filter, Step
from workers.errors import Permanent
from workers.settings import Settings
from workers.sync.jobs import SyncBook
from workers.sync.plan import plan_page
from workers.sync.source import check_source, open_source


def first_page(
    source: str,
    targets: Sequence[str],
    tenant: str,
    *,
    prefix: str = "",
    rules: Sequence[SyncRule] = (),
    delete: bool = False,
    checksum: bool = False,
    actor: str,
) -> SyncPage:
    """A new job's first page; ``ValueError`` for a bad glob, prefix or field."""
    Filter.of(rules)  # FilterError (a ValueError) now, not in the scanner
    if prefix:
        safe_key(prefix + "x")
    job = f"sync-{uuid.uuid4().hex[:20]}"
    return SyncPage(
        kind=SyncPage.KIND,
        v=SyncPage.VERSION,
        event_id=event_id(SyncPage.KIND, job, 0, "0"),
        object_id=job,
        version=0,
        correlation_id=job,
        produced_at=datetime.now(UTC),
        actor=actor,
        source=source.rstrip("/"),
        targets=tuple(targets),  # type: ignore[arg-type]
        tenant=tenant,
        prefix=prefix,
        rules=tuple(rules),
        delete=delete,
        checksum=checksum,
    )


async def start(settings: Settings, first: SyncPage, book: SyncBook) -> dict[str, object]:
    """Record the job and hand its first page to the scan stage; ``Permanent`` for a source
    no put may read."""
    check_source(first.source, settings)
    unknown = set(first.targets) - set(settings.targets)
    if unknown:
        raise Permanent(f"targets not configured: {', '.join(sorted(unknown))}")
    job = await book.start(first, first.produced_at)
    await produce_events(settings, SYNC, [first])
    return job


async def dry_run(
    settings: Settings, first: SyncPage, book: SyncBook
) -> AsyncIterator[tuple[str, Action, int]]:
    """The plan, page by page, moving nothing: (name, action, size) per name."""
    store, source_prefix = open_source(first.source, settings)
    page = first
    try:
        while True:
            plan = await plan_page(page, store, source_prefix, book, settings.sync_page)
            for step in plan.steps:
                yield step.name, step.action, size_of(step)
            for doc in plan.removals:
                yield doc["name"], Action.DELETE, doc.get("size") or 0
            if plan.last:
                return
            page = page.model_copy(update={"after": plan.keys[-1], "page": page.page + 1})
    finally:
        await store.close()


def size_of(step: Step) -> int:
    return step.listed.size if step.listed is not None else 0
