"""The one-shot initialisers of ``deploy/compose/compose.yaml``, run in the MovingData image.

``openbao``: initialise OpenBao once (one key share) and keep the result in the ``openbao-keys``
volume, the unseal key also on its own (``deploy/compose/openbao/start.sh`` unseals with it after
every restart); unseal; enable transit, create the keys and the roles' policies
(``workers.stack.openbao.configure``, as the local stack does); then make each role's token
exist with the value ``.env`` gives it and revoke that role's earlier tokens, so rotating a
token is an edit of ``.env`` and ``docker compose up -d``.

``pipeline``: declare every topic (partitions, replication factor and min.insync.replicas from
the settings) and create every store's container: ``workers.deps.prepare``, which each worker
also runs when it starts.

Both are idempotent (``docker compose up`` runs them every time) and print no secret.
"""

import asyncio
import json
import os
import re
import sys
import time
import urllib.error
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Protocol

from workers.settings import Settings, load_settings
from workers.stack.localenv import write_secret
from workers.stack.openbao import ROLES, OpenBaoAPI, configure

KEYS_DIR = Path("/var/lib/movingdata/openbao-keys")
# Each role's token, as .env names it. The seaweed role is SeaweedFS's (SSE-KMS), not a setting.
TOKEN_VARIABLES = {
    "seaweed": "OPENBAO_SEAWEEDFS_TOKEN",
    "worker": "MOVINGDATA_OPENBAO_TOKEN",
    "sink": "MOVINGDATA_OPENBAO_SINK_TOKEN",
    "reader": "MOVINGDATA_OPENBAO_READER_TOKEN",
    "admin": "MOVINGDATA_OPENBAO_ADMIN_TOKEN",
}
# OpenBao takes a chosen token id from a root token; it may not hold a dot.
TOKEN_FORMAT = re.compile(r"[A-Za-z0-9_-]{16,256}")
ROLE_META = "movingdata-role"
PERIOD = "8760h"  # periodic: renewed at every run, so it lives while the deployment is used


class Refused(Exception):
    """A problem the operator fixes (in ``.env``, usually); one line, no traceback."""


class API(Protocol):
    def call(
        self, method: str, path: str, body: dict[str, Any] | None = None
    ) -> dict[str, Any]: ...

    def health_code(self) -> int: ...


def wait_until(check: Callable[[], bool], what: str, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        if time.monotonic() > deadline:
            raise Refused(f"{what}: not after {timeout_s:.0f} s")
        time.sleep(1)


def wanted_tokens(env: Mapping[str, str]) -> dict[str, str]:
    """Each role's token from the environment, refused unless set, well-formed and distinct."""
    tokens = {role: env.get(name, "").strip() for role, name in TOKEN_VARIABLES.items()}
    malformed = "must be 16 to 256 letters, digits, '-' or '_' (e.g. openssl rand -hex 24)"
    problems = [
        f"{TOKEN_VARIABLES[role]} {'is empty' if not value else malformed}"
        for role, value in tokens.items()
        if not TOKEN_FORMAT.fullmatch(value)
    ]
    if not problems and len(set(tokens.values())) < len(tokens):
        problems.append("every role needs a token of its own: two OpenBao tokens are equal")
    if problems:
        raise Refused("; ".join(problems) + " (deploy/compose/.env)")
    for role, value in tokens.items():
        if "changeme" in value:
            print(f"openbao: warning: {TOKEN_VARIABLES[role]} is still the example's placeholder")
    return tokens


def initialised(api: API, keys_dir: Path) -> dict[str, Any]:
    """Initialise OpenBao once; afterwards the saved result. A saved result for a store that
    is no longer initialised (its volume was removed) is set aside, not reused."""
    saved = keys_dir / "init.json"
    if api.call("GET", "sys/init").get("initialized"):
        if not saved.exists():
            raise Refused(
                f"openbao is initialised but {saved} is missing: restore the openbao-keys volume "
                "or remove both OpenBao volumes to start again"
            )
        return dict(json.loads(saved.read_text()))
    if saved.exists():
        saved.rename(saved.with_name(f"init.json.stale-{int(time.time())}"))
    result = api.call("PUT", "sys/init", {"secret_shares": 1, "secret_threshold": 1})
    write_secret(saved, json.dumps(result))
    print("openbao: initialised (init result and unseal key in the openbao-keys volume)")
    return result


def unseal(api: API, init: Mapping[str, Any], keys_dir: Path, timeout_s: float) -> None:
    key = init["keys_base64"][0]
    write_secret(keys_dir / "unseal.key", key)  # start.sh reads it after a restart
    if api.health_code() == 503:
        api.call("PUT", "sys/unseal", {"key": key})
    wait_until(lambda: api.health_code() == 200, "openbao active after unseal", timeout_s)


def lookup(root: API, path: str, body: dict[str, str]) -> dict[str, Any] | None:
    """A token's (or an accessor's) properties; None if OpenBao knows no such token."""
    try:
        return dict(root.call("POST", path, body)["data"])
    except urllib.error.HTTPError as exc:
        if exc.code in (400, 403, 404):
            return None
        raise


def ensure_token(root: API, role: str, token: str) -> tuple[str, str]:
    """The role's token with this value, created (or renewed); its accessor and what was done."""
    policy = ROLES[role]
    found = lookup(root, "auth/token/lookup", {"token": token})
    if found is not None and (found.get("meta") or {}).get(ROLE_META) == role:
        root.call("POST", "auth/token/renew", {"token": token})
        return str(found["accessor"]), "kept"
    if found is not None:  # the value is taken by another token: refuse rather than reuse it
        raise Refused(f"{TOKEN_VARIABLES[role]}: that value is already another token's")
    created = root.call(
        "POST",
        "auth/token/create-orphan",
        {
            "id": token,
            "policies": [policy],
            "period": PERIOD,
            "display_name": policy,
            "meta": {ROLE_META: role},
        },
    )
    return str(created["auth"]["accessor"]), "created"


def revoke_superseded(root: API, keep: Mapping[str, str]) -> int:
    """Revoke every token this initialiser made whose role now has another (a rotation)."""
    listed = root.call("GET", "auth/token/accessors?list=true")
    revoked = 0
    for accessor in listed.get("data", {}).get("keys", []):
        if accessor in keep.values():
            continue
        found = lookup(root, "auth/token/lookup-accessor", {"accessor": accessor})
        role = ((found or {}).get("meta") or {}).get(ROLE_META)
        if role in keep:
            root.call("POST", "auth/token/revoke-accessor", {"accessor": accessor})
            revoked += 1
    return revoked


def setup_openbao(
    settings: Settings, env: Mapping[str, str], api: API, root_api: Callable[[str], API],
    keys_dir: Path,
) -> None:  # fmt: skip
    tokens = wanted_tokens(env)
    timeout = settings.stack_timeout_s
    wait_until(lambda: api.health_code() in (200, 429, 501, 503), "openbao answering", timeout)
    init = initialised(api, keys_dir)
    unseal(api, init, keys_dir, timeout)
    root = root_api(init["root_token"])
    configure(
        root,
        kek=settings.kek_name,
        sse_key=settings.s3_kms_key_id,
        audit_key=settings.audit_signing_key,
    )
    keep = {}
    for role, token in tokens.items():
        keep[role], done = ensure_token(root, role, token)
        print(f"openbao: {role} token {done}")
    revoked = revoke_superseded(root, keep)
    print(
        f"openbao: transit keys {settings.kek_name}, {settings.s3_kms_key_id}, "
        f"{settings.audit_signing_key} ready; {revoked} superseded tokens revoked"
    )


async def setup_pipeline(settings: Settings) -> None:
    from workers.deps import prepare

    deadline = time.monotonic() + settings.stack_timeout_s
    while True:
        try:
            await prepare(settings)
            break
        except Exception as exc:  # a service still starting: try again until the deadline
            if time.monotonic() > deadline:
                raise Refused(f"topics and containers: {type(exc).__name__}: {exc}") from exc
            await asyncio.sleep(2)
    print(
        f"pipeline: topics {settings.topic_prefix}.* ({settings.topic_partitions} partitions, "
        f"replication {settings.topic_replication}) and bucket {settings.bucket} in "
        f"{', '.join(sorted({*settings.targets, settings.staging_target}))} ready"
    )


def main(argv: list[str]) -> int:
    step = argv[1] if len(argv) == 2 else ""
    if step not in ("openbao", "pipeline"):
        print("usage: initialise.py openbao|pipeline", file=sys.stderr)
        return 2
    settings = load_settings()  # a worker's: the operators' files are not read
    try:
        if step == "openbao":
            addr = settings.openbao_addr
            setup_openbao(
                settings, os.environ, OpenBaoAPI(addr), lambda t: OpenBaoAPI(addr, t), KEYS_DIR
            )
        else:
            asyncio.run(setup_pipeline(settings))
    except Refused as exc:
        print(f"{step}: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
