"""Sync jobs: ``/v1/syncs`` starts one (the scan stage lists the source and puts what changed)
and lists the tenant's, ``/v1/syncs/plan`` plans one without moving anything,
``/v1/syncs/{id}`` shows one (names seen, planned, moved, bytes, removed, errors) and, with
DELETE, cancels it. Scopes: ``write`` to start or cancel, ``read`` to look; a job is its
token's tenant's, and what a source may be is the workers' allow-list
(``MOVINGDATA_SOURCE_BUCKETS``)."""

from datetime import UTC, datetime
from typing import Any, Literal

from fastapi import APIRouter
from pydantic import BaseModel, Field

from workers.api.deps import MayRead, MayWrite, RequestId, Services, Svc
from workers.api.problems import Problem, UtcDateTime
from workers.api.tokens import Principal
from workers.errors import Permanent
from workers.sync import control
from workers.sync.jobs import SyncBook

router = APIRouter(tags=["syncs"])


class Rule(BaseModel):
    kind: Literal["include", "exclude"]
    glob: str = Field(min_length=1, max_length=512)


class SyncBody(BaseModel):
    source: str = Field(description="s3://bucket, azure://container or gs://bucket [/folder].")
    targets: list[str] | None = Field(None, description="Default: the deployment's targets.")
    prefix: str = Field("", description="Put before every name.")
    rules: list[Rule] = Field(
        default_factory=list, description="rclone's filters: in order, the first match wins."
    )
    delete: bool = Field(False, description="Remove names gone from the source (as rm).")
    checksum: bool = Field(False, description="Compare content digests, not fingerprints.")


class SyncView(BaseModel):
    id: str
    tenant: str
    source: str
    targets: list[str]
    prefix: str
    rules: list[str] = Field(description="As rclone's --filter: '+ glob' or '- glob'.")
    delete: bool
    checksum: bool
    state: Literal["listing", "listed", "cancelled"]
    requested_by: str = ""
    created_at: UtcDateTime
    listed_at: UtcDateTime | None = None
    counts: dict[str, int] = Field(
        description="seen, new, changed, unchanged, delete, refused, bytes (of the moves)."
    )
    planned: int
    moved: int = Field(description="Versions the job put that are verified everywhere.")
    removed: int
    errors: int
    done: bool


class PlanLine(BaseModel):
    name: str
    action: Literal["new", "changed", "unchanged", "delete", "refused"]
    size: int


def book(svc: Services) -> SyncBook:
    if svc.deps.syncs is None:
        raise Problem(503, "this API keeps no sync jobs")
    return svc.deps.syncs


def first_page(body: SyncBody, who: Principal, svc: Services, request_id: str) -> Any:
    try:
        return control.first_page(
            body.source,
            body.targets or svc.settings.targets,
            who.tenant,
            prefix=body.prefix,
            rules=[(r.kind, r.glob) for r in body.rules],
            delete=body.delete,
            checksum=body.checksum,
            actor=who.actor(request_id).name,
        )
    except ValueError as exc:
        raise Problem(422, str(exc).replace("\n", "; ")) from None


async def viewed(svc: Services, who: Principal, job_id: str) -> SyncView:
    job = await book(svc).job(job_id)
    if job is None or not who.sees(job["tenant"]):
        raise Problem(404, f"no sync job {job_id!r}")
    return view(await book(svc).status(job))


def view(status: dict[str, Any]) -> SyncView:
    return SyncView(id=status["_id"], **{k: v for k, v in status.items() if k != "_id"})


@router.post("/v1/syncs", operation_id="createSync", summary="Start a sync job", status_code=202)
async def create_sync(body: SyncBody, who: MayWrite, svc: Svc, request_id: RequestId) -> SyncView:
    first = first_page(body, who, svc, request_id)
    try:
        await control.start(svc.settings, first, book(svc))
    except Permanent as exc:
        raise Problem(403, str(exc)) from None
    return await viewed(svc, who, first.correlation_id)


@router.post(
    "/v1/syncs/plan",
    operation_id="planSync",
    summary="What a sync job would do, name by name, moving nothing",
)
async def plan_sync(
    body: SyncBody, who: MayWrite, svc: Svc, request_id: RequestId
) -> list[PlanLine]:
    first = first_page(body, who, svc, request_id)
    try:
        return [
            PlanLine(name=name, action=action.value, size=size)  # type: ignore[arg-type]
            async for name, action, size in control.dry_run(svc.settings, first, book(svc))
        ]
    except Permanent as exc:
        raise Problem(403, str(exc)) from None


@router.get("/v1/syncs", operation_id="listSyncs", summary="The tenant's sync jobs, newest first")
async def list_syncs(who: MayRead, svc: Svc) -> list[SyncView]:
    jobs = await book(svc).jobs(who.tenant)
    return [view(await book(svc).status(job)) for job in jobs]


@router.get("/v1/syncs/{job_id}", operation_id="getSync", summary="A sync job and its counters")
async def get_sync(job_id: str, who: MayRead, svc: Svc) -> SyncView:
    return await viewed(svc, who, job_id)


@router.delete(
    "/v1/syncs/{job_id}",
    operation_id="cancelSync",
    summary="Cancel a sync job still listing: it plans no further page",
)
async def cancel_sync(job_id: str, who: MayWrite, svc: Svc) -> SyncView:
    current = await viewed(svc, who, job_id)
    if not await book(svc).cancel(job_id, datetime.now(UTC)):
        raise Problem(409, f"sync job {job_id} is {current.state}, not listing")
    return await viewed(svc, who, job_id)
