"""The pure parts of the Compose test on Podman (tests/deploy/podman/): the Compose file's Podman
variant changes Podman 4.3's gaps and nothing else; the host's settings files; the Debian
mirrors from apt's index targets; the test's ``.env``; image names; the Kafka stand-in's
environment-to-properties rule; the health-check driver's schedule."""

import base64
import importlib.util
import shlex
import tomllib
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml

from tests.deploy.podman.config import (
    containers_conf,
    debian_sources,
    deployment_env,
    is_placeholder,
    memory_in_use,
    podman_variant,
    qualified,
    storage_conf,
)
from tests.deploy.podman.deployment import COMPOSE_FILE, ENV_EXAMPLE, read_env_file
from tests.deploy.podman.engine import HealthChecks, Podman, health_of
from tests.unit.test_compose_initialise import init

ROOT = Path(__file__).resolve().parents[2]
KAFKA_RUN = ROOT / "tests/deploy/podman/standins/kafka/run.py"


def load_raw() -> dict[str, Any]:
    return dict(yaml.safe_load(COMPOSE_FILE.read_text()))


def load_kafka_run() -> ModuleType:
    spec = importlib.util.spec_from_file_location("kafka_standin_run", KAFKA_RUN)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def checks(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {
        name: dict(service["healthcheck"])
        for name, service in compose["services"].items()
        if isinstance(service.get("healthcheck"), dict)
    }


def test_the_variant_drops_start_interval_everywhere() -> None:
    source = checks(load_raw())
    assert any("start_interval" in check for check in source.values())  # it has something to do
    assert not any(
        "start_interval" in check for check in checks(podman_variant(load_raw())).values()
    )


def test_the_variant_runs_each_spaced_cmd_check_as_the_same_command_in_a_shell() -> None:
    source, variant = checks(load_raw()), checks(podman_variant(load_raw()))
    rewritten = 0
    for name, check in source.items():
        test = check.get("test")
        if test and test[0] == "CMD" and any(" " in arg for arg in test[1:]):
            assert variant[name]["test"][0] == "CMD-SHELL", name
            assert shlex.split(variant[name]["test"][1]) == test[1:], name
            rewritten += 1
        else:
            assert variant[name].get("test") == test, name
    assert rewritten >= 3  # the stages', the API's, the dashboard's, Azurite's


def without_what_the_variant_rewrites(compose: dict[str, Any]) -> dict[str, Any]:
    for service in compose["services"].values():
        check = service.get("healthcheck")
        if isinstance(check, dict):
            service["healthcheck"] = {
                k: v for k, v in check.items() if k not in {"start_interval", "test"}
            }
    return compose


def test_the_variant_changes_nothing_else() -> None:
    variant = without_what_the_variant_rewrites(podman_variant(load_raw()))
    assert variant == without_what_the_variant_rewrites(load_raw())


def test_the_variant_keeps_a_check_without_spaces_and_the_source_untouched() -> None:
    compose = {"services": {"s": {"healthcheck": {"test": ["CMD", "wget", "-q", "http://x/"]}}}}
    assert podman_variant(compose) == compose
    spaced = {"services": {"s": {"healthcheck": {"test": ["CMD", "sh", "-c", "a b"]}}}}
    assert podman_variant(spaced)["services"]["s"]["healthcheck"]["test"] == [
        "CMD-SHELL",
        "sh -c 'a b'",
    ]
    assert spaced["services"]["s"]["healthcheck"]["test"][0] == "CMD"


def test_containers_conf_holds_the_hosts_settings_under_its_root(tmp_path: Path) -> None:
    conf = tomllib.loads(containers_conf(tmp_path / 'with "quotes"', nofile=20000))
    assert conf["containers"]["default_ulimits"] == ["nofile=20000:20000", "nproc=32768:32768"]
    assert conf["engine"]["runtime"] == "runc"
    assert conf["engine"]["cgroup_manager"] == "cgroupfs"
    paths = [
        conf["engine"]["events_logfile_path"],
        conf["engine"]["tmp_dir"],
        conf["engine"]["volume_path"],
        conf["network"]["network_config_dir"],
    ]
    assert all(Path(p).is_relative_to(tmp_path / 'with "quotes"') for p in paths)


def test_storage_conf_keeps_images_and_containers_under_its_root(tmp_path: Path) -> None:
    conf = tomllib.loads(storage_conf(tmp_path))["storage"]
    assert conf == {
        "driver": "overlay",
        "graphroot": str(tmp_path / "storage"),
        "runroot": str(tmp_path / "run"),
    }


INDEXTARGETS = """\
http://deb.debian.org/debian-security/ bookworm-security main deb
http://deb.debian.org/debian/ bookworm main deb
http://deb.debian.org/debian/ bookworm main deb
http://deb.debian.org/debian/ bookworm-updates main deb
http://deb.debian.org/debian/ bookworm contrib deb
http://deb.debian.org/debian/ bookworm main deb-src
https://deb.nodesource.com/node_20.x/ nodistro main deb
https://packages.cloud.google.com/apt/ cloud-sdk-bookworm main deb
"""


def test_the_base_comes_from_the_debian_mirrors_apt_uses() -> None:
    assert debian_sources(INDEXTARGETS, "bookworm") == [
        "deb http://deb.debian.org/debian bookworm main",
        "deb http://deb.debian.org/debian bookworm-updates main",
        "deb http://deb.debian.org/debian-security bookworm-security main",
    ]
    only_main = "http://mirror.example/debian/ bookworm main deb\n"
    assert debian_sources(only_main, "bookworm") == [
        "deb http://mirror.example/debian bookworm main"
    ]
    with pytest.raises(ValueError, match="no source for bookworm"):
        debian_sources("http://x/ trixie main deb\n", "bookworm")


def test_the_deployment_env_replaces_every_placeholder_with_a_fresh_value() -> None:
    example = read_env_file(ENV_EXAMPLE)
    counter = iter(range(1, 1000))
    env = deployment_env(example, {"API_HOST_PORT": "40001"}, lambda n: bytes([next(counter)]) * n)
    assert set(env) == set(example)
    assert not [key for key, value in env.items() if is_placeholder(value)]
    assert env["API_HOST_PORT"] == "40001"
    kept = {k: v for k, v in example.items() if not is_placeholder(v) and k != "API_HOST_PORT"}
    assert kept and all(env[k] == v for k, v in kept.items())
    assert len(base64.b64decode(env["MOVINGDATA_AZURE_KEY"], validate=True)) == 64
    # openbao-init takes the tokens (well-formed, one per role, none alike).
    assert set(init.wanted_tokens(env)) == set(init.TOKEN_VARIABLES)


def test_placeholders_are_seen_plain_or_in_base64() -> None:
    assert is_placeholder("changeme-token")
    assert is_placeholder(base64.b64encode(b"xx changeme xx").decode())
    assert not is_placeholder("movingdata")
    assert not is_placeholder("")


@pytest.mark.parametrize(
    ("image", "full"),
    [
        ("mongo:8.0.29", "docker.io/library/mongo:8.0.29"),
        ("apache/kafka:4.4.0", "docker.io/apache/kafka:4.4.0"),
        ("movingdata:0.1.0", "docker.io/library/movingdata:0.1.0"),
        (
            "mcr.microsoft.com/azure-storage/azurite:3.35.0",
            "mcr.microsoft.com/azure-storage/azurite:3.35.0",
        ),
        ("localhost/python:3.11-bookworm", "localhost/python:3.11-bookworm"),
        ("registry:5000/x/y:1", "registry:5000/x/y:1"),
    ],
)
def test_image_names_are_qualified_as_podman_stores_them(image: str, full: str) -> None:
    assert qualified(image) == full


def test_the_kafka_standin_reads_the_upstream_images_variables() -> None:
    run = load_kafka_run()
    kafka = load_raw()["services"]["kafka"]["environment"]
    props = dict(line.split("=", 1) for line in run.properties(kafka).splitlines())
    assert props["process.roles"] == "broker,controller"
    assert props["controller.quorum.voters"] == "1@kafka:9093"
    assert props["listener.security.protocol.map"] == "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT"
    assert props["log.dirs"] == "/var/lib/kafka/data"
    assert "heap.opts" not in props  # KAFKA_HEAP_OPTS is the JVM's
    assert run.property_name("KAFKA_A__B___C_D") == "a_b-c.d"
    assert "-Xmx512m" in run.jvm(kafka)


def test_health_states_are_read_from_podman_ps() -> None:
    assert health_of("Up 3 seconds (starting)") == "starting"
    assert health_of("Up 2 minutes (healthy)") == "healthy"
    assert health_of("Up 2 minutes (unhealthy)") == "unhealthy"
    assert health_of("Up 2 minutes") is None
    assert health_of("Exited (0) 5 seconds ago") is None


def test_checks_run_often_until_healthy_then_at_the_interval(tmp_path: Path) -> None:
    driver = HealthChecks(Podman(tmp_path), "p", starting_s=2, interval_s=30)
    assert driver.due("starting", None, now=100)
    assert not driver.due("starting", 99, now=100)
    assert driver.due("unhealthy", 98, now=100)
    assert not driver.due("healthy", 80, now=100)
    assert driver.due("healthy", 70, now=100)
    assert not driver.due(None, None, now=100)  # no health check: a one-shot


def test_memory_in_use_adds_up_podman_stats() -> None:
    stats = [
        {"mem_usage": "53.81MB / 25.28GB"},
        {"mem_usage": "1.5GB / 25.28GB"},
        {"mem_usage": "512kB / 1GB"},
        {"mem_usage": "--"},
    ]
    assert memory_in_use(stats) == 53_810_000 + 1_500_000_000 + 512_000
