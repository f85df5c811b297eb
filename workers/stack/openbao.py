"""OpenBao set-up over its HTTP API: initialise once, unseal every start, configure transit.

The unseal key and root token are written to ``<home>/openbao/init.json`` (mode 600) and
never printed. A least-privilege periodic token is issued per role: SeaweedFS (SSE-KMS), the
workers, the sink (audit checkpoints), readers (restore, audit verify), the admin (key
rotation) and the identity token (the users of OpenBao's OIDC issuer, ``configure_identity``).
"""

import json
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from workers.stack.localenv import write_secret


def seaweed_policy(sse_key: str) -> str:
    """SeaweedFS's SSE-KMS token: its own transit key only (data keys for objects at rest,
    and reading the key's metadata). Never the data-key KEK: a decrypt there would unwrap
    every object version's data key."""
    return (
        f'path "transit/encrypt/{sse_key}"     {{ capabilities = ["update"] }}\n'
        f'path "transit/decrypt/{sse_key}"     {{ capabilities = ["update"] }}\n'
        f'path "transit/datakey/+/{sse_key}"   {{ capabilities = ["update"] }}\n'
        f'path "transit/keys/{sse_key}"        {{ capabilities = ["read"] }}\n'
    )


def policies(kek: str, audit_key: str) -> dict[str, str]:
    """Least privilege per role, on ``kek`` and on keys named after it (``kek-*``: a second
    deployment's or a test's own KEK; encrypting with a missing key creates it). A glob may
    only end a path; ``+`` stands for one segment.

    - worker: encrypt and decrypt data keys; nothing on the audit key;
    - sink: sign audit checkpoints, and verify the log's latest before signing the next; only
      the audit key (the sink stage calls OpenBao for nothing else);
    - reader (restore, audit verify): decrypt, verify checkpoints;
    - admin (keys rotate): re-wrap, rotate, disable old versions; never held by a worker.
    """

    def paths(*grants: tuple[str, str]) -> str:
        return "".join(f'path "transit/{p}" {{ capabilities = [{c}] }}\n' for p, c in grants)

    return {
        "movingdata-worker": paths(
            (f"encrypt/{kek}*", '"create", "update"'),
            (f"decrypt/{kek}*", '"update"'),
        ),
        "movingdata-sink": paths(
            (f"sign/{audit_key}", '"update"'),
            # the sink checks the log's latest checkpoint before it signs the next
            (f"verify/{audit_key}", '"update"'),
        ),
        "movingdata-reader": paths(
            (f"decrypt/{kek}*", '"update"'),
            (f"verify/{audit_key}", '"update"'),
        ),
        "movingdata-admin": paths(
            (f"rewrap/{kek}*", '"update"'),
            ("keys/+", '"read"'),  # "+", like the two below: a glob would outrank them
            ("keys/+/rotate", '"update"'),
            ("keys/+/config", '"update"'),
            (f"verify/{audit_key}", '"update"'),
        ),
    }


ROLES = {
    "seaweed": "movingdata-seaweed",
    "worker": "movingdata-worker",
    "sink": "movingdata-sink",
    "reader": "movingdata-reader",
    "admin": "movingdata-admin",
}
# The local stack's tokens: the roles', and the identity token of its OIDC issuer's users.
LOCAL_ROLES = {**ROLES, "identity": "movingdata-identity"}

# OpenBao as the local stack's OIDC issuer: a userpass login mints identity tokens of role
# ``movingdata-user``, whose ``tenant`` and ``scopes`` claims are its entity's metadata.
OIDC_KEY = "movingdata"
OIDC_ROLE = "movingdata-user"
OIDC_AUDIENCE = "movingdata"  # the role's client id: every token's ``aud``
OIDC_TEMPLATE = (
    '{"tenant": {{identity.entity.metadata.tenant}}, "scopes": {{identity.entity.metadata.scopes}}}'
)
OIDC_POLICIES = {
    # Every userpass user: mint its own identity tokens (movingdata-user, or a test's role).
    "movingdata-oidc-user": 'path "identity/oidc/token/movingdata-*" { capabilities = ["read"] }\n',
    # The identity token (tests, demos): users, their entities' metadata, roles of its own.
    "movingdata-identity": (
        'path "auth/userpass/users/*" { capabilities = ["create", "update", "delete"] }\n'
        'path "identity/entity/id/*" { capabilities = ["read", "update", "delete"] }\n'
        'path "identity/oidc/role/movingdata-test-*" '
        '{ capabilities = ["create", "update", "delete"] }\n'
    ),
}


class OpenBaoAPI:
    """The few OpenBao endpoints the stack needs, with the standard library only."""

    def __init__(self, addr: str, token: str | None = None) -> None:
        self.addr = addr
        self.token = token

    def call(self, method: str, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(f"{self.addr}/v1/{path}", data=data, method=method)
        if self.token:
            req.add_header("X-Vault-Token", self.token)
        with urllib.request.urlopen(req, timeout=10) as resp:
            raw = resp.read()
        return json.loads(raw) if raw else {}

    def health_code(self) -> int:
        try:
            with urllib.request.urlopen(f"{self.addr}/v1/sys/health", timeout=2) as resp:
                return resp.status
        except urllib.error.HTTPError as exc:
            return exc.code
        except OSError:
            return 0


def initialise(api: OpenBaoAPI, init_file: Path) -> dict[str, Any]:
    """Initialise a fresh OpenBao (one key share) or read the saved init result."""
    if init_file.exists():
        return json.loads(init_file.read_text())
    result = api.call("PUT", "sys/init", {"secret_shares": 1, "secret_threshold": 1})
    write_secret(init_file, json.dumps(result))
    return result


def configure(api: OpenBaoAPI, *, kek: str, sse_key: str, audit_key: str) -> None:
    """Enable transit, create the keys, write every role's policy (idempotent: every start)."""
    mounts = api.call("GET", "sys/mounts")
    if "transit/" not in mounts.get("data", mounts):
        api.call("POST", "sys/mounts/transit", {"type": "transit"})
    for key in (kek, sse_key):
        api.call("POST", f"transit/keys/{key}", {"type": "aes256-gcm96"})
    api.call("POST", f"transit/keys/{audit_key}", {"type": "ed25519"})
    api.call("PUT", "sys/policies/acl/movingdata-seaweed", {"policy": seaweed_policy(sse_key)})
    for name, policy in policies(kek, audit_key).items():
        api.call("PUT", f"sys/policies/acl/{name}", {"policy": policy})


def oidc_issuer(addr: str) -> str:
    """The issuer (``iss``) of the identity tokens of the OpenBao at ``addr``."""
    return f"{addr}/v1/identity/oidc"


def configure_identity(api: OpenBaoAPI, addr: str) -> None:
    """OpenBao as an OIDC issuer (idempotent): userpass logins, a signing key, the
    ``movingdata-user`` role and the policies to use them."""
    auths = api.call("GET", "sys/auth")
    if "userpass/" not in auths.get("data", auths):
        api.call("POST", "sys/auth/userpass", {"type": "userpass"})
    api.call("POST", "identity/oidc/config", {"issuer": addr})
    key = {"algorithm": "RS256", "allowed_client_ids": [OIDC_AUDIENCE]}
    api.call("POST", f"identity/oidc/key/{OIDC_KEY}", key)
    role = {"key": OIDC_KEY, "client_id": OIDC_AUDIENCE, "ttl": "1h", "template": OIDC_TEMPLATE}
    api.call("POST", f"identity/oidc/role/{OIDC_ROLE}", role)
    for name, policy in OIDC_POLICIES.items():
        api.call("PUT", f"sys/policies/acl/{name}", {"policy": policy})


def issue_tokens(api: OpenBaoAPI, have: dict[str, str]) -> dict[str, str]:
    """A periodic orphan token per role of the local stack, for those ``have`` lacks."""

    def token(policy: str) -> str:
        body = {"policies": [policy], "period": "8760h", "display_name": policy}
        return str(api.call("POST", "auth/token/create-orphan", body)["auth"]["client_token"])

    fresh = {role: token(policy) for role, policy in LOCAL_ROLES.items() if role not in have}
    return {**fresh, **have}
