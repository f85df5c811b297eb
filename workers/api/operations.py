"""Operations: health, readiness, metrics, the whole audit trail, dead letters and their
replay, and the JSON Schemas of the topic interface."""

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query
from fastapi.responses import JSONResponse, PlainTextResponse
from prometheus_client import CONTENT_TYPE_LATEST, Counter, generate_latest
from pydantic import BaseModel, Field

from schemas.events import RecordRef
from schemas.jsonschema import documents
from topics import ALL
from workers.api import tokens
from workers.api.deps import VERSION, MayAdmin, MayRead, Svc
from workers.api.objects import AuditEntry
from workers.api.problems import Problem, UtcDateTime
from workers.app import fetch_record
from workers.broker import kafka_options
from workers.errors import MovingDataError
from workers.health import NEEDS, readiness
from workers.mongo import IDS_PER_QUERY

router = APIRouter()
REPLAYS = Counter("movingdata_api_replays_total", "Dead letters replayed through the API")


class Health(BaseModel):
    status: str
    version: str


class Readiness(BaseModel):
    ready: bool = Field(description="Every required dependency answers (and a store).")
    checks: dict[str, Literal["ok", "timeout", "unreachable"]]
    required: list[str] = Field(description="What this process cannot serve without.")


class DeadLetterView(BaseModel):
    id: str
    object_id: str
    version: int
    correlation_id: str
    stage: str
    reason: str
    topic: str
    partition: int
    offset: int
    produced_at: UtcDateTime


class Page(BaseModel):
    next_cursor: str | None = None


class AuditPage(Page):
    items: list[AuditEntry]


class DeadLetterPage(Page):
    items: list[DeadLetterView]


class Identity(BaseModel):
    name: str
    tenant: str
    scopes: list[str]
    actor: str = Field(description="How the audit trail names this token's actions.")


class Replayed(BaseModel):
    id: str
    topic: str
    partition: int
    offset: int


@router.get(
    "/healthz",
    tags=["operations"],
    operation_id="getHealth",
    summary="Liveness: the process answers",
)
async def healthz() -> Health:
    return Health(status="ok", version=VERSION)


@router.get(
    "/readyz",
    tags=["operations"],
    operation_id="getReadiness",
    summary="Readiness: the broker, the database and at least one store answer (each reported)",
    response_model=Readiness,
    responses={503: {"model": Readiness, "description": "Something is not ready"}},
)
async def readyz(svc: Svc) -> JSONResponse:
    body = Readiness.model_validate(await readiness(svc.settings, svc.deps.stores, NEEDS["api"]))
    return JSONResponse(body.model_dump(), status_code=200 if body.ready else 503)


@router.get(
    "/metrics",
    tags=["operations"],
    operation_id="getMetrics",
    summary="Prometheus metrics",
    response_class=PlainTextResponse,
    responses={200: {"content": {CONTENT_TYPE_LATEST: {"schema": {"type": "string"}}}}},
)
async def metrics() -> PlainTextResponse:
    return PlainTextResponse(generate_latest(), media_type=CONTENT_TYPE_LATEST)


@router.get(
    "/v1/audit",
    tags=["audit"],
    operation_id="listAudit",
    summary="Audit records: the token's tenant's objects (every object's with admin)",
)
async def audit(
    who: MayRead,
    svc: Svc,
    object_id: str | None = None,
    action: str | None = None,
    since: Annotated[
        UtcDateTime | None, Query(description="Records produced after this time, oldest first.")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    cursor: str | None = None,
) -> AuditPage:
    if since is not None and cursor is not None:
        raise Problem(422, "since and cursor exclude each other")
    query: dict[str, Any] = {}
    if object_id:
        query["object_id"] = object_id
    if action:
        query["action"] = action
    if cursor:
        query["_id"] = {"$gt": cursor}
    order = [("_id", 1)]
    if since is not None:
        query["produced_at"] = {"$gt": since}
        order = [("produced_at", 1), ("_id", 1)]
    found = svc.state.db["audit"].find(query).sort(order).limit(limit + 1)
    rows = [r async for r in found]
    mine = rows[:limit] if who.allows("admin") else await of_tenant(svc, who.tenant, rows[:limit])
    return AuditPage(
        items=[AuditEntry(**r) for r in mine],
        next_cursor=rows[limit - 1]["_id"] if len(rows) > limit and since is None else None,
    )


async def of_tenant(svc: Svc, tenant: str, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The records of ``rows`` whose object belongs to ``tenant`` (its versions say so)."""
    ids = list({r["object_id"] for r in rows})
    owned: set[str] = set()
    for start in range(0, len(ids), IDS_PER_QUERY):  # $in lists FerretDB answers by index
        asked = {"object_id": {"$in": ids[start : start + IDS_PER_QUERY]}, "tenant": tenant}
        owned |= {
            d["object_id"] async for d in svc.state.db["objects"].find(asked, {"object_id": 1})
        }
    return [r for r in rows if r["object_id"] in owned]


@router.get(
    "/v1/whoami",
    tags=["operations"],
    summary="Who this token is: name, tenant, scopes",
    operation_id="whoami",
)
async def whoami(who: MayRead) -> Identity:
    return Identity(
        name=who.name, tenant=who.tenant, scopes=tokens.ordered(who.scopes), actor=f"api:{who.name}"
    )


def letter_view(doc: dict[str, Any]) -> DeadLetterView:
    return DeadLetterView(
        id=doc["_id"], **{k: doc[k] for k in DeadLetterView.model_fields if k != "id"}
    )


@router.get(
    "/v1/deadletters",
    tags=["dead letters"],
    operation_id="listDeadLetters",
    summary="Dead letters with their reasons (admin)",
)
async def deadletters(
    who: MayAdmin,
    svc: Svc,
    stage: str | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    cursor: str | None = None,
) -> DeadLetterPage:
    query: dict[str, Any] = {"stage": stage} if stage else {}
    if cursor:
        query["_id"] = {"$gt": cursor}
    rows = [
        d async for d in svc.state.db["deadletters"].find(query).sort("_id", 1).limit(limit + 1)
    ]
    items = [letter_view(d) for d in rows[:limit]]
    return DeadLetterPage(
        items=items, next_cursor=rows[limit - 1]["_id"] if len(rows) > limit else None
    )


@router.post(
    "/v1/deadletters/{letter_id}/replay",
    status_code=202,
    operation_id="replayDeadLetter",
    tags=["dead letters"],
    summary="Send a dead letter's original record again, once its cause is fixed (admin)",
)
async def replay(letter_id: str, who: MayAdmin, svc: Svc) -> Replayed:
    letter = await svc.state.db["deadletters"].find_one({"_id": letter_id})
    if letter is None:
        raise Problem(404, f"no dead letter {letter_id}")
    topics = {spec.name(svc.settings.topic_prefix) for spec in ALL}
    if letter["topic"] not in topics or letter["offset"] < 0:
        raise Problem(409, "this dead letter names no record of the chain to replay")
    record = RecordRef(
        topic=letter["topic"], partition=letter["partition"], offset=letter["offset"]
    )
    try:  # the original bytes, from their topic: the letter itself keeps no plaintext
        original = await fetch_record(kafka_options(svc.settings), record)
    except MovingDataError as exc:
        raise Problem(503, str(exc)) from None
    await svc.producer.producer.send_and_wait(record.topic, original.value, key=original.key)
    REPLAYS.inc()
    return Replayed(
        id=letter_id, topic=record.topic, partition=record.partition, offset=record.offset
    )


@router.get(
    "/v1/schemas",
    tags=["schemas"],
    operation_id="listSchemas",
    summary="The event kinds with a JSON Schema",
)
async def schema_index(who: MayRead) -> list[str]:
    return sorted(name.removesuffix(".json") for name in documents())


@router.get(
    "/v1/schemas/{name}",
    tags=["schemas"],
    operation_id="getSchema",
    summary="The JSON Schema of one event kind (as committed in schemas/json)",
)
async def schema(name: str, who: MayRead) -> dict[str, Any]:
    found = documents().get(f"{name}.json")
    if found is None:
        raise Problem(404, f"no schema {name!r}")
    return found
