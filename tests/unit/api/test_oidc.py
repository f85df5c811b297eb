"""OIDC bearer tokens: the claims a principal is made of, the keys a JWKS publishes, and the
verification of tokens signed with locally generated keys, served by a local issuer whose
documents the test controls (rotation, an issuer that goes away, garbage key ids)."""

import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import jwt
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from jwt.algorithms import ECAlgorithm, OKPAlgorithm, RSAAlgorithm

from workers.api import oidc, tokens
from workers.api.oidc import IssuerKeys, OidcVerifier, Ungranted, claims_principal
from workers.api.tokens import ROLE_SCOPES, Refused
from workers.settings import Settings

AUDIENCE = "movingdata"
TIMES = ("exp", "nbf", "iat")
RSA_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
EC_KEY = ec.generate_private_key(ec.SECP256R1())
ED_KEY = ed25519.Ed25519PrivateKey.generate()
KEYS: dict[str, tuple[Any, str]] = {
    "rsa-1": (RSA_KEY, "RS256"),
    "ec-1": (EC_KEY, "ES256"),
    "ed-1": (ED_KEY, "EdDSA"),
}


def jwk(kid: str, key: Any) -> dict[str, Any]:
    public = key.public_key()
    if isinstance(key, rsa.RSAPrivateKey):
        data = RSAAlgorithm.to_jwk(public, as_dict=True)
    elif isinstance(key, ec.EllipticCurvePrivateKey):
        data = ECAlgorithm.to_jwk(public, as_dict=True)
    else:
        data = OKPAlgorithm.to_jwk(public, as_dict=True)
    return {**data, "kid": kid, "use": "sig"}


@dataclass
class Issuer:
    """A local OIDC issuer: its discovery document and JWKS, and how often each was asked."""

    jwks: dict[str, Any] = field(
        default_factory=lambda: {"keys": [jwk(kid, key) for kid, (key, _) in KEYS.items()]}
    )
    up: bool = True
    fetches: int = 0
    url: str = ""

    async def discovery(self, request: web.Request) -> web.Response:
        if not self.up:
            return web.Response(status=503)
        return web.json_response({"issuer": self.url, "jwks_uri": f"{self.url}/keys"})

    async def keys(self, request: web.Request) -> web.Response:
        self.fetches += 1
        return web.json_response(self.jwks)

    def token(self, kid: str = "rsa-1", key: Any = None, **claims: Any) -> str:
        signer, alg = KEYS.get(kid, (RSA_KEY, "RS256"))
        now = int(time.time())
        body = {"iss": self.url, "aud": AUDIENCE, "sub": "e-1", "iat": now, "exp": now + 60}
        body |= {"tenant": "acme", "scopes": "read write"} | claims
        body = {k: v for k, v in body.items() if v is not None}
        return jwt.encode(body, key or signer, algorithm=alg, headers={"kid": kid})


@dataclass
class Clock:
    now: float = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
async def issuer() -> AsyncIterator[Issuer]:
    found = Issuer()
    app = web.Application()
    app.router.add_get("/.well-known/openid-configuration", found.discovery)
    app.router.add_get("/keys", found.keys)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    found.url = f"http://127.0.0.1:{server.port}"
    yield found
    await server.close()


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
async def verifier(issuer: Issuer, clock: Clock) -> AsyncIterator[OidcVerifier]:
    settings = Settings(oidc_issuer=issuer.url, oidc_audience=AUDIENCE, oidc_leeway_s=30)
    async with aiohttp.ClientSession() as session:
        yield OidcVerifier(settings, IssuerKeys(issuer.url, session, clock=clock))


def test_a_principal_is_the_subject_with_the_claims_tenant_and_scopes() -> None:
    who = claims_principal(
        {"sub": "e-1", "tenant": "acme", "scopes": "read,write"}, "tenant", "scopes"
    )
    assert (who.name, who.tenant, tokens.ordered(who.scopes)) == (
        "oidc:e-1",
        "acme",
        ["read", "write"],
    )
    assert who.actor("r1").name == "api:oidc:e-1"  # one scheme with the API's own tokens


def test_scopes_come_from_scope_or_role_names_and_ignore_others() -> None:
    claims = {
        "sub": "e",
        "org": {"id": "acme"},
        "access": {"roles": ["writer", "billing", "forget"]},
    }
    who = claims_principal(claims, "org.id", "access.roles")
    assert who.tenant == "acme" and who.scopes == ROLE_SCOPES["writer"] | {"forget"}
    assert oidc.granted_scopes("reader") == {"read"}
    assert oidc.granted_scopes("admin") == {"admin"}  # a scope, and a role of every scope
    assert oidc.granted_scopes(["read", 7, {"x": 1}, None]) == {"read"}
    assert oidc.granted_scopes(42) == frozenset()


@pytest.mark.parametrize(
    ("claims", "says"),
    [
        ({"scopes": "read"}, "'tenant' claim does not name a tenant"),
        ({"tenant": "Acme Corp", "scopes": "read"}, "'tenant' claim does not name a tenant"),
        ({"tenant": ["acme"], "scopes": "read"}, "'tenant' claim does not name a tenant"),
        ({"tenant": "acme"}, "'scopes' claim holds no scope"),
        ({"tenant": "acme", "scopes": "openid profile"}, "'scopes' claim holds no scope"),
    ],
)
def test_a_token_without_a_tenant_or_a_known_scope_grants_nothing(
    claims: dict[str, Any], says: str
) -> None:
    with pytest.raises(Ungranted, match=says) as refused:
        claims_principal({"sub": "e-1", **claims}, "tenant", "scopes")
    assert refused.value.status == 403


def test_a_jwks_gives_its_asymmetric_signing_keys_only() -> None:
    jwks = {
        "keys": [
            *(jwk(kid, key) for kid, (key, _) in KEYS.items()),
            {"kty": "oct", "k": "c2VjcmV0", "kid": "hmac"},  # a shared secret: never
            {**jwk("enc-1", RSA_KEY), "use": "enc"},
            {"kty": "XYZ", "kid": "odd"},
            "not a key",
        ]
    }
    keys = oidc.published_keys(jwks)
    assert {kid: k.algorithm_name for kid, k in keys.items()} == {
        "rsa-1": "RS256",
        "ec-1": "ES256",
        "ed-1": "EdDSA",
    }


def test_a_jwt_has_three_parts() -> None:
    assert oidc.is_jwt("a.b.c") and not oidc.is_jwt("mdt_abc") and not oidc.is_jwt("a.b")


@pytest.mark.parametrize("kid", sorted(KEYS))
async def test_a_token_signed_by_a_published_key_is_its_principal(
    issuer: Issuer, verifier: OidcVerifier, kid: str
) -> None:
    who = await verifier.principal(issuer.token(kid))
    assert (who.name, who.tenant, tokens.ordered(who.scopes)) == (
        "oidc:e-1",
        "acme",
        ["read", "write"],
    )


@pytest.mark.parametrize(
    ("claims", "says"),
    [
        ({"aud": "another-app"}, "Audience doesn't match"),
        ({"aud": None}, 'missing the "aud" claim'),
        ({"iss": "https://elsewhere.example"}, "Invalid issuer"),
        ({"exp": -120}, "Signature has expired"),
        ({"exp": None}, 'missing the "exp" claim'),
        ({"nbf": 120}, "not yet valid"),
        ({"iat": 120}, "not yet valid"),
        ({"sub": None}, 'missing the "sub" claim'),
    ],
)
async def test_a_token_for_another_audience_issuer_or_time_is_refused(
    issuer: Issuer, verifier: OidcVerifier, claims: dict[str, Any], says: str
) -> None:
    now = int(time.time())  # the time claims are given as seconds from now
    claims = {k: now + v if k in TIMES and v is not None else v for k, v in claims.items()}
    with pytest.raises(Refused, match=says):
        await verifier.principal(issuer.token(**claims))


async def test_clock_skew_within_the_leeway_is_allowed(
    issuer: Issuer, verifier: OidcVerifier
) -> None:
    now = int(time.time())
    assert await verifier.principal(issuer.token(exp=now - 20, nbf=now + 20, iat=now + 20))


async def test_forged_tokens_are_refused(issuer: Issuer, verifier: OidcVerifier) -> None:
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    with pytest.raises(Refused, match="Signature verification failed"):
        await verifier.principal(issuer.token(key=other))  # a published kid, another key
    good = issuer.token()
    head, body, _ = good.split(".")
    altered = jwt.utils.base64url_encode(b'{"tenant":"victim"}').decode()
    with pytest.raises(Refused, match="Signature verification failed"):
        await verifier.principal(f"{head}.{altered}.{good.split('.')[2]}")
    unsigned = jwt.encode({"sub": "e"}, "", algorithm="none", headers={"kid": "rsa-1"})
    with pytest.raises(Refused, match="alg"):
        await verifier.principal(unsigned)
    # HS256 "signed" with the published public key: the key's own algorithm is the only one.
    pem = jwk("rsa-1", RSA_KEY)["n"].encode()
    confused = jwt.encode({"sub": "e"}, pem, algorithm="HS256", headers={"kid": "rsa-1"})
    with pytest.raises(Refused, match="alg"):
        await verifier.principal(confused)
    for garbage in ("a.b.c", "..", f"{head}.{body}"):
        with pytest.raises(Refused):
            await verifier.principal(garbage)


async def test_an_unknown_key_id_fetches_the_keys_again_at_most_once_per_interval(
    issuer: Issuer, verifier: OidcVerifier, clock: Clock
) -> None:
    await verifier.principal(issuer.token())
    assert issuer.fetches == 1
    for n in range(20):  # made-up key ids cannot make the API hammer the issuer
        with pytest.raises(Refused, match="a key its issuer does not publish"):
            await verifier.principal(issuer.token(kid=f"made-up-{n}"))
    assert issuer.fetches == 1  # the first fetch was less than REFETCH_EVERY_S ago
    # The issuer rotates: a token signed by its new key is accepted once the interval passed.
    KEYS["rsa-2"] = (rsa.generate_private_key(public_exponent=65537, key_size=2048), "RS256")
    try:
        issuer.jwks["keys"].append(jwk("rsa-2", KEYS["rsa-2"][0]))
        clock.now += oidc.REFETCH_EVERY_S
        assert await verifier.principal(issuer.token(kid="rsa-2"))
        assert issuer.fetches == 2
        await verifier.principal(issuer.token(kid="rsa-1"))
        assert issuer.fetches == 2  # known keys are served from the cache
    finally:
        del KEYS["rsa-2"]


async def test_old_keys_are_fetched_again_and_not_trusted_once_the_issuer_is_gone(
    issuer: Issuer, verifier: OidcVerifier, clock: Clock
) -> None:
    await verifier.principal(issuer.token())
    issuer.up = False
    clock.now += oidc.KEYS_TTL_S - 1
    assert await verifier.principal(issuer.token())  # within the TTL: the cached keys
    clock.now += 1
    with pytest.raises(oidc.IssuerUnavailable) as unavailable:
        await verifier.principal(issuer.token())
    assert (unavailable.value.status, unavailable.value.headers) == (503, {"Retry-After": "30"})
    issuer.up = True
    with pytest.raises(oidc.IssuerUnavailable):  # not asked again within the interval
        await verifier.principal(issuer.token())
    clock.now += oidc.REFETCH_EVERY_S
    assert await verifier.principal(issuer.token())
    assert issuer.fetches == 2


async def test_a_discovery_document_naming_another_issuer_is_not_trusted(
    issuer: Issuer, verifier: OidcVerifier
) -> None:
    token = issuer.token()
    issuer.url = "https://impostor.example"
    with pytest.raises(oidc.IssuerUnavailable):
        await verifier.principal(token)
    assert issuer.fetches == 0
