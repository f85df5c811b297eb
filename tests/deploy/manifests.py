"""deploy/ as a cluster or a Compose engine would read it: each Kubernetes overlay rendered by
the pinned kustomize with its Secrets' files filled in, the Compose file interpolated with an
``.env``; then each container's command and environment (image ENV, envFrom, env, secret
references resolved), and which secrets it holds."""

import base64
import os
import re
import shlex
import shutil
import subprocess
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import pytest
import yaml

from tests.deploy.needs import Component
from tests.unit.test_compose import environment, interpolated
from workers.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "deploy" / "k8s"
COMPOSE_DIR = ROOT / "deploy" / "compose"
DOCKERFILE = ROOT / "deploy" / "Dockerfile"
OVERLAYS = ("dev", "prod")
KUSTOMIZE = "sigs.k8s.io/kustomize/kustomize/v5@v5.8.1"
# Each component's Secret and the file an overlay generates it from (its *.example beside it).
SECRET_FILES = {
    "movingdata-workers": "workers-secret.env",
    "movingdata-sink": "sink-secret.env",
    "movingdata-api": "api-secret.env",
    "movingdata-dashboard": "dashboard-secret.env",
}
# Whose each of them is (tests/deploy/needs.py): the sink's pods read the workers' one too.
SECRET_COMPONENTS: dict[str, Component] = {
    "movingdata-workers": "worker",
    "movingdata-sink": "sink",
    "movingdata-api": "api",
    "movingdata-dashboard": "dashboard",
}
GCS_SECRET = "movingdata-gcs"

Doc = dict[str, Any]
# A value for each (overlay, Secret, key) the examples list: what an operator fills in.
Fill = Callable[[str, str, str], str]


def kustomize() -> Path:
    """The pinned kustomize, built once with Go into the project's tools folder."""
    binary = Settings().home.resolve() / "tools" / "bin" / "kustomize"
    version = KUSTOMIZE.rsplit("@", 1)[1]
    if binary.exists():
        shown = subprocess.run([binary, "version"], capture_output=True, text=True).stdout
        if shown.strip() == version:
            return binary
    go = shutil.which("go")
    if go is None:
        pytest.fail(
            f"these tests build kustomize with Go (go install {KUSTOMIZE}), and `go` is not on "
            f"PATH: install Go (https://go.dev/dl/), or put kustomize there yourself: {binary}"
        )
    env = {**os.environ, "GOBIN": str(binary.parent)}
    built = subprocess.run([go, "install", KUSTOMIZE], env=env, capture_output=True, text=True)
    if built.returncode != 0:
        pytest.fail(f"go install {KUSTOMIZE} failed:\n{built.stderr}")
    return binary


def example_env(path: Path) -> dict[str, str]:
    """KEY=VALUE lines of an env file; comments and blank lines skipped."""
    lines = [line for line in path.read_text().splitlines() if line and not line.startswith("#")]
    return dict(line.split("=", 1) for line in lines)


def secret_examples() -> dict[str, dict[str, str]]:
    """Each component Secret's keys, as its committed example lists them."""
    return {name: example_env(K8S / f"{file}.example") for name, file in SECRET_FILES.items()}


def render(binary: Path, workdir: Path, fill: Fill) -> dict[str, list[Doc]]:
    """Each overlay's output, its Secrets' files filled in by ``fill``."""
    tree = workdir / "k8s"
    shutil.rmtree(tree, ignore_errors=True)
    shutil.copytree(K8S, tree, ignore=shutil.ignore_patterns("apiserver"))
    out = {}
    for overlay in OVERLAYS:
        folder = tree / "overlays" / overlay
        for name, keys in secret_examples().items():
            lines = [f"{key}={fill(overlay, name, key)}\n" for key in keys]
            (folder / SECRET_FILES[name]).write_text("".join(lines))
        shutil.copy(K8S / "gcs-service-account.json.example", folder / "gcs-service-account.json")
        built = subprocess.run([binary, "build", folder], capture_output=True, text=True)
        if built.returncode != 0:
            pytest.fail(f"kustomize build overlays/{overlay}:\n{built.stderr}")
        out[overlay] = [doc for doc in yaml.safe_load_all(built.stdout) if doc]
    return out


def named(docs: list[Doc], kind: str) -> dict[str, Doc]:
    return {d["metadata"]["name"]: d for d in docs if d["kind"] == kind}


def only_container(workload: Doc) -> Doc:
    (container,) = workload["spec"]["template"]["spec"]["containers"]
    return cast(Doc, container)


def secret_data(docs: list[Doc]) -> dict[str, dict[str, str]]:
    return {
        name: {k: base64.b64decode(v).decode() for k, v in s.get("data", {}).items()}
        for name, s in named(docs, "Secret").items()
    }


@dataclass(frozen=True)
class Container:
    """One container as its runtime starts it: the argv and the environment its process sees,
    and which variables (and mounted Secrets) hold a secret."""

    name: str
    argv: list[str]
    env: dict[str, str]
    secret_vars: frozenset[str]  # variables whose value comes from a Secret (or is a secret)
    secret_mounts: frozenset[str] = frozenset()  # Secrets mounted as files

    @property
    def held(self) -> set[str]:
        """The secret settings this container holds: each secret variable with a value."""
        return {
            v.removeprefix("MOVINGDATA_").lower()
            for v in self.secret_vars
            if v.startswith("MOVINGDATA_") and self.env.get(v)
        }


def image_env() -> dict[str, str]:
    """The MOVINGDATA_* variables the image's last stage sets (deploy/Dockerfile ENV)."""
    text = DOCKERFILE.read_text().replace("\\\n", " ")
    last = text.rsplit("\nFROM ", 1)[1]
    env: dict[str, str] = {}
    for line in last.splitlines():
        if line.startswith("ENV "):
            env |= dict(word.split("=", 1) for word in shlex.split(line[4:]))
    return {k: v for k, v in env.items() if k.startswith("MOVINGDATA_")}


def image_argv() -> tuple[list[str], list[str]]:
    """The image's ENTRYPOINT and CMD."""
    text = DOCKERFILE.read_text()
    lines = re.findall(r"^(ENTRYPOINT|CMD) (\[.*\])$", text, re.M)
    found = {k: yaml.safe_load(v) for k, v in lines}
    return found["ENTRYPOINT"], found["CMD"]


def k8s_container(docs: list[Doc], workload: Doc) -> Container:
    """The one container of a Deployment or Job, as the kubelet starts it."""
    container = only_container(workload)
    maps = {n: m.get("data", {}) for n, m in named(docs, "ConfigMap").items()}
    secrets = secret_data(docs)
    env, secret_vars = dict(image_env()), set()
    for source in container.get("envFrom", []):
        if "configMapRef" in source:
            env |= maps[source["configMapRef"]["name"]]
        else:
            data = secrets[source["secretRef"]["name"]]
            env |= data
            secret_vars |= set(data)
    for var in container.get("env", []):
        if "value" in var:
            env[var["name"]] = var["value"]
            secret_vars.discard(var["name"])
        elif "secretKeyRef" in var["valueFrom"]:
            ref = var["valueFrom"]["secretKeyRef"]
            env[var["name"]] = secrets[ref["name"]][ref["key"]]
            secret_vars.add(var["name"])
        else:
            ref = var["valueFrom"]["configMapKeyRef"]
            env[var["name"]] = maps[ref["name"]][ref["key"]]
            secret_vars.discard(var["name"])
    entrypoint, cmd = image_argv()
    argv = container.get("command", entrypoint) + container.get(
        "args", [] if "command" in container else cmd
    )
    volumes = workload["spec"]["template"]["spec"].get("volumes", [])
    mounted = {m["name"] for m in container.get("volumeMounts", [])}
    mounts = {v["secret"]["secretName"] for v in volumes if "secret" in v and v["name"] in mounted}
    return Container(
        workload["metadata"]["name"], argv, env, frozenset(secret_vars), frozenset(mounts)
    )


def k8s_containers(docs: list[Doc]) -> dict[str, Container]:
    """Every Deployment's and Job's container, by the workload's name."""
    return {
        doc["metadata"]["name"]: k8s_container(docs, doc)
        for doc in docs
        if doc["kind"] in ("Deployment", "Job")
    }


def compose_containers(
    raw: Mapping[str, Any], dotenv: Mapping[str, str], is_secret: Callable[[str], bool]
) -> dict[str, Container]:
    """Every service of the MovingData image in a Compose file interpolated with ``dotenv``,
    as the engine starts it (image ENV, then env_file, then environment)."""
    compose = interpolated(raw, dotenv)
    entrypoint, cmd = image_argv()
    out = {}
    for name, service in compose["services"].items():
        if not str(service.get("image", "")).startswith("movingdata:"):
            continue
        env = dict(image_env())
        files = service.get("env_file") or []
        for file in [files] if isinstance(files, str) else files:
            path = file if isinstance(file, str) else file["path"]
            env |= example_env(COMPOSE_DIR / path)
        env |= environment(service)
        argv = service.get("entrypoint", entrypoint) + service.get(
            "command", [] if "entrypoint" in service else cmd
        )
        secret_vars = frozenset(k for k in env if is_secret(k))
        out[name] = Container(name, argv, env, secret_vars)
    return out


def compose_mounts(service: Mapping[str, Any]) -> dict[str, Path]:
    """Files of deploy/compose/ a service mounts, by their path in the container."""
    mounts = {}
    for volume in service.get("volumes", []):
        source, target = volume.split(":")[:2]
        if source.startswith("."):
            mounts[target] = (COMPOSE_DIR / source).resolve()
    return mounts
