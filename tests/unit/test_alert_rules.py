"""The alert rules (deploy/prometheus/alerts.yaml) are well formed and name only metrics the
workers export, with the labels they carry. ``make test`` also runs ``promtool check rules``
and their promtool unit tests (deploy/prometheus/alerts_test.yaml)."""

import re
from pathlib import Path

import yaml
from prometheus_client import REGISTRY

import workers.metrics  # noqa: F401  (registers the metrics)
from workers.core.versions import STATES

RULES = Path(__file__).resolve().parents[2] / "deploy" / "prometheus" / "alerts.yaml"


def exported() -> dict[str, set[str]]:
    """Every registered sample name, with the labels it carries."""
    names: dict[str, set[str]] = {}
    for family in REGISTRY.collect():
        for sample in family.samples:
            names.setdefault(sample.name, set()).update(sample.labels)
        names.setdefault(family.name, set())
        if family.type == "counter":  # a labelled counter has no sample before its first use
            names.setdefault(f"{family.name}_total", set())
    return names


def test_every_rule_names_an_exported_metric() -> None:
    rules = [r for g in yaml.safe_load(RULES.read_text())["groups"] for r in g["rules"]]
    assert {r["alert"] for r in rules} >= {
        "MovingDataVersionsLost",
        "MovingDataVersionsDegraded",
        "MovingDataScrubBehind",
        "MovingDataScrubNotRunning",
        "MovingDataAuditCheckpointRefused",
        "MovingDataAuditCheckpointFailing",
        "MovingDataLag",
        "MovingDataDeadLetters",
    }
    metrics = exported()
    for rule in rules:
        assert rule["labels"]["severity"] in ("warning", "critical")
        named = set(re.findall(r"\b(movingdata_[a-z_]+)", rule["expr"]))
        assert named, rule["alert"]
        for name in named:
            assert name in metrics, (rule["alert"], name)
    states = re.findall(r'state="([a-z]+)"', RULES.read_text())
    assert set(states) <= set(STATES)
