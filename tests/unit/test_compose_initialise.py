"""deploy/compose/initialise.py against an in-memory OpenBao that answers as the real one does
(checked by hand against OpenBao 2.7.2: custom token ids, lookups of unknown tokens, accessors)."""

import importlib.util
import itertools
import json
import urllib.error
from email.message import Message
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from workers.settings import Settings
from workers.stack.openbao import ROLES

PATH = Path(__file__).resolve().parents[2] / "deploy/compose/initialise.py"


def load_module() -> ModuleType:
    spec = importlib.util.spec_from_file_location("compose_initialise", PATH)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


init = load_module()


def tokens(suffix: str = "") -> dict[str, str]:
    return {name: f"{role}-token-0123456789{suffix}" for role, name in init.TOKEN_VARIABLES.items()}


class FakeOpenBao:
    """The endpoints the initialiser calls; one shared state, as one server."""

    def __init__(self) -> None:
        self.initialised = False
        self.sealed = True
        self.root = "root-token"
        self.unseal_key = "dW5zZWFs"
        self.tokens: dict[str, dict[str, Any]] = {}  # id -> accessor, policies, meta
        self.keys: set[str] = set()
        self.policies: set[str] = set()
        self.calls: list[tuple[str, str]] = []
        self.accessors = (f"accessor-{n}" for n in itertools.count())

    def api(self, token: str | None = None) -> "Client":
        return Client(self, token)


class Client:
    def __init__(self, server: FakeOpenBao, token: str | None) -> None:
        self.server, self.token = server, token

    def health_code(self) -> int:
        s = self.server
        return 501 if not s.initialised else 503 if s.sealed else 200

    def refuse(self, path: str, code: int) -> urllib.error.HTTPError:
        return urllib.error.HTTPError(f"http://openbao/v1/{path}", code, "refused", Message(), None)

    def by_accessor(self, accessor: str) -> str | None:
        return next((t for t, v in self.server.tokens.items() if v["accessor"] == accessor), None)

    def call(self, method: str, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        s, body = self.server, body or {}
        s.calls.append((method, path))
        if path == "sys/init":
            if method == "GET":
                return {"initialized": s.initialised}
            if s.initialised:
                raise self.refuse(path, 400)
            s.initialised = True
            return {"keys_base64": [s.unseal_key], "root_token": s.root}
        if path == "sys/unseal":
            s.sealed = body["key"] != s.unseal_key
            return {"sealed": s.sealed}
        if self.token != s.root or s.sealed:
            raise self.refuse(path, 403)
        if path == "sys/mounts":
            return {"data": {"transit/": {}} if s.keys else {}}
        if path.startswith("transit/keys/"):
            s.keys.add(path.removeprefix("transit/keys/"))
            return {}
        if path.startswith(("sys/mounts/", "sys/policies/acl/")):
            s.policies.add(path.rsplit("/", 1)[-1])
            return {}
        if path == "auth/token/lookup":
            if body["token"] not in s.tokens:
                raise self.refuse(path, 403)  # "bad token"
            return {"data": s.tokens[body["token"]]}
        if path == "auth/token/renew":
            return {"auth": {}}
        if path == "auth/token/create-orphan":
            assert "." not in body["id"] and body["policies"][0] in s.policies
            accessor = next(s.accessors)
            s.tokens[body["id"]] = {"accessor": accessor, **body}
            return {"auth": {"accessor": accessor}}
        if path == "auth/token/accessors?list=true":
            return {"data": {"keys": [v["accessor"] for v in s.tokens.values()] + ["root-acc"]}}
        if path == "auth/token/lookup-accessor":
            token = self.by_accessor(body["accessor"])
            return {"data": s.tokens[token] if token else {"policies": ["root"], "meta": None}}
        if path == "auth/token/revoke-accessor":
            del s.tokens[str(self.by_accessor(body["accessor"]))]
            return {}
        raise AssertionError(f"unexpected {method} {path}")


@pytest.fixture
def bao() -> FakeOpenBao:
    return FakeOpenBao()


def run(bao: FakeOpenBao, keys: Path, env: dict[str, str]) -> None:
    settings = Settings(stack_timeout_s=2)
    init.setup_openbao(settings, env, bao.api(), bao.api, keys)


def test_first_run_initialises_unseals_and_creates_every_role_token(
    bao: FakeOpenBao, tmp_path: Path
) -> None:
    run(bao, tmp_path, tokens())
    assert not bao.sealed
    assert json.loads((tmp_path / "init.json").read_text())["root_token"] == bao.root
    assert (tmp_path / "unseal.key").read_text() == bao.unseal_key
    for name in ("init.json", "unseal.key"):
        assert (tmp_path / name).stat().st_mode & 0o777 == 0o600
    assert bao.keys == {"movingdata", "movingdata-sse", "movingdata-audit"}
    by_role = {v["meta"][init.ROLE_META]: (t, v["policies"]) for t, v in bao.tokens.items()}
    wanted = {
        role: (tokens()[init.TOKEN_VARIABLES[role]], [policy]) for role, policy in ROLES.items()
    }
    assert by_role == wanted


def test_a_second_run_keeps_everything(bao: FakeOpenBao, tmp_path: Path) -> None:
    run(bao, tmp_path, tokens())
    before = dict(bao.tokens)
    bao.sealed = True  # a restart of OpenBao between the two
    run(bao, tmp_path, tokens())
    assert bao.tokens == before and not bao.sealed
    assert bao.calls.count(("PUT", "sys/init")) == 1


def test_a_rotated_token_replaces_the_old_one(bao: FakeOpenBao, tmp_path: Path) -> None:
    run(bao, tmp_path, tokens())
    rotated = tokens() | {"MOVINGDATA_OPENBAO_TOKEN": "worker-token-rotated-0001"}
    run(bao, tmp_path, rotated)
    assert set(bao.tokens) == set(rotated.values())


def test_a_saved_result_of_an_earlier_store_is_set_aside(bao: FakeOpenBao, tmp_path: Path) -> None:
    (tmp_path / "init.json").write_text('{"root_token": "gone", "keys_base64": ["old"]}')
    run(bao, tmp_path, tokens())
    assert json.loads((tmp_path / "init.json").read_text())["root_token"] == bao.root
    assert len(list(tmp_path.glob("init.json.stale-*"))) == 1


def test_an_initialised_store_without_its_keys_is_refused(bao: FakeOpenBao, tmp_path: Path) -> None:
    bao.initialised = True
    with pytest.raises(init.Refused, match=r"init\.json is missing"):
        run(bao, tmp_path, tokens())


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"MOVINGDATA_OPENBAO_TOKEN": ""}, "MOVINGDATA_OPENBAO_TOKEN is empty"),
        ({"OPENBAO_SEAWEEDFS_TOKEN": "s.has-a-dot-0123456"}, "OPENBAO_SEAWEEDFS_TOKEN must be"),
        ({"MOVINGDATA_OPENBAO_READER_TOKEN": "short"}, "READER_TOKEN must be"),
        (
            {"MOVINGDATA_OPENBAO_ADMIN_TOKEN": tokens()["MOVINGDATA_OPENBAO_TOKEN"]},
            "a token of its own",
        ),
    ],
)
def test_bad_tokens_are_refused_before_anything_changes(
    bao: FakeOpenBao, tmp_path: Path, change: dict[str, str], message: str
) -> None:
    with pytest.raises(init.Refused, match=message):
        run(bao, tmp_path, tokens() | change)
    assert bao.calls == [] and not list(tmp_path.iterdir())


def test_a_value_already_held_by_another_role_is_refused(bao: FakeOpenBao, tmp_path: Path) -> None:
    run(bao, tmp_path, tokens())
    swapped = tokens() | {
        "MOVINGDATA_OPENBAO_TOKEN": tokens()["MOVINGDATA_OPENBAO_ADMIN_TOKEN"],
        "MOVINGDATA_OPENBAO_ADMIN_TOKEN": "admin-token-new-0123456789",
    }
    with pytest.raises(init.Refused, match="already another token's"):
        run(bao, tmp_path, swapped)


async def test_pipeline_waits_for_services_then_prepares(monkeypatch: pytest.MonkeyPatch) -> None:
    attempts = []

    async def prepare(settings: Settings) -> None:
        attempts.append(settings.topic_replication)
        if len(attempts) < 3:
            raise ConnectionError("broker starting")

    async def no_wait(_: float) -> None:
        return None

    monkeypatch.setattr("workers.deps.prepare", prepare)
    monkeypatch.setattr(init.asyncio, "sleep", no_wait)
    await init.setup_pipeline(Settings(topic_replication=1, stack_timeout_s=60))
    assert attempts == [1, 1, 1]


async def test_pipeline_gives_up_at_the_deadline(monkeypatch: pytest.MonkeyPatch) -> None:
    async def prepare(settings: Settings) -> None:
        raise ConnectionError("no broker")

    monkeypatch.setattr("workers.deps.prepare", prepare)
    with pytest.raises(init.Refused, match="ConnectionError: no broker"):
        await init.setup_pipeline(Settings(stack_timeout_s=0))


def test_an_unknown_step_is_a_usage_error() -> None:
    assert init.main(["initialise.py", "everything"]) == 2
