"""What every route shares: the services opened once per process, the principal of a request
(bearer-token auth, rate limits), the scope checks and the request's id. The routers import
this module, and the application imports the routers."""

import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Annotated

from fastapi import Depends, Header, Request

from workers.api import problems, tokens
from workers.api.oidc import OidcVerifier, is_jwt, verifier
from workers.api.tokens import Principal, Scope
from workers.client.kafka import Producer
from workers.client.state import State
from workers.deps import Deps, build_deps
from workers.settings import Settings
from workers.tiering.live import Tiering

VERSION = "1.0.0"


@dataclass
class RateLimiter:
    """A token bucket per principal: ``per_minute`` requests, bursts up to that many."""

    per_minute: int
    clock: Callable[[], float] = time.monotonic
    buckets: dict[str, tuple[float, float]] = field(default_factory=dict)

    def allow(self, who: str) -> bool:
        now = self.clock()
        level, then = self.buckets.get(who, (float(self.per_minute), now))
        level = min(self.per_minute, level + (now - then) * self.per_minute / 60)
        if level < 1:
            self.buckets[who] = (level, now)
            return False
        self.buckets[who] = (level - 1, now)
        return True


@dataclass
class Services:
    """What every request needs, opened once per process."""

    settings: Settings
    state: State
    deps: Deps
    producer: Producer
    limiter: RateLimiter
    tiering: Tiering  # which replicas are readable without rehydration
    oidc: OidcVerifier | None = None  # MOVINGDATA_OIDC_ISSUER's tokens, if set

    @classmethod
    @asynccontextmanager
    async def open(cls, settings: Settings) -> AsyncIterator["Services"]:
        tiering = Tiering.load(settings)  # a bad policy or price file stops the API here
        state = State(settings)
        deps = build_deps(settings, "reader")  # restores decrypt; nothing here encrypts
        producer = Producer(settings)
        await producer.__aenter__()
        try:
            limiter = RateLimiter(settings.api_rate_per_minute)
            async with verifier(settings) as oidc:
                yield cls(settings, state, deps, producer, limiter, tiering, oidc)
        finally:
            await producer.__aexit__(None, None, None)
            await deps.close()
            await state.close()


def services(request: Request) -> Services:
    return request.app.state.services  # type: ignore[no-any-return]


async def authenticated(
    request: Request, authorization: Annotated[str | None, Header()] = None
) -> Principal:
    """The request's principal, from ``Authorization: Bearer <token>``; 401 or 429 if not."""
    scheme, _, token = (authorization or "").partition(" ")
    challenge = {"WWW-Authenticate": "Bearer"}
    if scheme.lower() != "bearer" or not token:
        raise problems.Problem(401, "a bearer token is required", challenge)
    svc = services(request)
    try:
        token = token.strip()
        if svc.oidc is not None and is_jwt(token):
            who = await svc.oidc.principal(token)  # 403 if it grants nothing, 503 if no keys
        else:
            who = await tokens.principal(svc.state.db, token, datetime.now(UTC))
    except tokens.Refused as exc:
        raise problems.Problem(401, str(exc), challenge) from None
    if not svc.limiter.allow(who.name):
        raise problems.Problem(429, "too many requests for this token", {"Retry-After": "1"})
    return who


def require(who: Principal, needed: Scope) -> None:
    """403, naming the scope, unless the token holds ``needed``."""
    if not who.allows(needed):
        held = ", ".join(tokens.ordered(who.scopes))
        raise problems.Problem(403, f"this needs the {needed} scope (this token has {held})")


def scope(needed: Scope) -> Callable[..., Awaitable[Principal]]:
    """A dependency granting the request only to tokens holding the ``needed`` scope."""

    async def check(who: Annotated[Principal, Depends(authenticated)]) -> Principal:
        require(who, needed)
        return who

    return check


def request_id(request: Request) -> str:
    """This request's id, made here (never taken from the client: the ids of the audit
    records a request makes derive from it) and answered as ``X-Request-Id``."""
    return str(request.state.request_id)


Authenticated = Annotated[Principal, Depends(authenticated)]  # the route calls require()
MayRead = Annotated[Principal, Depends(scope("read"))]
MayWrite = Annotated[Principal, Depends(scope("write"))]
MayAdmin = Annotated[Principal, Depends(scope("admin"))]
RequestId = Annotated[str, Depends(request_id)]
Svc = Annotated[Services, Depends(services)]
