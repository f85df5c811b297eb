"""API tokens: a name, a role and a tenant each, stored hashed (``tokens`` collection).

The token itself is shown once, when created; the database keeps its SHA-256 only, so a copy
of the database holds no usable token. Roles rank reader < writer < admin: a writer may
also read, an admin may also write and sees every tenant.
"""

import hashlib
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from workers.client.identity import Actor

Role = Literal["reader", "writer", "admin"]
ROLES: tuple[Role, ...] = ("reader", "writer", "admin")
PREFIX = "mdt_"


class TokenError(ValueError):
    """A token name that exists already, or one that does not."""


@dataclass(frozen=True, slots=True)
class Principal:
    """Who a request is: the token's name, role and tenant."""

    name: str
    role: Role
    tenant: str

    def may(self, role: Role) -> bool:
        return ROLES.index(self.role) >= ROLES.index(role)

    def sees(self, tenant: str) -> bool:
        return self.role == "admin" or tenant == self.tenant

    def actor(self, request_id: str) -> Actor:
        """Who the audit trail names for this token's request ``request_id``."""
        return Actor(f"api:{self.name}", self.tenant, request_id)


def digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


async def create(db: AsyncDatabase[Any], name: str, role: Role, tenant: str) -> str:
    """A new token (returned once, never stored)."""
    await db["tokens"].create_index("name", unique=True)
    token = PREFIX + secrets.token_urlsafe(32)
    doc = {
        "_id": digest(token),
        "name": name,
        "role": role,
        "tenant": tenant,
        "created_at": datetime.now(UTC),
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
    """Every token's name, role, tenant and dates (never a hash)."""
    fields = {"_id": 0, "name": 1, "role": 1, "tenant": 1, "created_at": 1, "revoked_at": 1}
    return [doc async for doc in db["tokens"].find({}, fields).sort("name", 1)]


async def principal(db: AsyncDatabase[Any], token: str) -> Principal | None:
    """The live token's principal (None: unknown or revoked)."""
    if not token.startswith(PREFIX):
        return None
    doc = await db["tokens"].find_one({"_id": digest(token)})
    if doc is None or doc.get("revoked_at") is not None:
        return None
    return Principal(doc["name"], doc["role"], doc["tenant"])
