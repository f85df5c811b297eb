"""API tokens: a name, a tenant, scopes and an expiry each, stored hashed (``tokens``
collection).

The token itself is shown once, when created; the database keeps its SHA-256 only, so a copy
of the database holds no usable token. Scopes say what a token may do: ``read`` (list, show,
read content, audit), ``write`` (put, scrub), ``delete``, ``forget`` (crypto-shredding: the
data key is destroyed, nothing can bring the version back, so no role but admin has it by
default) and ``admin`` (every tenant, the whole audit trail, dead letters). A role is a preset
of scopes: reader (read), writer (read, write, delete), admin (every scope); a token stored
before scopes existed holds its role's. ``last_used_at`` is written at most once a minute.
"""

import hashlib
import re
import secrets
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal, cast

from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from workers.client.identity import Actor
from workers.core.versions import utc

Role = Literal["reader", "writer", "admin"]
ROLES: tuple[Role, ...] = ("reader", "writer", "admin")
Scope = Literal["read", "write", "delete", "forget", "admin"]
SCOPES: tuple[Scope, ...] = ("read", "write", "delete", "forget", "admin")
ROLE_SCOPES: dict[Role, frozenset[Scope]] = {
    "reader": frozenset({"read"}),
    "writer": frozenset({"read", "write", "delete"}),
    "admin": frozenset(SCOPES),
}
PREFIX = "mdt_"
# A token nobody remembers stops working on its own; 90 days is the common default for
# personal access tokens, long enough that a CI secret is not rotated every week.
DEFAULT_EXPIRY = "90d"
DEFAULT_LIFETIME = timedelta(days=90)
# How stale ``last_used_at`` may be: a busy token costs one database write a minute.
LAST_USED_EVERY = timedelta(seconds=60)
UNKNOWN = "unknown or revoked token"
DURATION = re.compile(r"^(\d+)([mhd])$")
UNITS = {"m": timedelta(minutes=1), "h": timedelta(hours=1), "d": timedelta(days=1)}


class TokenError(ValueError):
    """A token name that exists already or does not, or a scope or expiry that is not one."""


class Refused(Exception):
    """A token that grants nothing: unknown or revoked (one message for both), or expired."""


@dataclass(frozen=True, slots=True)
class Principal:
    """Who a request is: the token's name, tenant and scopes."""

    name: str
    tenant: str
    scopes: frozenset[Scope]

    def allows(self, scope: Scope) -> bool:
        return scope in self.scopes or "admin" in self.scopes  # admin: every scope

    def sees(self, tenant: str) -> bool:
        return self.allows("admin") or tenant == self.tenant

    def actor(self, request_id: str) -> Actor:
        """Who the audit trail names for this token's request ``request_id``."""
        return Actor(f"api:{self.name}", self.tenant, request_id)


def digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def ordered(scopes: Iterable[Scope]) -> list[Scope]:
    """``scopes`` in the canonical order (read, write, delete, forget, admin)."""
    held = set(scopes)
    return [s for s in SCOPES if s in held]


def role_scopes(role: str) -> frozenset[Scope]:
    """The scopes a role gives."""
    if role not in ROLES:
        raise TokenError(f"role must be one of {', '.join(ROLES)}")
    return ROLE_SCOPES[role]


def parse_scopes(values: Iterable[str]) -> frozenset[Scope]:
    """Scopes from ``--scope`` values, each one scope or a comma-separated list."""
    given = {v.strip() for value in values for v in value.split(",") if v.strip()}
    unknown = sorted(given - set(SCOPES))
    if unknown:
        raise TokenError(f"unknown scope {', '.join(unknown)}: one of {', '.join(SCOPES)}")
    if not given:
        raise TokenError("a token needs at least one scope")
    return frozenset(cast(set[Scope], given))


def parse_expiry(text: str, now: datetime) -> datetime | None:
    """When a token made at ``now`` expires: ``never`` (None), a duration (``30m``, ``12h``,
    ``90d``)
    or an ISO date or time (``2027-06-01``: its start, UTC unless a zone is given)."""
    text = text.strip()
    if text == "never":
        return None
    try:
        if match := DURATION.match(text):
            count, unit = int(match.group(1)), match.group(2)
            at = now + count * UNITS[unit]
        else:
            at = utc(datetime.fromisoformat(text))
    except (ValueError, OverflowError):
        raise TokenError(
            f"expiry {text!r} is not never, a duration (30m, 12h, 90d) or an ISO date"
        ) from None
    if at <= now:
        raise TokenError(f"expiry {text!r} is not in the future")
    return at


def scopes_of(doc: Mapping[str, Any]) -> frozenset[Scope]:
    """A token document's scopes; one stored before scopes existed holds its role's."""
    if "scopes" in doc:
        return frozenset(doc["scopes"])
    return role_scopes(doc["role"])


def expiry_of(doc: Mapping[str, Any]) -> datetime | None:
    """When a token stops working (None: never, as created with ``--expires never``). A
    token stored before tokens had an expiry gets the default one from its creation, so no
    token made then works for ever without someone having said so."""
    if "expires_at" in doc:
        return utc(doc["expires_at"]) if doc["expires_at"] is not None else None
    created = doc.get("created_at")
    if created is None:
        return datetime.min.replace(tzinfo=UTC)  # no date at all: make a new token
    return utc(created) + DEFAULT_LIFETIME


def granted(doc: Mapping[str, Any], now: datetime) -> Principal:
    """The principal a token's document grants at ``now``; ``Refused`` if none."""
    if doc.get("revoked_at") is not None:
        raise Refused(UNKNOWN)
    expires = expiry_of(doc)
    if expires is not None and expires <= now:
        raise Refused("this token has expired")
    return Principal(doc["name"], doc["tenant"], scopes_of(doc))


def stale(last_used: datetime | None, now: datetime) -> bool:
    """Whether ``last_used_at`` is worth writing again at ``now``."""
    return last_used is None or utc(last_used) <= now - LAST_USED_EVERY


async def create(
    db: AsyncDatabase[Any],
    name: str,
    tenant: str,
    scopes: Collection[Scope],
    expires_at: datetime | None,
) -> str:
    """A new token (returned once, never stored), valid until ``expires_at`` (None: ever)."""
    await db["tokens"].create_index("name", unique=True)
    token = PREFIX + secrets.token_urlsafe(32)
    doc = {
        "_id": digest(token),
        "name": name,
        "tenant": tenant,
        "scopes": ordered(scopes),
        "created_at": datetime.now(UTC),
        "expires_at": expires_at,
        "last_used_at": None,
        "revoked_at": None,
    }
    try:
        await db["tokens"].insert_one(doc)
    except DuplicateKeyError:
        raise TokenError(f"a token named {name!r} exists already") from None
    return token


async def revoke(db: AsyncDatabase[Any], name: str) -> None:
    result = await db["tokens"].update_one(
        {"name": name, "revoked_at": None}, {"$set": {"revoked_at": datetime.now(UTC)}}
    )
    if result.matched_count == 0:
        raise TokenError(f"no live token named {name!r}")


async def listing(db: AsyncDatabase[Any]) -> list[dict[str, Any]]:
    """Every token's name, tenant, scopes and dates, in UTC (never a hash)."""
    return [
        {
            "name": doc["name"],
            "tenant": doc["tenant"],
            "scopes": ordered(scopes_of(doc)),
            "expires_at": expiry_of(doc),
            **{
                k: utc(doc[k]) if doc.get(k) is not None else None
                for k in ("created_at", "last_used_at", "revoked_at")
            },
        }
        async for doc in db["tokens"].find({}, {"_id": 0}).sort("name", 1)
    ]


async def principal(db: AsyncDatabase[Any], token: str, now: datetime) -> Principal:
    """The live token's principal at ``now``, its use recorded (``Refused`` if none).

    ``last_used_at`` is written only when the stored one is a minute old, and only if it still
    is (a conditional update), so a busy token costs one write a minute across API replicas."""
    doc = await db["tokens"].find_one({"_id": digest(token)}) if token.startswith(PREFIX) else None
    if doc is None:
        raise Refused(UNKNOWN)
    who = granted(doc, now)
    if stale(doc.get("last_used_at"), now):
        before = now - LAST_USED_EVERY
        await db["tokens"].update_one(
            {
                "_id": doc["_id"],
                "$or": [{"last_used_at": None}, {"last_used_at": {"$lte": before}}],
            },
            {"$set": {"last_used_at": now}},
        )
    return who
