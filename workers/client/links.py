"""Share links: a signed, expiring, revocable URL serving one version's plaintext without a
bearer token (``GET /v1/links/{link id}?exp=...&sig=...``), as the API and the CLI make them.

A link is a document of ``links`` (``_id``: its id): the object, the version, the tenant, who
made it, when it expires and was revoked, how often it was used. Its URL carries the expiry
and an HMAC-SHA256, under the server's ``MOVINGDATA_LINK_KEY``, of (link id, object id,
version, expiry): a URL the key did not sign serves nothing, and a new key invalidates every
link. Making and revoking a link are audited on the version's chain by who asked; each use,
by ``link:<link id>`` naming who made the link.
"""

import hashlib
import hmac
import secrets
from datetime import UTC, datetime, timedelta
from typing import Any, Literal
from urllib.parse import urlencode

from pymongo.asynchronous.database import AsyncDatabase

from topics import AUDIT
from workers.api.tokens import TokenError, parse_expiry
from workers.client.identity import Actor
from workers.client.kafka import produce_events
from workers.client.ops import client_record
from workers.core.versions import utc
from workers.settings import Settings

Doc = dict[str, Any]
LINKS = "links"
Verdict = Literal["valid", "unknown", "expired", "revoked"]


class LinkError(ValueError):
    """An expiry that is not a time in the future within the longest a link may live."""


def expiry(text: str, now: datetime, longest: timedelta) -> datetime:
    """When a link made at ``now`` expires, to the second: a duration (``1h``, ``7d``) or an
    ISO date or time, at most ``longest`` after ``now``."""
    try:
        at = parse_expiry(text, now)
    except TokenError:
        at = None
    if at is None:  # "never", or not a time in the future
        raise LinkError(f"expiry {text!r} is not a duration (30m, 1h, 7d) or a time in the future")
    if at - now > longest:
        raise LinkError(f"a link lives at most {longest.total_seconds() / 3600:g} hours")
    return datetime.fromtimestamp(epoch(at), UTC)


def epoch(at: datetime) -> int:
    """``at`` in whole seconds since 1970 (a link's ``exp``)."""
    return int(utc(at).timestamp())


def signature(key: bytes, link_id: str, object_id: str, version: int, exp: int) -> str:
    """The HMAC-SHA256 of a link's URL, in hex."""
    message = f"{link_id}\n{object_id}\n{version}\n{exp}".encode()
    return hmac.new(key, message, hashlib.sha256).hexdigest()


def url(base: str, link: Doc, key: bytes) -> str:
    """The link's signed URL on the API at ``base``."""
    exp = epoch(link["expires_at"])
    sig = signature(key, link["_id"], link["object_id"], link["version"], exp)
    return f"{base.rstrip('/')}/v1/links/{link['_id']}?" + urlencode({"exp": exp, "sig": sig})


def check(link: Doc | None, exp: int, sig: str, key: bytes, now: datetime) -> Verdict:
    """What a request for a link gets: ``unknown`` for no such link or a URL ``key`` did not
    sign for it (one answer for both), else ``revoked``, ``expired`` or ``valid``."""
    if link is None or exp != epoch(link["expires_at"]):
        return "unknown"
    expected = signature(key, link["_id"], link["object_id"], link["version"], exp)
    if not hmac.compare_digest(expected.encode(), sig.encode()):
        return "unknown"
    if link.get("revoked_at") is not None:
        return "revoked"
    return "expired" if now >= utc(link["expires_at"]) else "valid"


def signing_key(settings: Settings) -> bytes | None:
    """The key signing links, None when links are off."""
    return settings.link_key.get_secret_value().encode() if settings.link_key else None


def actor(link: Doc, request_id: str) -> Actor:
    """Who a use of the link is in the audit trail."""
    return Actor(f"link:{link['_id']}", link["tenant"], request_id, shared_by=link["created_by"])


async def create(
    settings: Settings,
    db: AsyncDatabase[Doc],
    version: Doc,
    expires_at: datetime,
    note: str,
    by: Actor,
) -> Doc:
    """A new link to ``version`` (an ``objects`` document), stored and audited."""
    link = {
        "_id": secrets.token_urlsafe(16),
        "object_id": version["object_id"],
        "version": version["version"],
        "tenant": version["tenant"],
        "name": version["name"],
        "note": note,
        "created_by": by.name,
        "created_at": datetime.now(UTC),
        "expires_at": expires_at,
        "revoked_at": None,
        "uses": 0,
        "last_used_at": None,
    }
    await db[LINKS].insert_one(link)
    detail = {"link": link["_id"], "expires_at": expires_at.isoformat(), "note": note}
    record = client_record(link, "link.created", detail, by.run_id(), actor=by)
    await produce_events(settings, AUDIT, [record])
    return link


async def revoke(settings: Settings, db: AsyncDatabase[Doc], link: Doc, by: Actor) -> None:
    """Revoke a link (revoking it again changes nothing); audited when it was live."""
    revoked = await db[LINKS].update_one(
        {"_id": link["_id"], "revoked_at": None},
        {"$set": {"revoked_at": datetime.now(UTC), "revoked_by": by.name}},
    )
    if revoked.modified_count:
        record = client_record(link, "link.revoked", {"link": link["_id"]}, by.run_id(), actor=by)
        await produce_events(settings, AUDIT, [record])


async def find(db: AsyncDatabase[Doc], link_id: str) -> Doc | None:
    return await db[LINKS].find_one({"_id": link_id})


async def of_object(db: AsyncDatabase[Doc], object_id: str) -> list[Doc]:
    """Every link to any version of an object, oldest first."""
    return [d async for d in db[LINKS].find({"object_id": object_id}).sort("created_at", 1)]


async def used(db: AsyncDatabase[Doc], link_id: str) -> None:
    await db[LINKS].update_one(
        {"_id": link_id}, {"$inc": {"uses": 1}, "$set": {"last_used_at": datetime.now(UTC)}}
    )
