"""deploy/k8s/ rendered by kustomize (both overlays), every manifest checked offline against
the Kubernetes schemas and KEDA's CRDs, then what it says checked against the code: stages,
consumer groups, topics, ports, probe paths, settings, commands. No cluster is needed."""

import asyncio
import base64
import json
import os
import re
import subprocess
import tomllib
import types
from collections.abc import Callable
from pathlib import Path
from typing import Any, cast
from urllib.parse import urlsplit

import aiohttp
import jsonschema
import kubernetes_validate
import pytest
import typer.main
import yaml
from streamlit.web.server.starlette.starlette_routes import ROUTE_HEALTH
from typer.testing import CliRunner

import topics
from tests.deploy import manifests
from tests.deploy.needs import NEEDS, OPERATORS_ONLY, component_of, needed
from workers import cli, metrics
from workers.api.operations import router as operations
from workers.app import STAGES, build_app, parse_stages
from workers.deps import Deps
from workers.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "deploy" / "k8s"
OVERLAYS = ("dev", "prod")
KUSTOMIZE = "sigs.k8s.io/kustomize/kustomize/v5@v5.8.1"
K8S_VERSION = "1.33.0"  # the oldest Kubernetes the manifests are checked against
KEDA_CRDS = ("keda.sh_scaledobjects.yaml", "keda.sh_triggerauthentications.yaml")
SETTINGS_ENV = {f"MOVINGDATA_{name.upper()}" for name in Settings.model_fields}
# Settings another change of issue 15 is adding (Azure SAS, GCS service account); drop this
# once they are in workers/settings.py.
PENDING = {"MOVINGDATA_AZURE_SAS_TOKEN", "MOVINGDATA_GCS_CREDENTIALS_FILE"}
# What only the Secret may hold: every SecretStr setting, and the database URL (credentials).
SECRET_ENV = {
    f"MOVINGDATA_{name.upper()}"
    for name, field in Settings.model_fields.items()
    if "SecretStr" in str(field.annotation)
} | {"MOVINGDATA_MONGO_URI", "MOVINGDATA_AZURE_SAS_TOKEN"}
# KEDA's kafka scaler names for the workers' SASL mechanisms (workers/broker.py).
KEDA_SASL = {"PLAIN": "plaintext", "SCRAM-SHA-256": "scram_sha256", "SCRAM-SHA-512": "scram_sha512"}

Doc = dict[str, Any]


@pytest.fixture(scope="session")
def kustomize() -> Path:
    return manifests.kustomize()


def example_env(path: Path) -> dict[str, str]:
    lines = [line for line in path.read_text().splitlines() if line and not line.startswith("#")]
    return dict(line.split("=", 1) for line in lines)


def sentinel(key: str) -> str:
    return f"test-{key.lower()}"


@pytest.fixture(scope="session")
def rendered(kustomize: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[Doc]]:
    """Each overlay's output, its Secrets filled in from the committed examples."""
    work = tmp_path_factory.mktemp("deploy")
    return manifests.render(kustomize, work, lambda _overlay, _secret, key: sentinel(key))


@pytest.fixture(params=OVERLAYS)
def overlay(request: pytest.FixtureRequest) -> str:
    return cast(str, request.param)


@pytest.fixture
def docs(rendered: dict[str, list[Doc]], overlay: str) -> list[Doc]:
    return rendered[overlay]


def named(docs: list[Doc], kind: str) -> dict[str, Doc]:
    return {d["metadata"]["name"]: d for d in docs if d["kind"] == kind}


def worker(docs: list[Doc], stage: str) -> Doc:
    return named(docs, "Deployment")[f"movingdata-{stage}"]


def only_container(deployment: Doc) -> Doc:
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    return cast(Doc, container)


def container_env(docs: list[Doc], container: Doc) -> dict[str, str]:
    """The environment the container's process sees (envFrom, then env)."""
    maps = named(docs, "ConfigMap")
    secrets = {
        name: {k: base64.b64decode(v).decode() for k, v in s.get("data", {}).items()}
        for name, s in named(docs, "Secret").items()
    }
    env: dict[str, str] = {}
    for source in container.get("envFrom", []):
        if "configMapRef" in source:
            env |= maps[source["configMapRef"]["name"]]["data"]
        else:
            env |= secrets[source["secretRef"]["name"]]
    for var in container.get("env", []):
        if "value" in var:
            env[var["name"]] = var["value"]
        else:
            ref = var["valueFrom"]["secretKeyRef"]
            env[var["name"]] = secrets[ref["name"]][ref["key"]]
    return env


def config(docs: list[Doc]) -> dict[str, str]:
    """The settings ConfigMap every worker reads."""
    (source,) = [
        s for s in only_container(worker(docs, "ingest"))["envFrom"] if "configMapRef" in s
    ]
    return cast(dict[str, str], named(docs, "ConfigMap")[source["configMapRef"]["name"]]["data"])


def port_number(container: Doc, port: int | str) -> int:
    if isinstance(port, int):
        return port
    return next(p["containerPort"] for p in container["ports"] if p["name"] == port)


Environ = Callable[[dict[str, str]], Settings]


@pytest.fixture
def environ(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Environ:
    """Give this test a process's environment (the only MOVINGDATA_* variables), home in
    tmp_path; returns the settings that process reads."""

    def use(env: dict[str, str]) -> Settings:
        for key in [k for k in os.environ if k.startswith("MOVINGDATA_")]:
            monkeypatch.delenv(key)
        for key, value in {**env, "MOVINGDATA_HOME": str(tmp_path)}.items():
            monkeypatch.setenv(key, value)
        return Settings()

    return use


def closed(schema: Any) -> Any:
    """A CRD schema that refuses unknown fields (the API server would drop them silently)."""
    if isinstance(schema, list):
        return [closed(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    schema = {k: closed(v) for k, v in schema.items()}
    if "properties" in schema and not schema.get("x-kubernetes-preserve-unknown-fields"):
        schema.setdefault("additionalProperties", False)
    return schema


def keda_schemas() -> dict[str, Any]:
    schemas = {}
    for name in KEDA_CRDS:
        crd = yaml.safe_load((K8S / "schemas" / name).read_text())
        (version,) = crd["spec"]["versions"]
        schemas[crd["spec"]["names"]["kind"]] = closed(version["schema"]["openAPIV3Schema"])
    return schemas


def test_manifests_are_valid(docs: list[Doc]) -> None:
    keda = keda_schemas()
    for doc in docs:
        what = f"{doc['kind']}/{doc['metadata']['name']}"
        try:
            if doc["apiVersion"] == "keda.sh/v1alpha1":
                jsonschema.validate(doc, keda[doc["kind"]])
            else:
                kubernetes_validate.validate(doc, K8S_VERSION, strict=True)
        except jsonschema.ValidationError as exc:
            pytest.fail(f"{what}: {exc.message} at {list(exc.absolute_path)}", pytrace=False)


def test_namespace_comes_first_and_holds_everything(docs: list[Doc]) -> None:
    namespace = docs[0]
    assert namespace["kind"] == "Namespace", "kubectl apply -k must create the namespace first"
    for doc in docs[1:]:
        assert doc["metadata"].get("namespace") == namespace["metadata"]["name"], doc["kind"]
    assert not list(K8S.glob("*.yaml")), "the flat manifests are replaced by base/ + overlays/"


def test_every_stage_has_deployment_budget_and_scaler(docs: list[Doc]) -> None:
    deployments = named(docs, "Deployment")
    budgets = named(docs, "PodDisruptionBudget")
    scalers = named(docs, "ScaledObject")
    command = typer.main.get_command(cli.app).commands["worker"]  # type: ignore[attr-defined]
    pods = {n: d["spec"]["template"]["metadata"]["labels"] for n, d in deployments.items()}
    for stage in STAGES:
        name = f"movingdata-{stage}"
        container = only_container(deployments[name])
        assert container["args"][0] == "worker"
        agents = command.make_context("worker", container["args"][1:]).params["agents"]
        assert parse_stages(agents) == [stage]
        selector = deployments[name]["spec"]["selector"]["matchLabels"]
        assert selector.items() <= pods[name].items()
        budget = budgets[name]["spec"]["selector"]["matchLabels"]
        assert [n for n, labels in pods.items() if budget.items() <= labels.items()] == [name]
        assert scalers[name]["spec"]["scaleTargetRef"] == {"name": name}
    assert set(scalers) == {f"movingdata-{s}" for s in STAGES}


def test_no_scaled_deployment_sets_replicas(docs: list[Doc]) -> None:
    deployments = named(docs, "Deployment")
    scaled = {s["spec"]["scaleTargetRef"]["name"] for s in named(docs, "ScaledObject").values()}
    for name, deployment in deployments.items():
        assert ("replicas" in deployment["spec"]) != (name in scaled), name


def test_scalers_follow_each_stage_consumer_group(
    docs: list[Doc], overlay: str, environ: Environ
) -> None:
    """Group and topics as Faust has them (workers.app.build_app); at most one replica per
    partition; KEDA reaches the broker with the workers' own servers and SASL settings."""
    scalers = named(docs, "ScaledObject")
    for stage in STAGES:
        env = container_env(docs, only_container(worker(docs, stage)))
        settings = environ(env)
        app = build_app(settings, [stage], no_deps())
        inputs = sorted({t for agent in app.agents.values() for t in agent.channel.topics})
        spec = scalers[f"movingdata-{stage}"]["spec"]
        assert spec["minReplicaCount"] >= 1
        assert spec["maxReplicaCount"] == settings.topic_partitions
        (trigger,) = spec["triggers"]
        meta = trigger["metadata"]
        assert trigger["type"] == "kafka"
        assert meta["consumerGroup"] == app.conf.id  # Faust's group id is the app id
        assert meta.get("topic") == (inputs[0] if len(inputs) == 1 else None), stage
        assert meta["allowIdleConsumers"] == "false"
        assert int(meta["lagThreshold"]) > 0
        assert env[meta["bootstrapServersFromEnv"]] == settings.kafka_bootstrap
        assert trigger["authenticationRef"] == {"name": "movingdata-kafka"}
    if overlay == "dev":
        assert {s["spec"]["minReplicaCount"] for s in scalers.values()} == {1}

    auth = named(docs, "TriggerAuthentication")["movingdata-kafka"]["spec"]
    maps, secrets = named(docs, "ConfigMap"), named(docs, "Secret")
    params = {r["parameter"]: maps[r["name"]]["data"][r["key"]] for r in auth["configMapTargetRef"]}
    settings = environ(config(docs))
    protocol = settings.kafka_security_protocol
    sasl = KEDA_SASL[settings.kafka_sasl_mechanism] if protocol.startswith("SASL") else "none"
    assert params == {
        "sasl": sasl,
        "tls": "enable" if protocol in ("SSL", "SASL_SSL") else "disable",
    }
    refs = {r["parameter"]: (r["name"], r["key"]) for r in auth["secretTargetRef"]}
    assert refs == {
        "username": ("movingdata-workers", "MOVINGDATA_KAFKA_SASL_USERNAME"),
        "password": ("movingdata-workers", "MOVINGDATA_KAFKA_SASL_PASSWORD"),
    }
    assert {key for _, key in refs.values()} <= set(secrets["movingdata-workers"]["data"])


def test_worker_probes_are_the_endpoints_it_serves(docs: list[Doc], environ: Environ) -> None:
    for stage in STAGES:
        deployment = worker(docs, stage)
        container = only_container(deployment)
        probes = {
            k: container[f"{k}Probe"]["httpGet"] for k in ("startup", "liveness", "readiness")
        }
        assert {k: p["path"] for k, p in probes.items()} == {
            "startup": "/healthz",
            "liveness": "/healthz",
            "readiness": "/readyz",
        }
        ports = {port_number(container, p["port"]) for p in probes.values()}
        annotations = deployment["spec"]["template"]["metadata"]["annotations"]
        assert annotations["prometheus.io/path"] == "/metrics"
        ports.add(int(annotations["prometheus.io/port"]))
        assert ports == {worker_endpoint(environ(container_env(docs, container)))[1]}


def no_deps() -> Deps:
    """What build_app needs of Deps to build an app that is never started: no stores, and a
    close it registers for the app's stop."""

    async def close() -> None:
        pass

    return cast(Deps, types.SimpleNamespace(stores={}, close=close))


def worker_endpoint(settings: Settings) -> tuple[str, int]:
    """Where a worker built with these settings serves /healthz, /readyz and /metrics."""
    app = build_app(settings, ["ingest"], no_deps())
    seen: list[tuple[str, int]] = []

    async def serve(host: str, port: int, *_: Any) -> None:
        seen.append((host, port))

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(metrics, "serve", serve)
        # Only the `endpoints` task build_app registers (the heartbeat's runs until stopped).
        (endpoints,) = [task for task in app._app_tasks if task.__name__ == "endpoints"]
        asyncio.run(endpoints())
    (endpoint,) = seen
    return endpoint


async def test_workers_answer_on_the_probe_paths(rendered: dict[str, list[Doc]]) -> None:
    paths = {
        probe["httpGet"]["path"]
        for docs in rendered.values()
        for stage in STAGES
        for key, probe in only_container(worker(docs, stage)).items()
        if key.endswith("Probe")
    } | {"/metrics"}

    async def ready() -> dict[str, object]:
        return {"ready": True, "checks": {"broker": "ok"}}  # health.readiness's shape

    runner = await metrics.serve("127.0.0.1", 0, ready, dict)
    port = runner.addresses[0][1]
    try:
        async with aiohttp.ClientSession() as http:
            for path in sorted(paths):
                async with http.get(f"http://127.0.0.1:{port}{path}") as response:
                    assert response.status == 200, path
    finally:
        await runner.cleanup()


def test_worker_endpoints_are_reachable_from_outside_the_pod(
    rendered: dict[str, list[Doc]], environ: Environ
) -> None:
    docs = rendered["prod"]
    host, _ = worker_endpoint(environ(container_env(docs, only_container(worker(docs, "ingest")))))
    assert host in ("0.0.0.0", "::")


def test_api_probes_and_port(
    docs: list[Doc], environ: Environ, monkeypatch: pytest.MonkeyPatch
) -> None:
    deployment = named(docs, "Deployment")["movingdata-api"]
    container = only_container(deployment)
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    served = {route.path for route in operations.routes}  # type: ignore[attr-defined]
    assert {"/healthz", "/readyz", "/metrics"} <= served
    seen: dict[str, Any] = {}
    # The application is built as the container builds it; its lifespan (what opens the
    # services) runs against the local stack in tests/deploy/test_component_startup.py.
    monkeypatch.setattr("uvicorn.run", lambda _app, **options: seen.update(options))
    environ(container_env(docs, container))
    result = CliRunner().invoke(cli.app, container["args"])
    assert result.exit_code == 0, result.output
    assert seen["host"] == "0.0.0.0"
    probe_port = port_number(container, container["readinessProbe"]["httpGet"]["port"])
    assert seen["port"] == probe_port == port_number(container, "http")
    service = named(docs, "Service")["movingdata-api"]["spec"]
    assert (
        service["selector"].items() <= deployment["spec"]["template"]["metadata"]["labels"].items()
    )


def dashboard_argv(docs: list[Doc], environ: Environ, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The Streamlit command `movingdata dashboard` runs in the dashboard's container."""
    container = only_container(named(docs, "Deployment")["movingdata-dashboard"])
    environ(container_env(docs, container))
    seen: list[list[str]] = []
    monkeypatch.setattr("subprocess.call", lambda argv: seen.append(argv) or 0)
    result = CliRunner().invoke(cli.app, container["args"])
    assert result.exit_code == 0, result.output
    (argv,) = seen
    return argv


def test_dashboard_probes_and_port(
    docs: list[Doc], environ: Environ, monkeypatch: pytest.MonkeyPatch
) -> None:
    container = only_container(named(docs, "Deployment")["movingdata-dashboard"])
    for kind in ("liveness", "readiness"):
        assert container[f"{kind}Probe"]["httpGet"] == {"path": f"/{ROUTE_HEALTH}", "port": "http"}
    argv = dashboard_argv(docs, environ, monkeypatch)
    assert int(argv[argv.index("--server.port") + 1]) == port_number(container, "http")


def test_dashboard_is_reachable_from_outside_the_pod(
    rendered: dict[str, list[Doc]], environ: Environ, monkeypatch: pytest.MonkeyPatch
) -> None:
    argv = dashboard_argv(rendered["prod"], environ, monkeypatch)
    assert argv[argv.index("--server.address") + 1] in ("0.0.0.0", "::")


def test_topics_job_creates_topics_as_configured(
    docs: list[Doc], overlay: str, environ: Environ, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The Job's own script, run with its environment: replication 3 / min.insync 2 in prod."""
    job = named(docs, "Job")["movingdata-topics"]["spec"]["template"]["spec"]
    (container,) = job["containers"]
    settings = environ(container_env(docs, container))
    calls = []

    async def create(_options: Any, *args: Any) -> list[str]:
        calls.append(args)
        return []

    monkeypatch.setattr(topics, "create_topics", create)
    python, flag, script = container["command"]
    assert (python, flag) == ("python", "-c")
    exec(compile(script, "topics-job", "exec"), {})
    expected = {"dev": (1, 1), "prod": (3, 2)}[overlay]
    assert calls == [(settings.topic_prefix, settings.topic_partitions, *expected)]


def test_pods_are_locked_down_and_sized(docs: list[Doc], overlay: str) -> None:
    version = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    pods = [d["spec"]["template"]["spec"] for d in docs if d["kind"] in ("Deployment", "Job")]
    for pod in pods:
        assert pod["automountServiceAccountToken"] is False
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
        for container in pod["containers"]:
            security = container["securityContext"]
            assert security["readOnlyRootFilesystem"] is True
            assert security["allowPrivilegeEscalation"] is False
            assert security["capabilities"] == {"drop": ["ALL"]}
            for bound in ("requests", "limits"):
                assert {"cpu", "memory"} <= set(container["resources"][bound]), bound
            image, tag = container["image"].rsplit(":", 1)
            assert tag == version
            if overlay == "prod":
                assert "." in image.split("/")[0], "prod pulls from a registry"
    for stage in STAGES:
        envs = only_container(worker(docs, stage))["envFrom"]
        assert {next(iter(e)) for e in envs} == {"configMapRef", "secretRef"}


def test_prod_workers_get_more_than_dev(rendered: dict[str, list[Doc]]) -> None:
    def memory(docs: list[Doc]) -> int:
        limit = only_container(worker(docs, "encrypt"))["resources"]["limits"]["memory"]
        return int(limit[:-2]) * {"Mi": 2**20, "Gi": 2**30}[limit[-2:]]

    assert memory(rendered["prod"]) > memory(rendered["dev"])


def allowed_ports(policy: Doc, direction: str) -> set[int]:
    return {p["port"] for rule in policy["spec"].get(direction, []) for p in rule.get("ports", [])}


def url_port(url: str) -> int:
    parts = urlsplit(url)
    return parts.port or {"https": 443, "http": 80}[parts.scheme]


def test_network_allows_only_the_dependencies(docs: list[Doc], environ: Environ) -> None:
    policies = named(docs, "NetworkPolicy")
    deny = policies["default-deny"]["spec"]
    assert deny == {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}
    egress = {n: p for n, p in policies.items() if p["spec"].get("egress")}
    assert set(egress) == {
        f"allow-egress-{d}" for d in ("dns", "broker", "database", "kms", "stores")
    }
    assert "192.0.2." not in json.dumps(list(egress.values())), "an overlay left a placeholder"
    assert {53} == allowed_ports(egress["allow-egress-dns"], "egress")
    settings = environ(config(docs))
    brokers = {int(s.rsplit(":", 1)[1]) for s in settings.kafka_bootstrap.split(",")}
    assert brokers <= allowed_ports(egress["allow-egress-broker"], "egress")
    assert url_port(settings.openbao_addr) in allowed_ports(egress["allow-egress-kms"], "egress")
    stores = {
        url_port(u) for u in (settings.s3_endpoint, settings.azure_endpoint, settings.gcs_endpoint)
    }
    assert stores <= allowed_ports(egress["allow-egress-stores"], "egress")
    assert allowed_ports(egress["allow-egress-database"], "egress")


def test_network_lets_in_only_clients_and_monitoring(docs: list[Doc]) -> None:
    policies = named(docs, "NetworkPolicy")
    deployments = named(docs, "Deployment")
    ingress = {n: p["spec"] for n, p in policies.items() if p["spec"].get("ingress")}
    assert set(ingress) == {"allow-ingress-api", "allow-ingress-dashboard", "allow-ingress-metrics"}

    def selected(spec: Doc) -> set[str]:
        wanted = spec["podSelector"]["matchLabels"].items()
        return {
            n
            for n, d in deployments.items()
            if wanted <= d["spec"]["template"]["metadata"]["labels"].items()
        }

    def ports(name: str, port: str) -> set[int]:
        return {port_number(only_container(deployments[name]), port)}

    assert selected(ingress["allow-ingress-api"]) == {"movingdata-api"}
    assert allowed_ports(policies["allow-ingress-api"], "ingress") == ports(
        "movingdata-api", "http"
    )
    assert selected(ingress["allow-ingress-dashboard"]) == {"movingdata-dashboard"}
    dashboard = allowed_ports(policies["allow-ingress-dashboard"], "ingress")
    assert dashboard == ports("movingdata-dashboard", "http")
    metrics_in = ingress["allow-ingress-metrics"]
    assert selected(metrics_in) == {f"movingdata-{s}" for s in STAGES}
    assert allowed_ports(policies["allow-ingress-metrics"], "ingress") == ports(
        "movingdata-ingest", "metrics"
    )
    (rule,) = metrics_in["ingress"]
    assert rule["from"] == [
        {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}}
    ]


def test_every_movingdata_name_is_a_setting() -> None:
    files = [p for p in K8S.rglob("*") if p.is_file() and "schemas" not in p.parts]
    for path in files:
        for name in set(re.findall(r"MOVINGDATA_[A-Z0-9_]+", path.read_text())):
            assert name in SETTINGS_ENV | PENDING, f"{path.relative_to(ROOT)}: {name}"


def test_no_secret_value_is_committed() -> None:
    committed = ["ls-files", "--cached", "--others", "--exclude-standard", "deploy/k8s"]
    listed = subprocess.run(
        ["git", "-C", ROOT, *committed], capture_output=True, text=True, check=True
    ).stdout.split()
    assert listed, "deploy/k8s is not in git"
    for name in listed:
        path = ROOT / name
        if path.suffix == ".yaml":
            kinds = {d.get("kind") for d in yaml.safe_load_all(path.read_text()) if d}
            assert "Secret" not in kinds, f"{name}: a Secret is generated, never committed"
    # One Secret per component, its example naming exactly what that component needs (with a
    # SASL broker and the Azure account key: the rest is an alternative the comments name).
    for name, secrets in manifests.secret_examples().items():
        assert secrets and set(secrets.values()) == {""}, f"{name}'s example holds values"
        component = manifests.SECRET_COMPONENTS[name]
        wanted = NEEDS[component] - {"azure_sas_token"}
        if component == "sink":  # the sink reads movingdata-workers too: only its own here
            wanted -= NEEDS["worker"]
        assert {k.removeprefix("MOVINGDATA_").lower() for k in secrets} == wanted, name
        assert not OPERATORS_ONLY & {k.removeprefix("MOVINGDATA_").lower() for k in secrets}
    account = json.loads((K8S / "gcs-service-account.json.example").read_text())
    assert not account["private_key"] and not account["private_key_id"]
    filled = [
        f"deploy/k8s/overlays/{o}/{f}"
        for o in OVERLAYS
        for f in (*manifests.SECRET_FILES.values(), "gcs-service-account.json")
    ]
    ignored = subprocess.run(
        ["git", "-C", ROOT, "check-ignore", *filled], capture_output=True, text=True
    )
    assert set(ignored.stdout.split()) == set(filled), "git must ignore the filled-in credentials"


def test_secrets_stay_in_their_secrets(docs: list[Doc]) -> None:
    """Each component's Secret holds its example's keys, and credentials are nowhere else."""
    examples = manifests.secret_examples()
    data = manifests.secret_data(docs)
    for name, keys in examples.items():
        assert data[name] == {k: sentinel(k) for k in keys}, name
    assert set(data) == {*examples, manifests.GCS_SECRET}
    for config_map in named(docs, "ConfigMap").values():
        assert not SECRET_ENV & set(config_map["data"]), config_map["metadata"]["name"]
    for doc in docs:
        if doc["kind"] in ("Deployment", "Job"):
            for container in doc["spec"]["template"]["spec"]["containers"]:
                literal = {v["name"] for v in container.get("env", []) if "value" in v}
                assert not SECRET_ENV & literal, doc["metadata"]["name"]


def test_each_component_holds_what_it_needs(docs: list[Doc], environ: Environ) -> None:
    """Every pod holds the secrets its component needs (tests/deploy/needs.py) and no other;
    only those that open stores mount the GCS key. The start-up test checks the table against
    what each component really reads."""
    for name, container in manifests.k8s_containers(docs).items():
        component = component_of(name)
        settings = environ(container.env).model_copy(
            update={"kafka_security_protocol": "SASL_SSL"}  # every example line filled in
        )
        assert container.held == needed(component, settings), name
        stores = component in ("worker", "sink", "api")
        assert (manifests.GCS_SECRET in container.secret_mounts) == stores, name


def test_only_the_sink_can_sign_checkpoints(docs: list[Doc]) -> None:
    """The sink's OpenBao token (the only one that signs) reaches the sink's pods and no other:
    the shared Secret never holds it, and it comes from a Secret of its own."""
    sink = sentinel("MOVINGDATA_OPENBAO_SINK_TOKEN")
    holders = {
        doc["metadata"]["name"]
        for doc in docs
        if doc["kind"] in ("Deployment", "Job")
        for container in doc["spec"]["template"]["spec"]["containers"]
        if container_env(docs, container).get("MOVINGDATA_OPENBAO_SINK_TOKEN") == sink
    }
    assert holders == {"movingdata-sink"}
    secrets = manifests.secret_data(docs)
    assert [n for n, data in secrets.items() if "MOVINGDATA_OPENBAO_SINK_TOKEN" in data] == [
        "movingdata-sink"
    ]
