"""Only the sink signs audit checkpoints, with an OpenBao token of its own: the roles' policies
(workers/stack/openbao.py) and the sink's start without its token (workers/jobs/checkpointer.py)."""

import types
from pathlib import Path
from typing import cast

import pytest
from pydantic import SecretStr

from workers.app import build_app
from workers.deps import Deps
from workers.errors import Fatal
from workers.jobs.checkpointer import Checkpointer
from workers.kms.keys import OpenBaoSigner, open_signer
from workers.settings import Settings
from workers.stack.openbao import ROLES, policies

AUDIT_KEY = "movingdata-audit"


def no_deps() -> Deps:
    async def close() -> None:
        pass

    return cast(Deps, types.SimpleNamespace(stores={}, close=close))


def settings(tmp_path: Path, sink_token: str | None) -> Settings:
    return Settings(
        home=tmp_path,
        kek_provider="openbao",
        openbao_token=SecretStr("worker-token"),
        openbao_sink_token=None if sink_token is None else SecretStr(sink_token),
    )


def granted(policy: str, key: str) -> set[str]:
    """The transit operations a policy grants on ``key`` (``sign``, ``verify``, ...)."""
    lines = [line for line in policy.splitlines() if f'/{key}"' in line]
    return {line.split('"')[1].split("/")[1] for line in lines}


def test_only_the_sink_role_signs_with_the_audit_key() -> None:
    written = policies("movingdata", AUDIT_KEY)
    assert ROLES["sink"] == "movingdata-sink"
    assert granted(written["movingdata-sink"], AUDIT_KEY) == {"sign", "verify"}
    assert written["movingdata-sink"].count("path ") == 2  # the audit key, nothing else
    assert granted(written["movingdata-worker"], AUDIT_KEY) == set()
    signers = {name for name, policy in written.items() if "sign" in granted(policy, AUDIT_KEY)}
    assert signers == {"movingdata-sink"}
    assert granted(written["movingdata-reader"], AUDIT_KEY) == {"verify"}


def test_the_sink_does_not_start_without_its_own_token(tmp_path: Path) -> None:
    with pytest.raises(Fatal, match="MOVINGDATA_OPENBAO_SINK_TOKEN is not set: the sink signs"):
        build_app(settings(tmp_path, None), ["sink"], no_deps())
    build_app(settings(tmp_path, None), ["ingest", "verify"], no_deps())  # they never sign


def test_the_checkpointer_signs_with_the_sink_token(tmp_path: Path) -> None:
    signer = Checkpointer(settings(tmp_path, "sink-token")).signer
    assert isinstance(signer, OpenBaoSigner)
    assert signer._token == "sink-token"
    for missing in (None, ""):  # unset, or set empty (Compose's `${VAR:-}`)
        with pytest.raises(Fatal, match="MOVINGDATA_OPENBAO_SINK_TOKEN is not set"):
            open_signer(settings(tmp_path, missing), "sink")
