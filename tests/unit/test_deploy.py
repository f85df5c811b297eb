"""deploy/ files can't run here (no Docker engine, no cluster): check them structurally.
The compose file and the image have tests of their own (test_compose.py, test_image.py)."""

from pathlib import Path

import yaml

from workers.app import STAGES
from workers.settings import Settings

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
SETTINGS_ENV = {f"MOVINGDATA_{name.upper()}" for name in Settings.model_fields}


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
