"""OpenBao set-up over its HTTP API: initialise once, unseal every start, configure transit.

The unseal key and root token are written to ``<home>/openbao/init.json`` (mode 600) and
never printed. Two least-privilege periodic tokens are issued: one for SeaweedFS (SSE-KMS)
and one for the workers (envelope encryption KEK).
"""

import json
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from workers.stack.localenv import write_secret

SEAWEED_POLICY = """
path "transit/encrypt/*"  { capabilities = ["update"] }
path "transit/decrypt/*"  { capabilities = ["update"] }
path "transit/datakey/*"  { capabilities = ["update"] }
path "transit/keys/*"     { capabilities = ["read"] }
"""


def worker_policy(kek: str) -> str:
    """Transit on ``kek``, and on keys named ``kek-*`` (a second deployment's or a test's own
    KEK; encrypting with a missing key creates it). A glob may only end a path."""
    return f"""
path "transit/encrypt/{kek}"       {{ capabilities = ["update"] }}
path "transit/decrypt/{kek}"       {{ capabilities = ["update"] }}
path "transit/rewrap/{kek}"        {{ capabilities = ["update"] }}
path "transit/keys/{kek}"          {{ capabilities = ["read"] }}
path "transit/keys/{kek}/rotate"   {{ capabilities = ["update"] }}
path "transit/keys/{kek}/config"   {{ capabilities = ["update"] }}
path "transit/encrypt/{kek}-*"     {{ capabilities = ["create", "update"] }}
path "transit/decrypt/{kek}-*"     {{ capabilities = ["update"] }}
path "transit/rewrap/{kek}-*"      {{ capabilities = ["update"] }}
path "transit/keys/{kek}-*"        {{ capabilities = ["read", "update"] }}
"""


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


def configure(api: OpenBaoAPI, *, kek: str, sse_key: str) -> None:
    """Enable transit, create both keys, write both policies (idempotent: runs every start)."""
    mounts = api.call("GET", "sys/mounts")
    if "transit/" not in mounts.get("data", mounts):
        api.call("POST", "sys/mounts/transit", {"type": "transit"})
    for key in (kek, sse_key):
        api.call("POST", f"transit/keys/{key}", {"type": "aes256-gcm96"})
    api.call("PUT", "sys/policies/acl/movingdata-seaweed", {"policy": SEAWEED_POLICY})
    api.call("PUT", "sys/policies/acl/movingdata-worker", {"policy": worker_policy(kek)})


def issue_tokens(api: OpenBaoAPI) -> dict[str, str]:
    """A periodic orphan token per policy: one for SeaweedFS, one for the workers."""

    def token(policy: str) -> str:
        body = {"policies": [policy], "period": "8760h", "display_name": policy}
        return str(api.call("POST", "auth/token/create-orphan", body)["auth"]["client_token"])

    return {"seaweed": token("movingdata-seaweed"), "worker": token("movingdata-worker")}
