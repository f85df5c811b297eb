"""The Grafana dashboard (deploy/grafana/) and the Compose deployment's Prometheus
(deploy/prometheus/prometheus.yml): every query names metrics and labels the project registers,
every project metric is shown, and Grafana and Prometheus are wired as compose.yaml mounts them.

The metric names are read out of each PromQL expression (strings, label matchers, ranges,
grouping clauses and Grafana's variables set aside; what is called is a function), so a
renamed metric or label fails here, not on an operator's empty panel."""

import json
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client import REGISTRY
from prometheus_client.metrics import MetricWrapperBase

import workers.api.app
import workers.app  # noqa: F401  (registers every worker module's metrics)

ROOT = Path(__file__).resolve().parents[2]
GRAFANA = ROOT / "deploy/grafana"
DASHBOARD = GRAFANA / "dashboards/movingdata.json"
PROMETHEUS = ROOT / "deploy/prometheus/prometheus.yml"
COMPOSE = ROOT / "deploy/compose/compose.yaml"

# Prometheus's own series a panel may use; labels every scraped series carries.
BUILTIN = {"up": set(), "ALERTS": {"alertname", "alertstate", "severity"}}
TARGET_LABELS = {"job", "instance", "service"}

STRING = re.compile(r'"(?:\\.|[^"\\])*"|\'(?:\\.|[^\'\\])*\'|`[^`]*`')
VARIABLE = re.compile(r"\$\{?\w+\}?")  # Grafana's: $__rate_interval, ${datasource}
GROUPING = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)")
IDENTIFIER = re.compile(r"(?<![\w.:])[A-Za-z_:][\w:]*")
KEYWORDS = {"and", "or", "unless", "bool", "offset", "inf", "nan", "atan2"}
SELECTOR = re.compile(r"([A-Za-z_:][\w:]*)\s*\{([^}]*)\}")
MATCHER = re.compile(r"([A-Za-z_]\w*)\s*(?:=~|!~|!=|=)")


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression selects."""
    text = STRING.sub('""', expr)
    text = VARIABLE.sub(" ", text)
    text = re.sub(r"\{[^}]*\}", " ", text)  # label matchers
    text = re.sub(r"\[[^\]]*\]", " ", text)  # ranges, subqueries
    text = GROUPING.sub(" ", text)
    names = set()
    for match in IDENTIFIER.finditer(text):
        called = text[match.end() :].lstrip().startswith("(")  # a function or an aggregation
        if not called and match[0] not in KEYWORDS:
            names.add(match[0])
    return names


def matched_labels(expr: str) -> Iterator[tuple[str, str]]:
    """(metric, label) for every label matcher written on a metric's selector."""
    for selector in SELECTOR.finditer(STRING.sub(lambda m: m[0].replace("}", " "), expr)):
        for label in MATCHER.findall(selector[2]):
            yield selector[1], label


def registered() -> dict[str, set[str]]:
    """Every series name the project's metrics expose (a counter's ``_total``, a histogram's
    ``_bucket``, ``_count`` and ``_sum``), with the metric's labels."""
    names: dict[str, set[str]] = {}
    for collector in list(REGISTRY._collector_to_names):  # the registry's own index
        if not isinstance(collector, MetricWrapperBase):  # the process and GC collectors
            continue
        labels = set(collector._labelnames)
        for family in collector.describe():
            if not family.name.startswith("movingdata_"):
                continue
            suffixes = {"counter": ["_total"], "histogram": ["_bucket", "_count", "_sum"]}
            for suffix in suffixes.get(family.type, [""]):
                names[family.name + suffix] = labels | ({"le"} if suffix == "_bucket" else set())
    return names


def expressions(dashboard: dict[str, Any]) -> Iterator[tuple[str, str]]:
    """(panel title, expression) for every query of every panel."""
    for panel in dashboard["panels"]:
        for target in panel.get("targets", []):
            yield panel["title"], target["expr"]


def problems(dashboard: dict[str, Any], known: dict[str, set[str]]) -> list[str]:
    found = []
    for title, expr in expressions(dashboard):
        names = metric_names(expr)
        if not names:
            found.append(f"{title}: no metric in {expr!r}")
        for name in sorted(names - known.keys() - BUILTIN.keys()):
            found.append(f"{title}: {name} is not a metric of the project")
        for name, label in matched_labels(expr):
            labels = known.get(name, BUILTIN.get(name, set())) | TARGET_LABELS
            if label not in labels:
                found.append(f"{title}: {name} has no label {label!r}")
    return found


def load_dashboard() -> dict[str, Any]:
    return dict(json.loads(DASHBOARD.read_text()))


def test_the_parser_reads_promql() -> None:
    expr = (
        'histogram_quantile(0.95, sum by (stage, le) (rate(a_seconds_bucket{stage="x"}'
        "[$__rate_interval]))) / ignoring(le) b_total offset 5m > 1e3 and on() c"
        ' unless sum(rate(d_total{error=~"e_total|f"}[5m:1m])) > bool 0'
    )
    assert metric_names(expr) == {"a_seconds_bucket", "b_total", "c", "d_total"}
    assert list(matched_labels(expr)) == [("a_seconds_bucket", "stage"), ("d_total", "error")]
    assert metric_names("time() - max(g{task='checkpoint'})") == {"g"}


def test_every_query_names_the_projects_metrics_and_labels() -> None:
    assert problems(load_dashboard(), registered()) == []


@pytest.mark.parametrize(
    ("old", "new", "problem"),
    [
        ("movingdata_consumer_lag)", "movingdata_lag)", "movingdata_lag is not a metric"),
        ("movingdata_stage_seconds_bucket", "movingdata_stage_secs_bucket", "stage_secs_bucket"),
        ('{state="lost"}', '{status="lost"}', "movingdata_versions has no label 'status'"),
    ],
)
def test_a_renamed_metric_or_label_fails(old: str, new: str, problem: str) -> None:
    text = DASHBOARD.read_text()
    assert old.replace('"', '\\"') in text
    renamed = json.loads(text.replace(old.replace('"', '\\"'), new.replace('"', '\\"')))
    assert any(problem in p for p in problems(renamed, registered()))


def promtool() -> str:
    """promtool: installed, or the one ``make rules`` (run before pytest by ``make test``) keeps."""
    found = shutil.which("promtool") or ROOT / ".movingdata/tools/promtool"
    if not Path(found).exists():
        pytest.skip("no promtool: `make rules` fetches it")
    return str(found)


def test_every_query_is_promql_that_prometheus_parses(tmp_path: Path) -> None:
    """Each query as a recording rule, Grafana's interval variables given values, through
    ``promtool check rules``: Prometheus's own parser."""
    given = {"$__rate_interval": "1m", "$__range": "6h", "$__interval": "15s"}
    rules = []
    for number, (_, expr) in enumerate(expressions(load_dashboard())):
        for variable, value in given.items():
            expr = expr.replace(variable, value)
        rules.append({"record": f"dashboard:query_{number}", "expr": expr})
    path = tmp_path / "queries.yaml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
    done = subprocess.run(
        [promtool(), "check", "rules", str(path)], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"{len(rules)} rules found" in done.stdout


def test_every_metric_of_the_project_is_on_the_dashboard() -> None:
    def family(name: str) -> str:
        return re.sub(r"_(total|bucket|count|sum)$", "", name)

    used = {n for _, expr in expressions(load_dashboard()) for n in metric_names(expr)}
    assert {family(n) for n in registered()} - {family(n) for n in used} == set()


def test_the_dashboard_is_well_formed() -> None:
    dashboard = load_dashboard()
    panels = dashboard["panels"]
    ids = [p["id"] for p in panels]
    assert len(ids) == len(set(ids))
    (variable,) = dashboard["templating"]["list"]
    assert (variable["type"], variable["query"]) == ("datasource", "prometheus")
    taken: set[tuple[int, int]] = set()
    for panel in panels:
        box = panel["gridPos"]
        assert box["x"] + box["w"] <= 24, panel["title"]
        cells = {(box["x"] + i, box["y"] + j) for i in range(box["w"]) for j in range(box["h"])}
        assert not cells & taken, f"{panel['title']} overlaps another panel"
        taken |= cells
        if panel["type"] != "row":
            assert panel["datasource"]["uid"] == "${datasource}", panel["title"]
            assert panel.get("description"), panel["title"]
            assert all(t["datasource"]["uid"] == "${datasource}" for t in panel["targets"])


def compose_services() -> dict[str, Any]:
    return dict(yaml.safe_load(COMPOSE.read_text())["services"])


def mounted(service: dict[str, Any], source: str) -> str:
    """Where ``service`` mounts ``source`` (a path relative to deploy/compose/)."""
    (target,) = [v.split(":")[1] for v in service["volumes"] if v.split(":")[0] == source]
    return target


def test_grafana_is_provisioned_as_compose_mounts_it() -> None:
    grafana = compose_services()["grafana"]
    assert mounted(grafana, "../grafana/provisioning") == "/etc/grafana/provisioning"
    dashboards = mounted(grafana, "../grafana/dashboards")
    provider = yaml.safe_load((GRAFANA / "provisioning/dashboards/movingdata.yaml").read_text())
    (entry,) = provider["providers"]
    assert entry["options"]["path"] == dashboards
    home = grafana["environment"]["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
    assert home == f"{dashboards}/{DASHBOARD.name}"
    sources = yaml.safe_load((GRAFANA / "provisioning/datasources/prometheus.yaml").read_text())
    (source,) = sources["datasources"]
    assert source["type"] == "prometheus" and source["isDefault"]
    assert source["url"] == "http://prometheus:9090"
    scrape = yaml.safe_load(PROMETHEUS.read_text())["global"]["scrape_interval"]
    assert source["jsonData"]["timeInterval"] == scrape


def test_prometheus_scrapes_every_stage_and_the_api_with_the_rules() -> None:
    services = compose_services()
    config = yaml.safe_load(PROMETHEUS.read_text())
    folder = mounted(services["prometheus"], "../prometheus")
    assert f"--config.file={folder}/{PROMETHEUS.name}" in services["prometheus"]["command"]
    assert config["rule_files"] == ["alerts.yaml"]
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    (dns,) = jobs["movingdata-workers"]["dns_sd_configs"]
    stages = {n for n, s in services.items() if s.get("command", [])[:2] == ["worker", "--agents"]}
    assert set(dns["names"]) == stages, "prometheus.yml: scrape every stage service, no other"
    for stage in stages:
        assert str(dns["port"]) == services[stage]["environment"]["MOVINGDATA_WORKER_PORT"]
    (api,) = jobs["movingdata-api"]["static_configs"]
    assert api["targets"] == [f"api:{services['api']['environment']['MOVINGDATA_API_PORT']}"]


def test_monitoring_is_optional_and_published_on_the_loopback_by_default() -> None:
    services = compose_services()
    profiled = {name for name, s in services.items() if s.get("profiles")}
    assert profiled == {"prometheus", "grafana"}
    assert all(s["profiles"] == ["monitoring"] for n, s in services.items() if n in profiled)
    for name, service in services.items():  # the default deployment waits on none of them
        if name not in profiled:
            assert not set(service.get("depends_on") or {}) & profiled, name
    assert "ports" not in services["prometheus"]
    (port,) = services["grafana"]["ports"]
    assert port.startswith("${PUBLISH_ADDRESS:-127.0.0.1}:")
