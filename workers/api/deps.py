"""What every route shares: the services opened once per process, the principal of a request
(bearer-token auth, rate limits held across replicas), the scope checks and the request's id.
The routers import this module, and the application imports the routers."""

import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from workers.api import problems, ratelimit, tokens
from workers.api.oidc import OidcVerifier, is_jwt, verifier
from workers.api.tokens import Principal, Scope
from workers.client.kafka import Producer
from workers.client.state import State
from workers.deps import Deps, build_deps
from workers.settings import Settings
from workers.tiering.live import Tiering

VERSION = "1.0.0"


# Not auto_error: a missing token is answered as problem+json below (the scheme documents it).
BEARER = HTTPBearer(auto_error=False, description="A token of `movingdata tokens create`.")


@dataclass
class Services:
    """What every request needs, opened once per process."""

    settings: Settings
    state: State
    deps: Deps
    producer: Producer
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
            async with verifier(settings) as oidc:
                yield cls(settings, state, deps, producer, tiering, oidc)
        finally:
            await producer.__aexit__(None, None, None)
            await deps.close()
            await state.close()


def services(request: Request) -> Services:
    return request.app.state.services  # type: ignore[no-any-return]


async def limited(request: Request, who: str) -> None:
    """Spend one request of ``who``'s minute (answered as ``RateLimit-*``); 429 when spent."""
    svc = services(request)
    budget = await ratelimit.spend(svc.state.db, who, svc.settings.api_rate_per_minute, time.time())
    request.state.rate_limit = budget.headers()
    if not budget.allowed:
        raise problems.Problem(
            429,
            f"over {budget.limit} requests a minute",
            {"Retry-After": str(budget.reset)},
            problems.RATE_LIMITED,
        )


async def authenticated(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(BEARER)],
) -> Principal:
    """The request's principal, from ``Authorization: Bearer <token>``; 401 or 429 if not.

    The limit comes before the token's lookup: a caller without a valid token spends its
    address's budget, and once that is spent its tokens are not even looked up."""
    svc = services(request)
    address = f"address:{request.client.host if request.client else ''}"
    challenge = {"WWW-Authenticate": "Bearer"}
    if credentials is None:
        await limited(request, address)
        raise problems.Problem(401, "a bearer token is required", challenge)
    if await ratelimit.spent(svc.state.db, address, svc.settings.api_rate_per_minute, time.time()):
        await limited(request, address)  # answers 429
    try:
        token = credentials.credentials.strip()
        if svc.oidc is not None and is_jwt(token):
            who = await svc.oidc.principal(token)  # 403 if it grants nothing, 503 if no keys
        else:
            who = await tokens.principal(svc.state.db, token, datetime.now(UTC))
    except tokens.Refused as exc:
        await limited(request, address)
        raise problems.Problem(401, str(exc), challenge) from None
    await limited(request, f"token:{who.name}")
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
