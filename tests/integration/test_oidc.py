"""Real identity: the API, in process, accepts identity tokens the local stack's OpenBao mints
(its OIDC issuer, keys at its well-known endpoint) as the principal their claims say, and
refuses one for another audience, an expired one, a forged one and one granting nothing."""

import base64
import json
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from tests.identity import Identities, identities
from tests.waiting import wait_for
from workers.api.app import create_app
from workers.settings import Settings, load_settings

__all__ = ["identities"]


@pytest.fixture
def api_settings() -> Settings:
    """The settings ``movingdata api`` runs with."""
    return load_settings(operator=True, kafka_role="api")


@asynccontextmanager
async def served(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    """A client of the API app ``settings`` configure, its services open (lifespan)."""
    app = create_app(settings)
    transport = httpx.ASGITransport(app=app)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=transport, base_url="http://api") as http,
    ):
        yield http


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def claims_of(token: str) -> dict[str, object]:
    body = token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))  # type: ignore[no-any-return]


async def refusal(http: httpx.AsyncClient, token: str, status: int) -> str:
    answer = await http.get("/v1/objects", headers=bearer(token))
    assert answer.status_code == status, answer.text
    assert answer.headers["content-type"] == "application/problem+json"
    return str(answer.json()["detail"])


async def test_an_identity_token_is_the_principal_its_claims_say(
    api_settings: Settings, identities: Identities, unique: str
) -> None:
    assert api_settings.oidc_issuer, "the local stack configures OpenBao as the issuer"
    reader = identities.mint({"tenant": unique, "scopes": "read"})
    assert claims_of(reader.token)["iss"] == api_settings.oidc_issuer
    async with served(api_settings) as http:
        listed = await http.get("/v1/objects", headers=bearer(reader.token))
        assert listed.status_code == 200, listed.text
        assert listed.json()["items"] == []  # the tenant's own objects: none yet
        other = await http.get(
            "/v1/objects", params={"tenant": "default"}, headers=bearer(reader.token)
        )
        assert other.status_code == 403  # another tenant's: an admin's only
        put = await http.post(
            "/v1/objects", params={"name": "x"}, content=b"x", headers=bearer(reader.token)
        )
        assert put.status_code == 403 and "needs the write scope" in put.json()["detail"]
        nothing = identities.mint({"tenant": unique, "scopes": "openid"})
        assert "holds no scope" in await refusal(http, nothing.token, 403)
        nameless = identities.mint({"scopes": "read"})
        assert "does not name a tenant" in await refusal(http, nameless.token, 403)


async def test_another_audience_an_expired_or_forged_token_is_refused(
    api_settings: Settings, identities: Identities, unique: str
) -> None:
    minted = identities.mint({"tenant": unique, "scopes": "read"})
    async with served(api_settings.model_copy(update={"oidc_audience": "another-app"})) as http:
        assert "Audience doesn't match" in await refusal(http, minted.token, 401)

    # A role of the test's own: its tokens live one second; no leeway for the clock.
    brief = identities.mint({"tenant": unique, "scopes": "read"}, identities.role("1s"))
    expires = float(claims_of(brief.token)["exp"])  # type: ignore[arg-type]

    async def expired() -> bool:
        return time.time() > expires + 1

    async with served(api_settings.model_copy(update={"oidc_leeway_s": 0.0})) as http:
        await wait_for(expired, timeout_s=10)
        assert "expired" in await refusal(http, brief.token, 401)

        # Signed by another key under the key id OpenBao publishes, or under one it does not.
        forger = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        kid = jwt.get_unverified_header(minted.token)["kid"]
        claims = claims_of(minted.token) | {"scopes": "admin"}
        forged = jwt.encode(claims, forger, algorithm="RS256", headers={"kid": kid})
        assert "Signature verification failed" in await refusal(http, forged, 401)
        unknown = jwt.encode(claims, forger, algorithm="RS256", headers={"kid": "made-up"})
        assert "does not publish" in await refusal(http, unknown, 401)
        # The real token is still good: the refusals were the forgeries'.
        assert (await http.get("/v1/objects", headers=bearer(minted.token))).status_code == 200
