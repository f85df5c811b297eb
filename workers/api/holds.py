"""Retention and legal hold: ``/v1/objects/{id}/hold`` (a version's, or every version's) and
``/v1/holds`` (a prefix's: every name of the tenant under it, those put later too).

While a hold is in force, delete and forget are refused (409, ``type`` .../held), whoever
asks. Scopes: a legal hold is placed with ``write`` and released with ``admin`` only; a
retention is placed or extended with ``admin``, because nobody can take it back (COMPLIANCE:
never shortened until it passes), as ``forget`` has a scope of its own for the same reason.
Every placement and release is audited, naming the token (``workers.client.holds``).
"""

from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field

from schemas.events import TENANT
from workers.api.deps import MayAdmin, MayRead, MayWrite, RequestId, Svc, require
from workers.api.objects import versions_of
from workers.api.problems import PROBLEMS_CONTENT, Problem, UtcDateTime
from workers.api.tokens import Principal
from workers.client import holds
from workers.client.state import Unknown
from workers.core.holds import prefix_hold_id, version_hold_id

router = APIRouter(tags=["holds"])
CONFLICT: dict[int | str, dict[str, Any]] = {
    409: {"description": "The hold cannot change so", "content": PROBLEMS_CONTENT}
}


class HoldBody(BaseModel):
    retain_until: datetime | None = Field(
        None, description="No removal before then (the admin scope); extended, never shortened."
    )
    legal_hold: bool = Field(False, description="No removal until an admin releases it.")
    reason: str = Field("", max_length=500)


class VersionHoldBody(HoldBody):
    version: int | None = Field(None, ge=1, description="Default: the newest.")
    all_versions: bool = False


class PrefixHoldBody(HoldBody):
    prefix: str = Field(description="Every name of the tenant starting with it.")


class HoldView(BaseModel):
    id: str
    kind: Literal["version", "prefix"]
    tenant: str
    object_id: str | None = None
    version: int | None = None
    name: str | None = None
    prefix: str | None = None
    retain_until: UtcDateTime | None = None
    legal_hold: bool
    reason: str = ""
    placed_by: str = ""
    placed_at: UtcDateTime | None = None
    stores: dict[str, bool] = Field(
        default_factory=dict,
        description="A version's: per target, whether the store holds it too (where its bucket "
        "was made for holds: S3 Object Lock, Azure immutability, GCS object retention).",
    )


def view(hold: dict[str, Any]) -> HoldView:
    return HoldView(id=hold["_id"], **{k: v for k, v in hold.items() if k != "_id"})


def asked(who: Principal, body: HoldBody) -> holds.HoldAsked:
    """The placement asked for; 403 for a retention without the admin scope, 422 for none."""
    if body.retain_until is not None:
        require(who, "admin")
    if body.retain_until is None and not body.legal_hold:
        raise Problem(422, "ask for a retention (retain_until), a legal hold, or both")
    until = body.retain_until
    if until is not None and until.tzinfo is None:
        until = until.replace(tzinfo=UTC)
    return holds.HoldAsked(until, body.legal_hold, body.reason)


def refused(exc: holds.HoldRefused) -> Problem:
    return Problem(409, str(exc))


@router.put(
    "/v1/objects/{object_id}/hold",
    operation_id="holdObject",
    summary="Hold versions: a retention (admin), a legal hold (write), or both",
    responses=CONFLICT,
)
async def hold_object(
    object_id: str, body: VersionHoldBody, who: MayWrite, svc: Svc, request_id: RequestId
) -> list[HoldView]:
    docs = await versions_of(svc, who, object_id)
    wanted = asked(who, body)
    try:
        chosen = holds.chosen(docs, body.version, body.all_versions, object_id)
        placed = await holds.hold_versions(
            svc.settings,
            svc.state.db,
            chosen,
            wanted,
            actor=who.actor(request_id),
            now=datetime.now(UTC),
        )
    except Unknown as exc:
        raise Problem(404, str(exc)) from None
    except ValueError as exc:
        raise Problem(422, str(exc)) from None
    except holds.HoldRefused as exc:
        raise refused(exc) from None
    return [view(h) for h in placed]


@router.delete(
    "/v1/objects/{object_id}/hold",
    operation_id="releaseObjectHold",
    summary="Release the legal hold of versions (admin); a retention stays until it passes",
    responses=CONFLICT,
)
async def release_object(
    object_id: str,
    who: MayAdmin,
    svc: Svc,
    request_id: RequestId,
    version: Annotated[int | None, Query(ge=1, description="Default: the newest.")] = None,
    all_versions: bool = False,
) -> list[HoldView]:
    docs = await versions_of(svc, who, object_id)
    try:
        chosen = holds.chosen(docs, version, all_versions, object_id)
        ids = [version_hold_id(d["object_id"], d["version"]) for d in chosen]
        released = await holds.release(
            svc.settings, svc.state.db, ids, actor=who.actor(request_id), now=datetime.now(UTC)
        )
    except Unknown as exc:
        raise Problem(404, str(exc)) from None
    except ValueError as exc:
        raise Problem(422, str(exc)) from None
    except holds.HoldRefused as exc:
        raise refused(exc) from None
    return [view(h) for h in released]


def tenant_of(who: Principal, tenant: str | None) -> str:
    """The tenant asked for: the token's own, another with the admin scope."""
    if tenant is not None and not who.sees(tenant):
        require(who, "admin")
    return tenant or who.tenant


Tenant = Annotated[
    str | None, Query(pattern=TENANT, description="Another tenant: the admin scope.")
]


@router.get(
    "/v1/holds", operation_id="listHolds", summary="The tenant's holds: prefixes', then versions'"
)
async def list_holds(who: MayRead, svc: Svc, tenant: Tenant = None) -> list[HoldView]:
    return [view(h) for h in await holds.listed(svc.state.db, tenant_of(who, tenant))]


@router.put(
    "/v1/holds",
    operation_id="holdPrefix",
    summary="Hold a prefix: every name of the tenant under it, later puts too",
    responses=CONFLICT,
)
async def hold_prefix(
    body: PrefixHoldBody, who: MayWrite, svc: Svc, request_id: RequestId, tenant: Tenant = None
) -> HoldView:
    wanted = asked(who, body)
    try:
        placed = await holds.hold_prefix(
            svc.settings,
            svc.state.db,
            tenant_of(who, tenant),
            body.prefix,
            wanted,
            actor=who.actor(request_id),
            now=datetime.now(UTC),
        )
    except holds.HoldRefused as exc:
        raise refused(exc) from None
    return view(placed)


@router.delete(
    "/v1/holds",
    operation_id="releasePrefixHold",
    summary="Release a prefix's legal hold (admin); a retention stays until it passes",
    responses=CONFLICT,
)
async def release_prefix(
    who: MayAdmin, svc: Svc, request_id: RequestId, prefix: str, tenant: Tenant = None
) -> list[HoldView]:
    hold_id = prefix_hold_id(tenant_of(who, tenant), prefix)
    try:
        released = await holds.release(
            svc.settings,
            svc.state.db,
            [hold_id],
            actor=who.actor(request_id),
            now=datetime.now(UTC),
        )
    except holds.HoldRefused as exc:
        raise refused(exc) from None
    return [view(h) for h in released]
