"""Identity tokens (OIDC JWTs) from the local stack's OpenBao, its OIDC issuer: each token is
a fresh userpass user's, whose entity's metadata says its tenant and scopes. The stack's
identity token makes the users (``workers.stack.openbao.configure_identity``)."""

import secrets
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest

from workers.settings import Settings
from workers.stack.openbao import (
    OIDC_AUDIENCE,
    OIDC_KEY,
    OIDC_ROLE,
    OIDC_TEMPLATE,
    OpenBaoAPI,
)
from workers.stack.services import OpenBao


@dataclass
class Minted:
    token: str
    subject: str  # the user's entity id: the token's ``sub``


@dataclass
class Identities:
    """Users, their entities and roles made for one test, removed after it."""

    addr: str
    admin: OpenBaoAPI
    made: list[str] = field(default_factory=list)

    def mint(self, metadata: dict[str, str], role: str = OIDC_ROLE) -> Minted:
        """An identity token of ``role`` for a new user whose entity has ``metadata``."""
        name, password = f"u{uuid.uuid4().hex[:12]}", secrets.token_urlsafe(16)
        body = {"password": password, "token_policies": ["movingdata-oidc-user"]}
        self.admin.call("POST", f"auth/userpass/users/{name}", body)
        self.made.append(f"auth/userpass/users/{name}")
        login = OpenBaoAPI(self.addr).call(
            "POST", f"auth/userpass/login/{name}", {"password": password}
        )["auth"]
        entity = login["entity_id"]
        self.made.append(f"identity/entity/id/{entity}")
        self.admin.call("POST", f"identity/entity/id/{entity}", {"metadata": metadata})
        user = OpenBaoAPI(self.addr, login["client_token"])
        return Minted(user.call("GET", f"identity/oidc/token/{role}")["data"]["token"], entity)

    def role(self, ttl: str) -> str:
        """A role of the test's own, tokens for MovingData living ``ttl``."""
        name = f"movingdata-test-{uuid.uuid4().hex[:12]}"
        body = {"key": OIDC_KEY, "client_id": OIDC_AUDIENCE, "ttl": ttl, "template": OIDC_TEMPLATE}
        self.admin.call("POST", f"identity/oidc/role/{name}", body)
        self.made.append(f"identity/oidc/role/{name}")
        return name


@pytest.fixture
def identities(settings: Settings) -> Iterator[Identities]:
    addr = settings.openbao_addr
    made = Identities(addr, OpenBaoAPI(addr, OpenBao(settings).token("identity")))
    yield made
    for path in reversed(made.made):
        made.admin.call("DELETE", path)
