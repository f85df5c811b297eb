"""Every component of deploy/ started for real, each with only its own secrets.

Each Kubernetes overlay is rendered (its Secrets' files filled in with the local stack's values,
as an operator fills them in) and the Compose file interpolated (its ``.env`` likewise); each
container's environment is built as its runtime builds it (image ENV, ConfigMap, its Secrets,
env); only where the services are is replaced by the local stack's addresses (never a secret).
Then each component's real start-up runs against the local stack: every stage as a
``movingdata worker --agents STAGE`` process until it is ready, the API's application with its
lifespan until ``/readyz`` answers, the dashboard's page (its first queries), the topics Job's
script and Compose's ``init``. Each must start, and the secret settings its code reads, those it
holds and those ``tests/deploy/needs.py`` gives it must be one set.
"""

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import AsyncIterator, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from pydantic import SecretStr
from pymongo import AsyncMongoClient, MongoClient, monitoring
from streamlit.testing.v1 import AppTest
from typer.testing import CliRunner

from tests.deploy.manifests import (
    COMPOSE_DIR,
    GCS_SECRET,
    ROOT,
    Container,
    compose_containers,
    compose_mounts,
    k8s_containers,
    kustomize,
    render,
)
from tests.deploy.needs import (
    GCS_KEY_SETTING,
    SECRET_SETTINGS,
    Component,
    applies,
    component_of,
    needed,
)
from tests.deploy.reads import recording
from tests.stores import remove_container
from tests.unit.test_compose import is_secret, load_raw, read_env_file
from topics import delete_topics
from workers import cli
from workers.api import tokens
from workers.app import STAGES
from workers.broker import kafka_options
from workers.dashboard import PAGE
from workers.deps import prepare, target_url
from workers.kms.keys import TOKEN_SETTINGS
from workers.settings import KafkaRole, Settings, load_settings
from workers.stack.openbao import ROLES
from workers.stores import open_store

VARIANTS = ("k8s-dev", "k8s-prod", "compose")
# Which local broker user and OpenBao tokens each Secret is filled in with (its role's).
SECRET_ROLES: Mapping[str, KafkaRole] = {
    "movingdata-workers": "worker",
    "movingdata-sink": "worker",
    "movingdata-api": "api",
    "movingdata-dashboard": "dashboard",
}
# Where the image has its data files, and where they are in the repository.
IMAGE_PATHS = {"/etc/movingdata/": f"{ROOT}/deploy/"}
READY_S = 180.0


# What a database user with the `read` role may send.
READ_COMMANDS = frozenset(
    {"find", "getMore", "aggregate", "count", "distinct", "listCollections", "listIndexes"}
    | {"killCursors", "endSessions", "ping", "hello", "isMaster", "buildInfo"}
)


class Commands(monitoring.CommandListener):
    """The names of the commands a client sent."""

    def __init__(self) -> None:
        self.names: set[str] = set()

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        self.names.add(event.command_name)

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        pass

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        pass


@dataclass(frozen=True)
class Isolated:
    """This module's own topics, bucket and database on the local stack, and a reader token
    (the dashboard's) in that database."""

    prefix: str
    bucket: str
    database: str
    dashboard_token: str


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture(scope="module")
def stack() -> Settings:
    """The local stack's own settings (an operator's: every token is there)."""
    return load_settings(operator=True)


@pytest.fixture(scope="module")
async def isolated(stack: Settings) -> AsyncIterator[Isolated]:
    unique = f"t{uuid.uuid4().hex[:12]}"
    # Under the deployment's prefix, which the broker users' ACLs cover (workers.stack.principals).
    names = {"prefix": f"{stack.topic_prefix}.{unique}", "bucket": unique, "database": unique}
    settings = stack.model_copy(
        update={"topic_prefix": names["prefix"], "bucket": unique, "mongo_database": unique}
    )
    await prepare(settings)  # the topics exist before eight workers look for them at once
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(stack.mongo_url)
    token = await tokens.create(client[unique], "dashboard", "default", ["read"], None)
    yield Isolated(**names, dashboard_token=token)
    await delete_topics(kafka_options(settings), settings.topic_prefix)
    await client.drop_database(unique)
    await client.close()
    for target in {*settings.targets, settings.staging_target}:
        store = open_store(target_url(target, settings), settings)
        await remove_container(store, target, settings.bucket, settings)


def secret_value(stack: Settings, role: KafkaRole, setting: str, isolated: Isolated) -> str:
    """A secret setting's value on the local stack, for a process of ``role``."""
    if setting == "dashboard_token":
        return isolated.dashboard_token
    settings = load_settings(operator=True, kafka_role=role)
    if setting == "mongo_uri":
        return settings.mongo_url
    value = getattr(settings, setting)
    if isinstance(value, SecretStr):
        return value.get_secret_value()
    return "" if value is None else str(value)


def configured(env: Mapping[str, str], home: Path) -> Settings:
    """The settings a process with exactly this environment reads (no local.env in home)."""
    with pytest.MonkeyPatch.context() as patch:
        for key in [k for k in os.environ if k.startswith("MOVINGDATA_")]:
            patch.delenv(key)
        for key, value in {**env, "MOVINGDATA_HOME": str(home)}.items():
            patch.setenv(key, value)
        return Settings()


@pytest.fixture(scope="module")
def containers(
    stack: Settings, isolated: Isolated, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, dict[str, Container]]:
    """Every MovingData container of each deployment, its secrets the local stack's."""
    binary = kustomize()
    work = tmp_path_factory.mktemp("deploy")
    empty = render(binary, work, lambda _overlay, _secret, _key: "")
    config = {
        overlay: configured(k8s_containers(docs)["movingdata-api"].env, work)
        for overlay, docs in empty.items()
    }

    def fill(overlay: str, secret: str, key: str) -> str:
        setting = key.removeprefix("MOVINGDATA_").lower()
        if not applies(setting, config[overlay]):
            return ""  # as the examples say: empty when it does not apply
        return secret_value(stack, SECRET_ROLES[secret], setting, isolated)

    out = {f"k8s-{o}": k8s_containers(docs) for o, docs in render(binary, work, fill).items()}
    dotenv = read_env_file(COMPOSE_DIR / ".env.example")
    for key in dotenv:
        setting = key.removeprefix("MOVINGDATA_").lower()
        if key.startswith("MOVINGDATA_") and setting in SECRET_SETTINGS:
            dotenv[key] = secret_value(stack, "worker", setting, isolated)
    dotenv["MOVINGDATA_AZURE_ACCOUNT"] = stack.azure_account  # the key is the local one's

    def secret(name: str) -> bool:
        return is_secret(name) or name.removeprefix("MOVINGDATA_").lower() in SECRET_SETTINGS

    out["compose"] = compose_containers(load_raw(), dotenv, secret)
    return out


def on_the_local_stack(
    container: Container, stack: Settings, isolated: Isolated, home: Path
) -> dict[str, str]:
    """The container's environment with the local stack's addresses in place of the
    deployment's (the broker listener of its protocol), this module's topics, bucket and
    database, a home of its own; nothing a container holds as a secret is replaced."""
    env = dict(container.env)
    protocol = env.get("MOVINGDATA_KAFKA_SECURITY_PROTOCOL", "PLAINTEXT")
    listener = {"PLAINTEXT": stack.kafka_port, "SASL_SSL": stack.kafka_sasl_port}
    assert protocol in listener, f"{container.name}: no local listener speaks {protocol}"
    local = {
        "MOVINGDATA_KAFKA_SERVERS": f"{stack.kafka_host}:{listener[protocol]}",
        "MOVINGDATA_OPENBAO_URL": stack.openbao_addr,
        "MOVINGDATA_S3_URL": stack.s3_endpoint,
        "MOVINGDATA_AZURE_ACCOUNT": stack.azure_account,
        "MOVINGDATA_AZURE_URL": stack.azure_endpoint,
        "MOVINGDATA_GCS_URL": stack.gcs_endpoint,
        "MOVINGDATA_GCS_CREDENTIAL": "anonymous",  # the emulator; a deployment mounts a key
        "MOVINGDATA_TOPIC_PREFIX": isolated.prefix,
        "MOVINGDATA_BUCKET": isolated.bucket,
        "MOVINGDATA_MONGO_DATABASE": isolated.database,
        "MOVINGDATA_TOPIC_REPLICATION": "1",  # one local broker
        "MOVINGDATA_TOPIC_MIN_INSYNC": "1",
        "MOVINGDATA_HOME": str(home),
        "MOVINGDATA_WORKER_HOST": "127.0.0.1",
        "MOVINGDATA_WORKER_PORT": str(free_port()),
    }
    if protocol == "SASL_SSL":
        local["MOVINGDATA_KAFKA_SSL_CAFILE"] = str(stack.home / "kafka" / "tls" / "ca.pem")
    uri = env.get("MOVINGDATA_MONGO_URI", "")
    if uri and not urlsplit(uri).username:  # an address, not a user: the local database
        local["MOVINGDATA_MONGO_URI"] = stack.mongo_url
    held = {k for k in local if k in container.secret_vars and env.get(k)}
    assert held <= {"MOVINGDATA_MONGO_URI"}, f"{container.name}: a secret would be replaced"
    env.pop("MOVINGDATA_GCS_CREDENTIALS_FILE", None)
    for key, value in env.items():
        for image_path, repo_path in IMAGE_PATHS.items():
            if value.startswith(image_path):
                env[key] = repo_path + value.removeprefix(image_path)
    return env | local


def secrets_read(names: set[str]) -> set[str]:
    return names & SECRET_SETTINGS


def assert_own_secrets(
    container: Container, env: Mapping[str, str], reads: set[str], home: Path
) -> None:
    """What it holds, what it reads and what the table gives it are one set."""
    component = component_of(container.name)
    wanted = needed(component, configured(env, home))
    assert container.held == wanted, f"{container.name} holds what {component} does not need"
    assert secrets_read(reads) == wanted, f"{container.name} reads other secrets than it holds"
    if container.name.startswith("movingdata-"):  # Kubernetes: the GCS key is a mounted file
        mounts_key = GCS_SECRET in container.secret_mounts
        assert mounts_key == (GCS_KEY_SETTING in reads), f"{container.name}: the GCS key"


def token_policies(stack: Settings, token: str) -> list[str]:
    """The policies of an OpenBao token (lookup-self: any token may)."""
    request = urllib.request.Request(
        f"{stack.openbao_addr}/v1/auth/token/lookup-self", headers={"X-Vault-Token": token}
    )
    with urllib.request.urlopen(request, timeout=10) as answer:
        return list(json.load(answer)["data"]["policies"])


def assert_tokens_are_their_roles(container: Container, stack: Settings) -> None:
    """Each OpenBao token a container holds is a token of the role its setting names."""
    for role, setting in TOKEN_SETTINGS.items():
        value = container.env.get(f"MOVINGDATA_{setting.upper()}")
        if value:
            assert ROLES[role] in token_policies(stack, value), (container.name, setting)


def by_component(containers: Mapping[str, Container], *wanted: Component) -> list[Container]:
    found = []
    for name, container in containers.items():
        try:
            if component_of(name) in wanted:
                found.append(container)
        except KeyError:
            continue
    return found


@dataclass
class Process:
    container: Container
    env: dict[str, str]
    home: Path
    proc: subprocess.Popen[bytes]

    @property
    def log(self) -> Path:
        return self.home / "process.log"

    @property
    def reads(self) -> set[str]:
        path = self.home / "reads"
        return set(path.read_text().split()) if path.exists() else set()

    def tail(self) -> str:
        return self.log.read_text(errors="replace")[-3000:] if self.log.exists() else ""


def local_argv(container: Container) -> list[str]:
    """The container's command, run here: ``movingdata`` and ``python`` as this venv's, the
    files Compose mounts from deploy/compose/ where they are."""
    argv = list(container.argv)
    if container.name in load_raw()["services"]:
        mounts = compose_mounts(load_raw()["services"][container.name])
        argv = [str(mounts.get(a, a)) for a in argv]
    return argv


def start(container: Container, env: dict[str, str], home: Path) -> Process:
    """The container's command as a process of its own, its setting reads recorded."""
    home.mkdir(parents=True, exist_ok=True)
    base = {"PATH": os.environ["PATH"], "HOME": str(home), "PYTHONPATH": str(ROOT)}
    argv = [sys.executable, "-m", "tests.deploy.reads", str(home / "reads"), *local_argv(container)]
    with (home / "process.log").open("wb") as log:
        proc = subprocess.Popen(
            argv,
            env=base | env,
            cwd=home,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    return Process(container, env, home, proc)


def stop(process: Process) -> None:
    if process.proc.poll() is None:
        os.killpg(process.proc.pid, signal.SIGTERM)
    try:
        process.proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(process.proc.pid, signal.SIGKILL)
        process.proc.wait()


def worker_ready(process: Process) -> bool:
    """Its /readyz answers 200 and Faust has finished the worker's first rebalance."""
    if "Worker ready" not in process.log.read_text(errors="replace"):
        return False
    url = f"http://127.0.0.1:{process.env['MOVINGDATA_WORKER_PORT']}/readyz"
    try:
        with urllib.request.urlopen(url, timeout=10) as answer:
            return bool(answer.status == 200)
    except OSError:
        return False


@pytest.fixture(params=VARIANTS)
def variant(request: pytest.FixtureRequest) -> str:
    """Which deployment's containers: each Kubernetes overlay's, or the Compose file's."""
    return str(request.param)


@pytest.fixture
def processes() -> Iterator[list[Process]]:
    started: list[Process] = []
    yield started
    for process in started:
        stop(process)


def test_every_stage_starts_with_only_its_own_secrets(
    variant: str,
    containers: dict[str, dict[str, Container]],
    stack: Settings,
    isolated: Isolated,
    processes: list[Process],
    tmp_path: Path,
) -> None:
    """``movingdata worker --agents STAGE`` for every stage at once, each with its container's
    environment, until each is ready (its /readyz: broker, database, stores, KMS)."""
    stages = by_component(containers[variant], "worker", "sink")
    assert {c.argv[-1] for c in stages} == set(STAGES)
    for container in stages:
        env = on_the_local_stack(container, stack, isolated, tmp_path / container.name)
        processes.append(start(container, env, tmp_path / container.name))
    deadline = time.monotonic() + READY_S
    waiting = list(processes)
    while waiting:
        for process in list(waiting):
            assert process.proc.poll() is None, f"{process.container.name}:\n{process.tail()}"
            if worker_ready(process):
                waiting.remove(process)
        assert time.monotonic() < deadline, [f"{p.container.name}:\n{p.tail()}" for p in waiting]
        time.sleep(1)
    for process in processes:
        assert_own_secrets(process.container, process.env, process.reads, process.home)
        assert_tokens_are_their_roles(process.container, stack)


def test_the_one_shots_run_with_only_their_own_secrets(
    variant: str,
    containers: dict[str, dict[str, Container]],
    stack: Settings,
    isolated: Isolated,
    tmp_path: Path,
) -> None:
    """The Kubernetes topics Job's script and Compose's ``init`` (topics and buckets)."""
    (container,) = by_component(containers[variant], "topics", "init")
    env = on_the_local_stack(container, stack, isolated, tmp_path)
    process = start(container, env, tmp_path)
    try:
        assert process.proc.wait(timeout=READY_S) == 0, process.tail()
    finally:
        stop(process)
    assert_own_secrets(container, env, process.reads, tmp_path)


async def test_the_api_starts_with_only_its_own_secrets(
    variant: str,
    containers: dict[str, dict[str, Container]],
    stack: Settings,
    isolated: Isolated,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The API container's command (``movingdata api ...``) builds the application uvicorn
    would serve; its lifespan opens every service (Services.open), then /readyz answers 200
    and a share link is checked (the only route reading the link key)."""
    (container,) = by_component(containers[variant], "api")
    env = on_the_local_stack(container, stack, isolated, tmp_path)
    for key in [k for k in os.environ if k.startswith("MOVINGDATA_")]:
        monkeypatch.delenv(key)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    served: dict[str, Any] = {}
    monkeypatch.setattr("uvicorn.run", lambda app, **options: served.update(options, app=app))
    assert container.argv[0] == "movingdata"
    with recording() as reads:
        result = CliRunner().invoke(cli.app, container.argv[1:])
        assert result.exit_code == 0, result.output
        app = served["app"]
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://api") as http:
                ready = await http.get("/readyz")
                assert ready.status_code == 200, ready.text
                link = await http.get("/v1/links/none", params={"exp": 1, "sig": "0"})
                assert link.status_code == 404, link.text
    assert served["port"] == int(env.get("MOVINGDATA_API_PORT", 8001))
    assert_own_secrets(container, env, reads, tmp_path)
    assert_tokens_are_their_roles(container, stack)


def test_the_dashboard_answers_its_first_queries_with_only_its_own_secrets(
    variant: str,
    containers: dict[str, dict[str, Container]],
    stack: Settings,
    isolated: Isolated,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The dashboard container's command (``movingdata dashboard``) starts Streamlit on the
    page; the page runs (Streamlit's AppTest) with that environment: its token is looked up,
    its tenant's objects, audit and dead letters read, the fleet's groups listed."""
    (container,) = by_component(containers[variant], "dashboard")
    env = on_the_local_stack(container, stack, isolated, tmp_path)
    for key in [k for k in os.environ if k.startswith("MOVINGDATA_")]:
        monkeypatch.delenv(key)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    launched: list[list[str]] = []
    monkeypatch.setattr("subprocess.call", lambda argv: launched.append(argv) or 0)
    clients: list[MongoClient[Any]] = []  # the page's, closed here (a run never closes it)
    commands = Commands()

    class Recorded(MongoClient):  # type: ignore[type-arg]
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, event_listeners=[commands], **kwargs)
            clients.append(self)

    monkeypatch.setattr("workers.dashboard.data.MongoClient", Recorded)
    with recording() as reads:
        result = CliRunner().invoke(cli.app, container.argv[1:])
        assert result.exit_code == 0, result.output
        ((_, _, _, run, page, *_),) = launched
        assert (run, page) == ("run", str(PAGE))
        try:
            at = AppTest.from_file(page, default_timeout=90).run()
        finally:
            for client in clients:
                client.close()
    assert not at.exception, at.exception
    sidebar = " ".join(str(m.value) for m in at.sidebar.markdown)
    assert "dashboard" in sidebar, "the dashboard's token was not found: " + sidebar
    assert not [w.value for w in at.warning], "the broker did not answer the fleet's query"
    assert isolated.dashboard_token not in str(at.main) + str(at.sidebar)
    # Its database user may be read-only: the page sends nothing but reads.
    assert "find" in commands.names and commands.names <= READ_COMMANDS, commands.names
    assert_own_secrets(container, env, reads, tmp_path)


def test_no_container_holds_an_operators_token(containers: dict[str, dict[str, Container]]) -> None:
    """The admin's OpenBao token is in no Secret and no container but the Compose initialiser,
    which issues every token; the reader's only in the API."""
    for deployment, found in containers.items():
        for name, container in found.items():
            held = container.held
            if name == "openbao-init":
                assert held == {f for f in TOKEN_SETTINGS.values()}, held
                continue
            assert "openbao_admin_token" not in held, (deployment, name)
            if "openbao_reader_token" in held:
                assert component_of(name) == "api", (deployment, name)


def test_table_lists_every_component(containers: dict[str, dict[str, Container]]) -> None:
    """Every MovingData container of every deployment is a component of the table."""
    for found in containers.values():
        named = {n for n in found if n != "openbao-init"}
        assert {component_of(n) for n in named} >= {"worker", "sink", "api", "dashboard"}
