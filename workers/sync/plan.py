"""One page of a job's listing, planned against what the versions of its names recorded."""

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from schemas.events import SyncPage, safe_key
from workers.core.sync import Filter, Names, Step, deletions, plan_listed
from workers.core.versions import GONE
from workers.stores.base import ObjectStore
from workers.sync.jobs import SyncBook, recorded_of
from workers.sync.source import list_page, listed

Doc = dict[str, Any]


@dataclass(frozen=True, slots=True)
class PagePlan:
    """A page's listing, a step per admitted key, the versions to remove (with ``delete``:
    of names in the page's range of keys that the source no longer lists), and whether it
    is the listing's last page."""

    keys: Sequence[str]
    steps: Sequence[Step]
    removals: Sequence[Doc]
    last: bool


async def plan_page(
    page: SyncPage, store: ObjectStore, source_prefix: str, book: SyncBook, limit: int
) -> PagePlan:
    """List up to ``limit`` keys past ``page.after`` and plan them. The names a page answers
    for run from past the previous page's last key to its own last key (the last page: to
    the end of ``prefix``), so each recorded name is some page's, once."""
    infos = await list_page(store, source_prefix, page.after, limit)
    names = Names(source_prefix, page.prefix, safe_key)
    rules = Filter.of(page.rules)
    last = len(infos) < limit
    low = names.prefix + names.relative(page.after) if page.after else names.prefix
    high = None if last else names.prefix + names.relative(infos[-1].key)
    versions = {
        name: docs
        for name, docs in (await book.recorded(page.tenant, low, high)).items()
        if name.startswith(names.prefix)
    }
    recorded = {name: r for name, docs in versions.items() if (r := recorded_of(docs))}
    steps = list(plan_listed(map(listed, infos), recorded, names, rules, checksum=page.checksum))
    removals: list[Doc] = []
    if page.delete:
        for step in deletions(versions, [s.name for s in steps], names, rules):
            removals += [d for d in versions[step.name] if d.get("state") not in GONE]
    return PagePlan([i.key for i in infos], steps, removals, last)
