"""OIDC bearer tokens: JWTs an identity provider signs, accepted besides the API's own tokens
when ``MOVINGDATA_OIDC_ISSUER`` is set.

A token is checked against the keys the issuer publishes (its discovery document's
``jwks_uri``): the signature, with the algorithm of the key its ``kid`` names (asymmetric
algorithms only), then ``iss``, ``aud``, ``exp``, ``nbf`` and ``iat`` (``OIDC_LEEWAY_S`` of
clock skew). Its tenant and scopes come from two claims (``claims_principal``); it is named
``oidc:<sub>``, so the audit trail says ``api:oidc:<sub>``, as ``api:<name>`` for a token of
the API's own.

The keys are cached for ``KEYS_TTL_S``. A token signed by a key the cache lacks (the issuer
rotated) fetches them again, but the issuer is asked at most once per ``REFETCH_EVERY_S``, so
tokens with made-up key ids cannot make the API hammer it. No token is ever logged.
"""

import asyncio
import logging
import math
import re
import time
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, cast

import aiohttp
import jwt

from schemas.events import TENANT
from workers.api.problems import Problem
from workers.api.tokens import ROLE_SCOPES, ROLES, SCOPES, Principal, Refused, Scope
from workers.errors import Fatal
from workers.settings import Settings

log = logging.getLogger("movingdata.api.oidc")

# A key the issuer stopped publishing (rotated out, or revoked) is trusted ten minutes at most.
KEYS_TTL_S = 600.0
# At most one fetch of the issuer's documents this often, whatever tokens come in.
REFETCH_EVERY_S = 30.0
# A JWKS publishes public keys: an HMAC key there would be a shared secret, and "none" nothing.
ALGORITHMS = frozenset(
    {"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"}
)
REQUIRED = ["iss", "aud", "sub", "exp", "iat"]


class Ungranted(Problem):
    """A verified token that grants nothing here (403): no tenant, or no scope MovingData
    knows."""

    def __init__(self, detail: str) -> None:
        super().__init__(403, detail)


class IssuerUnavailable(Problem):
    """The issuer's keys could not be fetched, and the cached ones are too old to trust (503)."""

    def __init__(self) -> None:
        retry = {"Retry-After": str(int(REFETCH_EVERY_S))}
        super().__init__(503, "the OIDC issuer's keys cannot be fetched", retry)


def is_jwt(token: str) -> bool:
    """Whether a bearer token has a JWT's shape (three parts); the API's own never has."""
    return token.count(".") == 2


def claim(claims: Mapping[str, Any], path: str) -> Any:
    """The claim at ``path`` (a dot steps into a nested object), or None."""
    value: Any = claims
    for part in path.split("."):
        value = value.get(part) if isinstance(value, Mapping) else None
    return value


def granted_scopes(value: Any) -> frozenset[Scope]:
    """The scopes a claim grants: scope or role names, in a list or a space- or
    comma-separated string; other values (another application's roles) are ignored."""
    names = value.replace(",", " ").split() if isinstance(value, str) else value
    held: set[Scope] = set()
    for name in names if isinstance(names, list) else ():
        if name in SCOPES:
            held.add(cast(Scope, name))
        elif isinstance(name, str) and name in ROLE_SCOPES:
            held |= ROLE_SCOPES[name]
    return frozenset(held)


def claims_principal(claims: Mapping[str, Any], tenant_claim: str, scopes_claim: str) -> Principal:
    """Who a verified token's ``claims`` are: ``oidc:<sub>``, with the tenant and the scopes
    of the two claims named; ``Ungranted`` when either grants nothing."""
    tenant = claim(claims, tenant_claim)
    if not isinstance(tenant, str) or not re.match(TENANT, tenant):
        raise Ungranted(
            f"the OIDC token's {tenant_claim!r} claim does not name a tenant "
            "(lowercase letters, digits and dashes)"
        )
    scopes = granted_scopes(claim(claims, scopes_claim))
    if not scopes:
        raise Ungranted(
            f"the OIDC token's {scopes_claim!r} claim holds no scope ({', '.join(SCOPES)}) "
            f"or role ({', '.join(ROLES)}) of MovingData"
        )
    return Principal(f"oidc:{claims['sub']}", tenant, scopes)


def published_keys(jwks: Mapping[str, Any]) -> dict[str, jwt.PyJWK]:
    """A JWKS's signing keys by key id, those with an asymmetric algorithm PyJWT knows."""
    keys = {}
    for data in jwks.get("keys", []):
        if not isinstance(data, dict) or data.get("use", "sig") != "sig" or "kid" not in data:
            continue
        try:
            key = jwt.PyJWK(data)
        except jwt.PyJWTError:
            continue  # a key type or curve this version cannot use
        if key.algorithm_name in ALGORITHMS:
            keys[str(data["kid"])] = key
    return keys


@dataclass
class IssuerKeys:
    """The keys an issuer publishes, fetched when first needed and cached."""

    issuer: str
    session: aiohttp.ClientSession
    clock: Callable[[], float] = time.monotonic
    keys: dict[str, jwt.PyJWK] = field(default_factory=dict)
    fetched_at: float = -math.inf
    tried_at: float = -math.inf
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    async def key(self, kid: str) -> jwt.PyJWK:
        """The key ``kid`` names; fetched again when the cache is old or lacks it, at most
        once per ``REFETCH_EVERY_S``."""
        async with self.lock:
            now = self.clock()
            old = now - self.fetched_at >= KEYS_TTL_S
            if (old or kid not in self.keys) and now - self.tried_at >= REFETCH_EVERY_S:
                self.tried_at = now
                await self.refresh(now)
            if now - self.fetched_at >= KEYS_TTL_S:
                raise IssuerUnavailable()
            if kid not in self.keys:
                raise Refused("this OIDC token is signed by a key its issuer does not publish")
            return self.keys[kid]

    async def refresh(self, now: float) -> None:
        """Fetch the discovery document and the keys it names; a failure keeps the old ones."""
        try:
            discovery = await self.json(
                f"{self.issuer.rstrip('/')}/.well-known/openid-configuration"
            )
            if discovery.get("issuer") != self.issuer:
                raise ValueError(f"its discovery document names issuer {discovery.get('issuer')}")
            self.keys = published_keys(await self.json(str(discovery["jwks_uri"])))
        except (aiohttp.ClientError, TimeoutError, ValueError, KeyError) as exc:
            log.warning("oidc keys not fetched", extra={"issuer": self.issuer, "error": str(exc)})
            return
        self.fetched_at = now
        log.info("oidc keys fetched", extra={"issuer": self.issuer, "keys": sorted(self.keys)})

    async def json(self, url: str) -> dict[str, Any]:
        async with self.session.get(url) as answer:
            answer.raise_for_status()
            body = await answer.json(content_type=None)
        if not isinstance(body, dict):
            raise ValueError(f"{url} answered no JSON object")
        return body


@dataclass
class OidcVerifier:
    """Verifies an issuer's bearer tokens and maps their claims to a principal."""

    settings: Settings
    keys: IssuerKeys

    async def principal(self, token: str) -> Principal:
        """Who ``token`` is: ``Refused`` (401) unless it verifies, ``Ungranted`` (403) if it
        names no tenant or no scope, ``IssuerUnavailable`` (503) without the issuer's keys."""
        s = self.settings
        try:
            kid = jwt.get_unverified_header(token).get("kid")
        except jwt.PyJWTError:
            raise Refused("this bearer token is not a well-formed JWT") from None
        if not isinstance(kid, str):
            raise Refused("this OIDC token names no signing key (kid)")
        key = await self.keys.key(kid)
        try:
            claims = jwt.decode(
                token,
                key,
                algorithms=[key.algorithm_name],
                audience=s.oidc_audience,
                issuer=s.oidc_issuer,
                leeway=s.oidc_leeway_s,
                options={"require": REQUIRED},
            )
        except jwt.PyJWTError as exc:
            raise Refused(f"this OIDC token is refused: {exc}") from None
        return claims_principal(claims, s.oidc_tenant_claim, s.oidc_scopes_claim)


@asynccontextmanager
async def verifier(settings: Settings) -> AsyncIterator[OidcVerifier | None]:
    """The verifier of ``MOVINGDATA_OIDC_ISSUER``'s tokens (None: OIDC is off), its HTTP
    session open."""
    if not settings.oidc_issuer:
        yield None
        return
    if not settings.oidc_audience:
        raise Fatal("MOVINGDATA_OIDC_AUDIENCE must be set with MOVINGDATA_OIDC_ISSUER")
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as session:
        yield OidcVerifier(settings, IssuerKeys(settings.oidc_issuer, session))
