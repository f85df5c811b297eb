"""Share links (``workers.client.links``): ``POST /v1/objects/{id}/links`` makes one (the
write scope), ``GET`` there lists an object's, ``DELETE /v1/links/{id}`` revokes one (the
write scope, the link's tenant). ``GET /v1/links/{id}?exp=...&sig=...`` serves the linked
version's plaintext to whoever holds the URL, with no bearer token: 404 for an unknown link or
a signature that is not the link's, 410 once it expired or was revoked; each use is audited as
``link:<id>``."""

from datetime import UTC, datetime, timedelta
from pathlib import PurePosixPath
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Header, Query, Request
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, Field

from workers.api.deps import MayRead, MayWrite, RequestId, Svc
from workers.api.objects import plaintext, readable_version, versions_of
from workers.api.problems import PROBLEMS_CONTENT, Problem, UtcDateTime
from workers.client import links

router = APIRouter(tags=["links"])
UNKNOWN = "no such link, or its URL was altered"


class LinkRequest(BaseModel):
    version: int | None = Field(default=None, ge=1, description="Default: the newest verified.")
    expires: str = Field(
        default="1h",
        max_length=64,
        description="A duration (30m, 1h, 7d) or an ISO time, within `LINK_MAX_EXPIRY_S`.",
    )
    note: str = Field(default="", max_length=500, description="Why or for whom; listed with it.")


class ShareLink(BaseModel):
    link_id: str
    object_id: str
    name: str
    version: int
    note: str
    created_by: str
    created_at: UtcDateTime
    expires_at: UtcDateTime
    revoked_at: UtcDateTime | None = None
    uses: int
    last_used_at: UtcDateTime | None = None


class CreatedLink(ShareLink):
    url: str = Field(description="Serves the version to whoever holds it, until it expires.")


def view(link: dict[str, Any]) -> dict[str, Any]:
    return {"link_id": link["_id"], **link}


@router.post(
    "/v1/objects/{object_id}/links",
    status_code=201,
    operation_id="createLink",
    summary="Share a version: a signed URL serving its plaintext, until it expires or is revoked",
    responses={409: {"description": "The version is not readable", "content": PROBLEMS_CONTENT}},
)
async def create_link(
    object_id: str,
    request: Request,
    who: MayWrite,
    svc: Svc,
    request_id: RequestId,
    body: LinkRequest | None = None,
) -> CreatedLink:
    key = links.signing_key(svc.settings)
    if key is None:
        raise Problem(503, "share links are off: the server has no MOVINGDATA_LINK_KEY")
    asked = body or LinkRequest()
    doc = await readable_version(svc, who, object_id, asked.version)
    longest = timedelta(seconds=svc.settings.link_max_expiry_s)
    try:
        expires_at = links.expiry(asked.expires, datetime.now(UTC), longest)
    except links.LinkError as exc:
        raise Problem(422, str(exc)) from None
    link = await links.create(
        svc.settings, svc.state.db, doc, expires_at, asked.note, who.actor(request_id)
    )
    base = svc.settings.api_public_url or str(request.base_url)
    return CreatedLink(url=links.url(base, link, key), **view(link))


@router.get(
    "/v1/objects/{object_id}/links",
    operation_id="listLinks",
    summary="An object's share links, live or not",
)
async def list_links(object_id: str, who: MayRead, svc: Svc) -> list[ShareLink]:
    await versions_of(svc, who, object_id)
    return [ShareLink(**view(d)) for d in await links.of_object(svc.state.db, object_id)]


@router.delete(
    "/v1/links/{link_id}",
    status_code=204,
    operation_id="revokeLink",
    summary="Revoke a share link: it answers 410 from now",
)
async def revoke_link(link_id: str, who: MayWrite, svc: Svc, request_id: RequestId) -> None:
    link = await links.find(svc.state.db, link_id)
    if link is None or not who.sees(link["tenant"]):
        raise Problem(404, f"no link {link_id}")
    await links.revoke(svc.settings, svc.state.db, link, who.actor(request_id))


@router.get(
    "/v1/links/{link_id}",
    operation_id="openLink",
    summary="A shared version's plaintext, streamed: no bearer token, the link's URL is the key",
    response_class=StreamingResponse,
    responses={
        200: {
            "content": {
                "application/octet-stream": {"schema": {"type": "string", "format": "binary"}}
            }
        },
        206: {"description": "The range asked for", "content": {"application/octet-stream": {}}},
        409: {"description": "The version is not readable", "content": PROBLEMS_CONTENT},
        410: {"description": "The link expired or was revoked", "content": PROBLEMS_CONTENT},
    },
)
async def open_link(
    link_id: str,
    svc: Svc,
    request_id: RequestId,
    exp: Annotated[int, Query(description="The link's expiry, in seconds since 1970.")],
    sig: Annotated[str, Query(description="The link's signature.")],
    range: Annotated[str | None, Header()] = None,
) -> StreamingResponse:
    key = links.signing_key(svc.settings)
    if key is None:  # links are off: none is served
        raise Problem(404, UNKNOWN)
    link = await links.find(svc.state.db, link_id)
    verdict = links.check(link, exp, sig, key, datetime.now(UTC))
    if link is None or verdict == "unknown":
        raise Problem(404, UNKNOWN)
    if verdict != "valid":
        raise Problem(410, f"this link is {verdict}")
    doc = await svc.state.object(link["object_id"], link["version"])
    if doc is None:
        raise Problem(410, "the version this link shares is gone")
    answer = await plaintext(svc, doc, range, None, links.actor(link, request_id))
    await links.used(svc.state.db, link_id)
    filename = quote(PurePosixPath(link["name"]).name)
    answer.headers["Content-Disposition"] = f"attachment; filename*=UTF-8''{filename}"
    return answer
