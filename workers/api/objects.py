"""``/v1/objects``: put (a streamed, staged upload), list, show, read (streamed, ranges),
delete or forget (answered with the request's id and a status to poll, kept in
``removal_requests``), verify, and each object's audit trail. A token sees its own tenant only.
What a request sets in motion is recorded as the token's (``api:<token name>``), with its
tenant and the request's id (``X-Request-Id``; a put's request id)."""

import hashlib
import re
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Header, Query, Request, Response
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, Field, ValidationError

from schemas.events import TENANT, Placement, Source, Verdict, object_id_for, safe_key
from topics import INGEST
from workers import staging
from workers.api import problems
from workers.api.deps import Authenticated, MayRead, MayWrite, RequestId, Svc, require
from workers.api.problems import HELD, PROBLEMS_CONTENT, Problem, UtcDateTime
from workers.api.tokens import Principal
from workers.catalog import covering
from workers.client.identity import Actor
from workers.client.ops import TOMBSTONE, Held, request_removal, scrub
from workers.client.puts import parse_tags, put_request, wait_puts
from workers.client.restore import (
    Rehydrating,
    Restored,
    RestoreFailed,
    open_plaintext,
    record_restore,
)
from workers.client.state import Unknown, pick_version
from workers.core.holds import hold_state
from workers.core.reconcile import tombstoned, unremoved
from workers.core.versions import GONE, RESTORABLE, STATES, Content, live_replicas, verdict
from workers.errors import MovingDataError, NotFound

router = APIRouter(prefix="/v1/objects", tags=["objects"])
StateName = Literal["pending", "verified", "degraded", "lost", "failed", "deleted", "shredded"]
assert set(STATES) == set(StateName.__args__)  # type: ignore[attr-defined]
RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")
IDEMPOTENCY_KEY = r'^"?[A-Za-z0-9._:-]{1,128}"?$'  # a bare or quoted (structured field) key
# A put's answer: created once verified, accepted while in flight, else the request's end.
PUT_STATUS = {"verified": 201, "accepted": 202, "timeout": 202, "unchanged": 200, "failed": 200}


class Replica(BaseModel):
    key: str | None = None
    verdict: Verdict | None = None
    checked_at: UtcDateTime | None = None
    proven_at: UtcDateTime | None = None
    verified_at: UtcDateTime | None = None
    tier: str | None = None
    tiered_at: UtcDateTime | None = None
    tier_reason: str | None = None
    verified_by: Literal["store-digest", "read-back"] | None = None
    repaired_from: str | None = None
    removed_at: UtcDateTime | None = None


class VersionView(BaseModel):
    version: int
    state: StateName
    size: int | None = None
    plaintext_sha256: str | None = None
    ciphertext_sha256: str | None = None
    key_id: str | None = None
    created_at: UtcDateTime | None = None
    requested_by: str | None = None
    last_read_at: UtcDateTime | None = None
    replicas: dict[str, Replica] = Field(default_factory=dict)
    retain_until: UtcDateTime | None = Field(None, description="No removal before then.")
    legal_hold: bool = Field(False, description="No removal until an admin releases it.")


class ObjectView(BaseModel):
    object_id: str
    tenant: str
    name: str
    versions: list[VersionView]


class ObjectSummary(BaseModel):
    object_id: str
    tenant: str
    name: str
    version: int
    state: StateName
    size: int | None = None
    replicas: list[str]


class Listing(BaseModel):
    items: list[ObjectSummary]
    prefixes: list[str] = Field(
        default_factory=list, description="With a `delimiter`: the folders under `prefix`."
    )
    next_cursor: str | None = Field(None, description="Pass as `cursor` for the next page.")


class PutAnswer(BaseModel):
    object_id: str
    name: str
    request_id: str
    version: int | None = Field(None, description="Known once ingest decided.")
    outcome: Literal["accepted", "verified", "unchanged", "failed", "timeout"]
    reason: str = ""
    size: int
    plaintext_sha256: str


class Removal(BaseModel):
    object_id: str
    versions: list[int]
    mode: Literal["delete", "forget"]
    request_id: str = Field("", description="Poll `status` (also the `Location`) with it.")
    status: str = Field("", description="Where the removal's progress is answered.")


class VersionRemoval(BaseModel):
    version: int
    state: StateName
    tombstoned: bool = Field(description="Its data key is destroyed; it can never come back.")
    replicas: dict[str, Literal["pending", "done"]]


class RemovalStatus(BaseModel):
    request_id: str
    object_id: str
    mode: Literal["delete", "forget"]
    requested_at: UtcDateTime
    status: Literal["pending", "done"]
    versions: list[VersionRemoval]


class Verification(BaseModel):
    object_id: str
    replicas: int


class AuditEntry(BaseModel):
    event_id: str
    object_id: str = ""
    seq: int
    version: int
    produced_at: UtcDateTime
    actor: str = ""
    correlation_id: str = Field("", description="The request the record belongs to.")
    stage: str
    action: str
    outcome: str
    detail: dict[str, Any]
    hash: str


def version_view(doc: dict[str, Any], holds: Sequence[dict[str, Any]] = ()) -> VersionView:
    """The version as the API shows it; ``holds``: those that may cover it (none: unheld)."""
    retain_until, legal_hold = hold_state(doc, holds, datetime.now(UTC))
    return VersionView(
        version=doc["version"],
        state=doc.get("state", "pending"),
        size=doc.get("size"),
        plaintext_sha256=doc.get("plaintext_sha256"),
        ciphertext_sha256=doc.get("ciphertext_sha256"),
        key_id=doc.get("key_id"),
        created_at=doc.get("created_at"),
        requested_by=doc.get("requested_by"),
        last_read_at=doc.get("last_read_at"),
        replicas={
            t: Replica(**{**r, "verdict": verdict(r)})
            for t, r in (doc.get("replicas") or {}).items()
        },
        retain_until=retain_until,
        legal_hold=legal_hold,
    )


async def versions_of(svc: Svc, who: Principal, object_id: str) -> list[dict[str, Any]]:
    """The object's versions, or 404 when it does not exist for this token."""
    docs = await svc.state.objects(object_id)
    if not docs or not who.sees(docs[0].get("tenant", "")):
        raise Problem(404, f"no object {object_id}")
    return docs


@router.post(
    "",
    status_code=202,
    operation_id="putObject",
    summary="Put an object: the body is its bytes, streamed to the staging area",
    description="202 while the version is in flight, 201 once every replica is verified "
    "(`wait`), 200 when the put ended otherwise (unchanged, failed); `Location` names the "
    "object. With an `Idempotency-Key`, a retry is answered for the same version.",
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "application/octet-stream": {"schema": {"type": "string", "format": "binary"}}
            },
        }
    },
    responses={
        200: {"model": PutAnswer, "description": "The put ended unchanged or failed"},
        201: {"model": PutAnswer, "description": "Verified on every replica"},
        413: {"description": "Content too large", "content": PROBLEMS_CONTENT},
    },
)
async def put_object(
    request: Request,
    response: Response,
    who: MayWrite,
    svc: Svc,
    request_id: RequestId,
    name: Annotated[str, Query(description="The object's name (NFC, relative).")],
    targets: Annotated[
        str | None, Query(description="Comma-separated; the first is the primary.")
    ] = None,
    tag: Annotated[list[str], Query(description="key=value, repeatable.")] = [],  # noqa: B006
    force: bool = False,
    wait: Annotated[bool, Query(description="Wait until every replica is verified.")] = False,
    timeout: Annotated[float, Query(gt=0, le=3600)] = 600.0,
    idempotency_key: Annotated[
        str | None,
        Header(pattern=IDEMPOTENCY_KEY, description="The same key on a retry: the same version."),
    ] = None,
) -> PutAnswer:
    settings = svc.settings
    if idempotency_key is not None:
        request_id = request.state.request_id = keyed(who.tenant, idempotency_key)
    limit = settings.api_max_upload_bytes
    # A transport header, not a parameter of the operation (uvicorn refuses a malformed one).
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise Problem(413, f"the body is over {limit} bytes")
    try:
        placement = Placement(
            name=name,
            targets=tuple((targets or ",".join(settings.targets)).split(",")),  # type: ignore[arg-type]
            tenant=who.tenant,
            tags=parse_tags(tag),
        )
    except ValidationError as exc:
        raise Problem(422, "; ".join(e["msg"] for e in exc.errors())) from None
    except ValueError as exc:  # a tag that is not key=value
        raise Problem(422, str(exc)) from None
    key = staging.staged_key(settings.staging_prefix, placement.tenant, request_id)
    # A retried key whose first upload has its version: nothing is staged or sent again.
    decided = (await svc.state.decisions([request_id])).get(request_id) if idempotency_key else None
    if decided is not None and decided["object_id"] != object_id_for(placement.tenant, name):
        raise Problem(422, "this Idempotency-Key was used for another name")

    async def body() -> AsyncIterator[bytes]:
        received = 0
        async for chunk in request.stream():
            received += len(chunk)
            if received > limit:  # the staged write is aborted: nothing is left behind
                raise Problem(413, f"the body is over {limit} bytes")
            yield chunk

    if decided is None:
        staged = await staging.upload(svc.deps.staging, key, body())
        content = Content(staged.size, staged.sha256)
    else:
        digest, size = hashlib.sha256(), 0
        async for chunk in body():
            digest.update(chunk)
            size += len(chunk)
        content = Content(size, digest.hexdigest())
        first = await svc.state.object(decided["object_id"], decided["version"])
        if first is not None and first.get("plaintext_sha256") not in (None, content.sha256):
            raise Problem(422, "this Idempotency-Key was used for other bytes")
    put = put_request(
        placement,
        Source(staged=key),
        content,
        force=force,
        request_id=request_id,
        actor=who.actor(request_id),
    )
    if decided is None:
        await svc.producer.send(INGEST, put)
        await svc.producer.producer.flush()
    (result,) = await wait_puts(svc.state, [put], timeout if wait else 30.0, decided_only=not wait)
    outcome = result.outcome
    response.status_code = PUT_STATUS[outcome]
    response.headers["Location"] = f"{router.prefix}/{put.object_id}"
    return PutAnswer(
        object_id=put.object_id,
        name=placement.name,
        request_id=request_id,
        version=result.version,
        outcome=outcome,  # type: ignore[arg-type]
        reason=result.reason,
        size=content.size,
        plaintext_sha256=content.sha256,
    )


def keyed(tenant: str, idempotency_key: str) -> str:
    """The request id of a put with this ``Idempotency-Key``: the same for every retry, and
    the tenant's own (two tenants' keys never name one request)."""
    key = idempotency_key.strip('"')
    return hashlib.sha256(f"{tenant}\0{key}".encode()).hexdigest()[:32]


@router.get(
    "",
    operation_id="listObjects",
    summary="List objects: the newest version of each name, or every version",
)
async def list_objects(
    who: MayRead,
    svc: Svc,
    prefix: str = "",
    state: StateName | None = None,
    store: Literal["s3", "azure", "gcs"] | None = None,
    tier: Literal["hot", "warm", "cold", "archive"] | None = None,
    all_versions: bool = False,
    delimiter: Annotated[
        str, Query(max_length=8, description="Fold names past it into `prefixes` (folders).")
    ] = "",
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    cursor: str | None = None,
    tenant: Annotated[
        str | None, Query(pattern=TENANT, description="Another tenant: the admin scope.")
    ] = None,
) -> Listing:
    if tenant is not None and not who.sees(tenant):
        require(who, "admin")
    if delimiter and (state or store or tier or all_versions):
        raise Problem(422, "a delimiter lists the newest versions, without filters")
    page = await svc.state.listing(
        tenant=tenant or who.tenant,
        prefix=prefix,
        state=state,
        store=store,
        tier=tier,
        all_versions=all_versions,
        delimiter=delimiter,
        limit=limit,
        after=cursor,
    )
    items = [
        ObjectSummary(
            object_id=d["object_id"],
            tenant=d.get("tenant", ""),
            name=d.get("name", ""),
            version=d["version"],
            state=d.get("state", "pending"),
            size=d.get("size"),
            replicas=list(live_replicas(d)),
        )
        for d in page.rows
    ]
    return Listing(items=items, prefixes=page.prefixes, next_cursor=page.after)


@router.get(
    "/by-name/{name:path}",
    operation_id="getObjectByName",
    summary="The object of this exact name in the token's tenant",
)
async def get_object_by_name(name: str, who: MayRead, svc: Svc) -> ObjectView:
    try:
        object_id = object_id_for(who.tenant, safe_key(name))
    except ValueError as exc:
        raise Problem(404, f"no object named {name!r}: {exc}") from None
    return await get_object(object_id, who, svc)


@router.head(
    "/{object_id}",
    operation_id="headObject",
    summary="The headers of `getObject`, without its body",
    response_class=Response,
)
async def head_object(object_id: str, who: MayRead, svc: Svc) -> Response:
    body = (await get_object(object_id, who, svc)).model_dump_json().encode()
    return Response(headers={"Content-Length": str(len(body)), "Content-Type": "application/json"})


@router.get(
    "/{object_id}",
    operation_id="getObject",
    summary="An object: every version, its replicas and digests",
)
async def get_object(object_id: str, who: MayRead, svc: Svc) -> ObjectView:
    docs = await versions_of(svc, who, object_id)
    holds = await covering(svc.state.db, docs)
    return ObjectView(
        object_id=object_id,
        tenant=docs[0].get("tenant", ""),
        name=docs[0].get("name", ""),
        versions=[version_view(d, holds) for d in docs],
    )


def byte_range(header: str | None, size: int) -> tuple[int, int] | None:
    """``[start, end)`` of a single-range ``Range`` header (None: the whole object)."""
    if header is None:
        return None
    match = RANGE.match(header.strip())
    if match is None or (not match.group(1) and not match.group(2)):
        raise Problem(
            416,
            "only one range of the form bytes=start-end is served",
            {"Content-Range": f"bytes */{size}"},
        )
    first, last = match.group(1), match.group(2)
    if not first:  # a suffix: the last N bytes
        start, end = max(0, size - int(last)), size
    else:
        start, end = int(first), min(size, int(last) + 1) if last else size
    if start >= size or end <= start:
        raise Problem(
            416,
            f"the range is outside the object's {size} bytes",
            {"Content-Range": f"bytes */{size}"},
        )
    return start, end


def etag(doc: dict[str, Any]) -> str:
    """A version's strong ETag: its plaintext's SHA-256 (the same bytes from any replica)."""
    return f'"{doc["plaintext_sha256"]}"'


def not_modified(if_none_match: str | None, tag: str) -> bool:
    """Whether ``If-None-Match`` names ``tag`` (or is ``*``): weak comparison, RFC 9110."""
    if if_none_match is None:
        return False
    tags = {t.strip().removeprefix("W/") for t in if_none_match.split(",")}
    return "*" in tags or tag in tags


def readable(doc: dict[str, Any]) -> None:
    """409 unless the version has a verified replica to read; the problem's type says why."""
    state = doc.get("state", "pending")
    if state not in RESTORABLE:
        kind = {"pending": problems.PENDING, **dict.fromkeys(GONE, problems.TOMBSTONED)}
        detail = f"v{doc['version']} is {state}: nothing to read"
        raise Problem(409, detail, kind=kind.get(state, "about:blank"))


def content_headers(doc: dict[str, Any], span: tuple[int, int] | None) -> dict[str, str]:
    """What a read of ``span`` (None: the whole version) answers besides its bytes."""
    size = int(doc["size"])
    start, end = span or (0, size)
    headers = {
        "Accept-Ranges": "bytes",
        "Content-Length": str(end - start),
        "ETag": etag(doc),
        "X-Version": str(doc["version"]),
    }
    if span is not None:
        headers["Content-Range"] = f"bytes {start}-{end - 1}/{size}"
    return headers


async def readable_version(
    svc: Svc, who: Principal, object_id: str, version: int | None
) -> dict[str, Any]:
    docs = await versions_of(svc, who, object_id)
    try:
        doc = pick_version(docs, version, docs[0].get("name", object_id))
    except Unknown as exc:
        raise Problem(404, str(exc)) from None
    readable(doc)
    return doc


IfNoneMatch = Annotated[str | None, Header(description="A 304 when it names the ETag.")]
IfRange = Annotated[str | None, Header(description="Serve `Range` only if this is the ETag.")]


def conditional(
    doc: dict[str, Any], range: str | None, if_none_match: str | None, if_range: str | None
) -> Response | str | None:
    """A 304 when the client holds this version already; else the ``Range`` to serve: the one
    asked for unless ``If-Range`` names another version (then the whole body)."""
    if not_modified(if_none_match, etag(doc)):
        return Response(
            status_code=304, headers={"ETag": etag(doc), "X-Version": str(doc["version"])}
        )
    return range if if_range is None or if_range.strip() == etag(doc) else None


@router.head(
    "/{object_id}/content",
    operation_id="headContent",
    summary="The headers of `getContent` from the catalog: no replica is opened",
    response_class=Response,
    responses={
        206: {"description": "The range asked for"},
        304: {"description": "Not modified"},
        409: {"description": "The version is not readable", "content": PROBLEMS_CONTENT},
        416: {"description": "Range not satisfiable", "content": PROBLEMS_CONTENT},
    },
)
async def head_content(
    object_id: str,
    who: MayRead,
    svc: Svc,
    version: Annotated[int | None, Query(ge=1)] = None,
    range: Annotated[str | None, Header()] = None,
    if_none_match: IfNoneMatch = None,
    if_range: IfRange = None,
) -> Response:
    doc = await readable_version(svc, who, object_id, version)
    asked = conditional(doc, range, if_none_match, if_range)
    if isinstance(asked, Response):
        return asked
    span = byte_range(asked, int(doc["size"]))
    return Response(
        status_code=206 if span else 200,
        headers=content_headers(doc, span),
        media_type="application/octet-stream",
    )


@router.get(
    "/{object_id}/content",
    operation_id="getContent",
    summary="The plaintext of a version (the newest verified one by default), streamed",
    response_class=StreamingResponse,
    responses={
        200: {
            "content": {
                "application/octet-stream": {"schema": {"type": "string", "format": "binary"}}
            }
        },
        206: {"description": "The range asked for", "content": {"application/octet-stream": {}}},
        304: {"description": "Not modified: `If-None-Match` names this version"},
        409: {"description": "The version is not readable", "content": PROBLEMS_CONTENT},
        416: {"description": "Range not satisfiable", "content": PROBLEMS_CONTENT},
    },
)
async def get_content(
    object_id: str,
    who: MayRead,
    svc: Svc,
    request_id: RequestId,
    version: Annotated[int | None, Query(ge=1)] = None,
    replica: Literal["s3", "azure", "gcs"] | None = None,
    range: Annotated[str | None, Header()] = None,
    if_none_match: IfNoneMatch = None,
    if_range: IfRange = None,
) -> Response:
    doc = await readable_version(svc, who, object_id, version)
    asked = conditional(doc, range, if_none_match, if_range)
    if isinstance(asked, Response):
        return asked
    return await plaintext(svc, doc, asked, replica, who.actor(request_id))


async def plaintext(
    svc: Svc, doc: dict[str, Any], range: str | None, replica: str | None, actor: Actor
) -> StreamingResponse:
    """A version's plaintext (or the ``Range`` asked for) streamed from a verified replica,
    each chunk authenticated and a whole read's SHA-256 checked at its end (a mismatch cuts
    the response), the read audited as ``actor``'s: the content route's, a share link's."""
    readable(doc)
    size = int(doc["size"])
    span = byte_range(range, size)
    try:
        target, chunks, failed = await open_plaintext(
            doc, svc.deps.stores, svc.deps.data_keys, svc.tiering, replica
        )
    except RestoreFailed as exc:
        await record_restore(svc.settings, doc, None, exc.failed, actor=actor)
        raise Problem(502, str(exc), kind=problems.STORE_DOWN) from None
    except Rehydrating as exc:
        await record_restore(svc.settings, doc, None, exc.failed, exc, actor=actor)
        retry = {"Retry-After": str(int(exc.hours * 3600))}
        raise Problem(503, str(exc), retry, problems.REHYDRATING) from None
    except NotFound as exc:  # deleted while being read
        raise Problem(409, str(exc), kind=problems.TOMBSTONED) from None
    except MovingDataError as exc:
        raise Problem(503, str(exc), kind=problems.STORE_DOWN) from None
    start, end = span or (0, size)

    async def body() -> AsyncIterator[bytes]:
        digest, position = hashlib.sha256(), 0
        async for chunk in chunks:
            if span is None:
                digest.update(chunk)
            piece = chunk[max(0, start - position) : max(0, end - position)]
            position += len(chunk)
            if piece:
                yield piece
            if span is not None and position >= end:
                break  # every chunk so far authenticated; the rest is not needed
        if span is None and digest.hexdigest() != doc["plaintext_sha256"]:
            failure = {target: "plaintext SHA-256 differs"}
            await record_restore(svc.settings, doc, None, failure, actor=actor)
            raise RuntimeError("plaintext SHA-256 differs from the recorded one: response cut")
        restored = Restored(
            doc["object_id"], doc["version"], target, end - start, doc["plaintext_sha256"]
        )
        await record_restore(svc.settings, doc, restored, failed, actor=actor)

    return StreamingResponse(
        body(),
        status_code=206 if span else 200,
        media_type="application/octet-stream",
        headers={**content_headers(doc, span), "X-Replica": target},
    )


@router.delete(
    "/{object_id}",
    status_code=202,
    operation_id="deleteObject",
    summary="Delete versions (the delete scope), or forget them (the forget scope)",
    responses={409: {"description": "A version is held", "content": PROBLEMS_CONTENT}},
)
async def delete_object(
    object_id: str,
    who: Authenticated,
    svc: Svc,
    request_id: RequestId,
    response: Response,
    version: Annotated[int | None, Query(ge=1, description="Default: the newest.")] = None,
    all_versions: bool = False,
    forget: Annotated[bool, Query(description="Crypto-shred: destroy the key first.")] = False,
) -> Removal:
    # Forget is crypto-shredding (the key destroyed first): the delete scope is not enough.
    require(who, "forget" if forget else "delete")
    docs = await versions_of(svc, who, object_id)
    mode = "forget" if forget else "delete"
    if version is not None and all_versions:
        raise Problem(422, "version and all_versions exclude each other")
    try:
        chosen = (
            docs
            if all_versions
            else [pick_version(docs, version, object_id)]
            if version
            else [docs[-1]]
        )
    except Unknown as exc:
        raise Problem(404, str(exc)) from None
    todo = [d for d in chosen if d.get("state") not in ("shredded", TOMBSTONE[mode])]
    if todo:
        reason = f"api {mode} by {who.name}"
        actor = who.actor(request_id)
        try:
            await request_removal(svc.settings, todo, mode, reason, actor=actor, db=svc.state.db)
        except Held as exc:  # even for an admin: a hold is released first
            raise Problem(409, str(exc), kind=HELD) from None
    versions = [d["version"] for d in chosen]
    await svc.state.db["removal_requests"].insert_one(
        {
            "_id": request_id,
            "object_id": object_id,
            "tenant": docs[0].get("tenant", ""),
            "mode": mode,
            "versions": versions,
            "requested_at": datetime.now(UTC),
            "actor": who.actor(request_id).name,
        }
    )
    status = f"/v1/objects/{object_id}/removals/{request_id}"
    response.headers["Location"] = status
    return Removal(
        object_id=object_id,
        versions=versions,
        mode=mode,  # type: ignore[arg-type]
        request_id=request_id,
        status=status,
    )


@router.get(
    "/{object_id}/removals/{request_id}",
    operation_id="getRemoval",
    summary="How far a delete (or forget) is: per version and replica, pending or done",
)
async def removal_status(object_id: str, request_id: str, who: MayRead, svc: Svc) -> RemovalStatus:
    asked = await svc.state.db["removal_requests"].find_one({"_id": request_id})
    if asked is None or asked["object_id"] != object_id or not who.sees(asked["tenant"]):
        raise Problem(404, f"no removal {request_id} of object {object_id}")
    docs = {d["version"]: d for d in await svc.state.objects(object_id)}
    mode, views = asked["mode"], []
    for version in asked["versions"]:
        doc = docs.get(version, {"version": version})
        left = set(unremoved(doc))
        views.append(
            VersionRemoval(
                version=version,
                state=doc.get("state", "pending"),
                tombstoned=tombstoned(doc, mode),
                replicas={t: "pending" if t in left else "done" for t in doc.get("targets", ())},
            )
        )
    done = all(v.tombstoned and "pending" not in v.replicas.values() for v in views)
    return RemovalStatus(
        request_id=request_id,
        object_id=object_id,
        mode=mode,
        requested_at=asked["requested_at"],
        status="done" if done else "pending",
        versions=views,
    )


class VerifyRequest(BaseModel):
    versions: list[int] | None = Field(None, description="Default: every live version.")


@router.post(
    "/{object_id}/verify",
    status_code=202,
    operation_id="verifyObject",
    summary="Re-verify replicas (a scrub)",
)
async def verify_object(
    object_id: str,
    who: MayWrite,
    svc: Svc,
    request_id: RequestId,
    body: VerifyRequest | None = None,
) -> Verification:
    docs = await versions_of(svc, who, object_id)
    wanted = set(body.versions) if body and body.versions else None
    live = [
        d for d in docs if d.get("state") not in GONE and (wanted is None or d["version"] in wanted)
    ]
    sent = await scrub(svc.settings, live, actor=who.actor(request_id))
    return Verification(object_id=object_id, replicas=sent)


@router.get(
    "/{object_id}/audit",
    operation_id="getObjectAudit",
    summary="The object's audit trail, in chain order",
)
async def object_audit(object_id: str, who: MayRead, svc: Svc) -> list[AuditEntry]:
    await versions_of(svc, who, object_id)
    return [AuditEntry(**r) for r in await svc.state.audit(object_id)]
