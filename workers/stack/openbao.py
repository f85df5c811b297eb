"""OpenBao set-up over its HTTP API: initialise once, unseal every start, configure transit.

The unseal key and root token are written to ``<home>/openbao/init.json`` (mode 600) and
never printed. A least-privilege periodic token is issued per role: SeaweedFS (SSE-KMS), the
workers, the sink (audit checkpoints), readers (restore, audit verify) and the admin (key
rotation).
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


def issue_tokens(api: OpenBaoAPI, have: dict[str, str]) -> dict[str, str]:
    """A periodic orphan token per role, for the roles in ``have`` without one."""

    def token(policy: str) -> str:
        body = {"policies": [policy], "period": "8760h", "display_name": policy}
        return str(api.call("POST", "auth/token/create-orphan", body)["auth"]["client_token"])

    return {**{role: token(policy) for role, policy in ROLES.items() if role not in have}, **have}
