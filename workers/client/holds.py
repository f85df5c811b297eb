"""Retention and legal hold as the CLI and the API place, release and list them (a removal's
refusal while held: ``workers.client.ops.request_removal``, and the delete stage's).

Holds live in the ``holds`` collection (the decisions: ``workers.core.holds``): a version's
hold has its version document's ``_id`` and ``kind: version``; a prefix's, ``<tenant>/<prefix>``
and ``kind: prefix``. A removal reads the holds of its versions by ``_id`` and the prefix
holds of their tenants by ``(tenant, kind)`` equality (``workers.catalog.covering``), both
answered from an index. A change
is a compare-and-set on the hold as read, so two placements racing never shorten a retention.
Every placement and release is audited on the version's chain (a prefix's on the chain
``holds.<tenant>``), naming who asked.
"""

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from topics import AUDIT
from workers.catalog import HOLDS
from workers.client.identity import Actor
from workers.client.kafka import produce_events
from workers.client.ops import client_record
from workers.client.state import pick_version
from workers.core.holds import in_force, prefix_hold_id, retention_refusal, version_hold_id
from workers.core.versions import utc
from workers.deps import target_url
from workers.errors import MovingDataError
from workers.mongo import by_ids
from workers.settings import Settings
from workers.stores import open_store
from workers.stores.base import Holds, ObjectStore

Doc = dict[str, Any]


class HoldRefused(MovingDataError):
    """A hold change refused: a retention shortened, a legal hold released that is not held,
    a hold changed by someone else meanwhile."""


@dataclass(frozen=True, slots=True)
class HoldAsked:
    """What a placement asks: a retention (None: keep the one there is), a legal hold (False:
    leave it as it is; placing never releases one), and why."""

    retain_until: datetime | None = None
    legal_hold: bool = False
    reason: str = ""


KINDS = ["prefix", "version"]


def chosen(docs: Sequence[Doc], version: int | None, every: bool, name: str) -> list[Doc]:
    """The versions a hold or a release is on: one (``version``), all (``every``), or the
    newest; ``Unknown`` for a version the object does not have."""
    if version is not None and every:
        raise ValueError("a version and all versions exclude each other")
    if every:
        return list(docs)
    return [docs[-1] if version is None else pick_version(docs, version, name)]


async def listed(db: AsyncDatabase[Doc], tenant: str) -> list[Doc]:
    """Every hold of a tenant's, prefixes first, then by object and version."""
    found = [h async for h in db[HOLDS].find({"tenant": tenant, "kind": {"$in": KINDS}})]
    return sorted(found, key=lambda h: (h["kind"] != "prefix", h["_id"]))


async def hold_versions(
    settings: Settings,
    db: AsyncDatabase[Doc],
    versions: Sequence[Doc],
    asked: HoldAsked,
    *,
    actor: Actor,
    now: datetime,
) -> list[Doc]:
    """Place (or extend) the hold on each version; return the holds as they now are."""
    placed = []
    for v in versions:
        hold = await changed(
            db,
            version_hold_id(v["object_id"], v["version"]),
            {
                "kind": "version",
                "tenant": v.get("tenant", ""),
                "object_id": v["object_id"],
                "version": v["version"],
                "name": v.get("name", ""),
            },
            asked,
            actor,
            now,
        )
        placed.append(hold)
    await at_stores(settings, db, versions, placed, asked.retain_until)
    run_id = actor.run_id()
    records = [
        client_record(v, "hold.placed", audited(hold), run_id, actor=actor)
        for v, hold in zip(versions, placed, strict=True)
    ]
    await produce_events(settings, AUDIT, records)
    return placed


async def hold_prefix(
    settings: Settings,
    db: AsyncDatabase[Doc],
    tenant: str,
    prefix: str,
    asked: HoldAsked,
    *,
    actor: Actor,
    now: datetime,
) -> Doc:
    """Place (or extend) the hold on every name of ``tenant`` starting with ``prefix``."""
    fields = {"kind": "prefix", "tenant": tenant, "prefix": prefix}
    hold = await changed(db, prefix_hold_id(tenant, prefix), fields, asked, actor, now)
    record = client_record(chain(tenant), "hold.placed", audited(hold), actor.run_id(), actor=actor)
    await produce_events(settings, AUDIT, [record])
    return hold


async def release(
    settings: Settings,
    db: AsyncDatabase[Doc],
    hold_ids: Sequence[str],
    *,
    actor: Actor,
    now: datetime,
) -> list[Doc]:
    """Release the legal hold of each hold (an admin's act: the caller checks); a hold with no
    retention left in force is removed. Return the holds as they were."""
    found = await by_ids(db[HOLDS], hold_ids)
    if missing := [i for i in hold_ids if not (found.get(i) or {}).get("legal_hold")]:
        raise HoldRefused(f"no legal hold on {', '.join(missing)}")
    run_id = actor.run_id()
    records = []
    for hold_id in hold_ids:
        hold = found[hold_id]
        after = {**hold, "legal_hold": False, "released_by": actor.name, "released_at": now}
        if in_force(after, now):
            hit = (await db[HOLDS].replace_one(as_read(hold), after)).matched_count
        else:
            hit = (await db[HOLDS].delete_one(as_read(hold))).deleted_count
        if not hit:
            raise HoldRefused(f"the hold {hold_id} changed meanwhile: try again")
        if hold["kind"] == "version" and any((hold.get("stores") or {}).values()):
            version = await db["objects"].find_one({"_id": hold_id})
            released = {**hold, "legal_hold": False}
            await at_stores(settings, db, [version or hold], [released], None)
        where = hold if hold["kind"] == "version" else chain(hold["tenant"])
        detail = {**audited(hold), "released": "legal_hold"}
        records.append(client_record(where, "hold.released", detail, run_id, actor=actor))
    await produce_events(settings, AUDIT, records)
    return [found[i] for i in hold_ids]


async def at_stores(
    settings: Settings,
    db: AsyncDatabase[Doc],
    versions: Sequence[Doc],
    holds: Sequence[Doc],
    retain_until: datetime | None,
) -> None:
    """Apply a retention (None: leave it) and each hold's legal hold to its version's replicas
    whose store can hold them (``Holds``: a bucket made for it), recording per target whether
    the store holds the replica (``stores``). The database's hold is what removals obey; a
    store's is a second lock where the bucket has one, and a store that fails here counts as
    not holding."""
    targets = {t for v in versions for t in v.get("targets", ())}
    stores = {t: open_store(target_url(t, settings), settings) for t in sorted(targets)}
    try:
        for version, hold in zip(versions, holds, strict=True):
            held = {}
            for target in version.get("targets", ()):
                key = ((version.get("replicas") or {}).get(target) or {}).get("key")
                held[target] = await held_at(
                    stores[target], key or version.get("key"), retain_until, hold["legal_hold"]
                )
            hold["stores"] = held
            await db[HOLDS].update_one({"_id": hold["_id"]}, {"$set": {"stores": held}})
    finally:
        for store in stores.values():
            await store.close()


async def held_at(
    store: ObjectStore, key: str | None, retain_until: datetime | None, legal_hold: bool
) -> bool:
    """Hold ``key`` at ``store`` if its bucket can; whether the store holds it now."""
    if key is None or not isinstance(store, Holds):
        return False
    try:
        if not await store.can_hold():
            return False
        await store.hold(key, retain_until, legal_hold)
    except MovingDataError:
        return False
    return True


async def changed(
    db: AsyncDatabase[Doc],
    hold_id: str,
    fields: Doc,
    asked: HoldAsked,
    actor: Actor,
    now: datetime,
) -> Doc:
    """The hold ``hold_id`` with ``asked`` applied, written by compare-and-set."""
    old = await db[HOLDS].find_one({"_id": hold_id})
    current = old.get("retain_until") if old else None
    until = asked.retain_until if asked.retain_until is not None else current
    if asked.retain_until is not None:
        if (why := retention_refusal(current, asked.retain_until, now)) is not None:
            raise HoldRefused(why)
    elif current is not None and utc(current) <= now:
        until = None  # a passed retention is no retention
    legal = asked.legal_hold or bool(old and old.get("legal_hold"))
    if until is None and not legal:
        raise HoldRefused("a hold needs a retention date or a legal hold")
    hold = {
        "_id": hold_id,
        **fields,
        "retain_until": until,
        "legal_hold": legal,
        "reason": asked.reason or (old or {}).get("reason", ""),
        "placed_by": actor.name,
        "placed_at": now,
    }
    if old is None:
        try:
            await db[HOLDS].insert_one(hold)
        except DuplicateKeyError:
            raise HoldRefused(f"the hold {hold_id} changed meanwhile: try again") from None
    elif (await db[HOLDS].replace_one(as_read(old), hold)).matched_count == 0:
        raise HoldRefused(f"the hold {hold_id} changed meanwhile: try again")
    return hold


def as_read(hold: Doc) -> Doc:
    """A filter matching the hold only while it is as it was read."""
    return {
        "_id": hold["_id"],
        "retain_until": hold.get("retain_until"),
        "legal_hold": hold.get("legal_hold", False),
    }


def audited(hold: Doc) -> dict[str, object]:
    """What an audit record says of a hold."""
    until = hold.get("retain_until")
    return {
        "hold": hold["_id"],
        "retain_until": utc(until).isoformat() if until else None,
        "legal_hold": bool(hold.get("legal_hold")),
        "reason": hold.get("reason", ""),
        "tenant": hold.get("tenant", ""),
        "stores": hold.get("stores", {}),  # per target: whether the store holds it too
    }


def chain(tenant: str) -> Doc:
    """Where a tenant's prefix holds are audited: a chain of their own."""
    return {"object_id": f"holds.{tenant}", "version": 0}
