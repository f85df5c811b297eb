"""deploy/ files can't run here (no Docker engine): check them structurally. The Kubernetes
manifests have tests of their own (test_k8s.py)."""

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
