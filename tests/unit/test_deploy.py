"""deploy/ files can't run here (no Docker engine, no cluster): check them structurally."""

from pathlib import Path

import yaml

from workers.app import STAGES
from workers.settings import Settings

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
SETTINGS_ENV = {f"MOVINGDATA_{name.upper()}" for name in Settings.model_fields}


def test_compose_is_consistent() -> None:
    compose = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    services = compose["services"]
    for name, service in services.items():
        assert "image" in service or "build" in service, name
        for dep in service.get("depends_on", []):
            assert dep in services, f"{name} depends on unknown {dep}"
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("./"):
                assert (DEPLOY / source).exists() or (DEPLOY / f"{source}.example").exists()
            elif not source.startswith("$"):
                assert source in compose["volumes"], f"{name}: undeclared volume {source}"
        for key in service.get("environment", {}):
            if key.startswith("MOVINGDATA_"):
                assert key in SETTINGS_ENV, f"{name}: {key} is not a setting"
    workers = {n: s for n, s in services.items() if s.get("command", [None])[0] == "worker"}
    assert {s["command"][2] for s in workers.values()} == set(STAGES)
    assert (DEPLOY / compose["x-worker"]["build"]["dockerfile"].removeprefix("deploy/")).exists()


def test_kubernetes_manifests_are_consistent() -> None:
    docs = [
        doc
        for path in sorted((DEPLOY / "k8s").glob("*.yaml"))
        for doc in yaml.safe_load_all(path.read_text())
        if doc
    ]
    for doc in docs:
        assert {"apiVersion", "kind", "metadata"} <= set(doc), doc
        assert doc["metadata"]["name"]
    config = next(d for d in docs if d["kind"] == "ConfigMap")
    assert set(config["data"]) <= SETTINGS_ENV
    deployments = [d for d in docs if d["kind"] == "Deployment"]
    stages = set()
    for dep in deployments:
        spec = dep["spec"]
        labels = spec["template"]["metadata"]["labels"]
        assert spec["selector"]["matchLabels"].items() <= labels.items()
        (container,) = spec["template"]["spec"]["containers"]
        assert container["args"][:2] == ["worker", "--agents"]
        stages.add(container["args"][2])
        refs = {next(iter(r.values()))["name"] for r in container["envFrom"]}
        assert "movingdata" in refs
    assert stages == set(STAGES)
