"""What the Compose test runs with, as pure functions of their inputs (tests/unit/
test_compose_podman.py checks them): the Compose file's Podman variant, Podman's own settings,
the Debian mirror the base image is made from, the deployment's ``.env`` and the images'
full names.

Only Podman 4.3's gaps are rewritten here; ``compose.yaml`` itself is what a Docker host runs.
"""

import base64
import copy
import re
import shlex
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

Compose = dict[str, Any]

# Podman 4.3 answers the Docker API as version 1.41; Compose sends healthcheck.start_interval
# only to an engine of API 1.44 (Docker 25) or later and refuses the file otherwise.
PODMAN_DROPS = ("start_interval",)


def podman_variant(compose: Mapping[str, Any]) -> Compose:
    """The Compose file as Podman 4.3 can run it: every ``healthcheck.start_interval`` dropped,
    and every ``CMD`` health check with an argument holding whitespace rewritten to the
    ``CMD-SHELL`` form of the same command (Podman 4.3 splits each ``CMD`` argument on
    whitespace, containers/podman#26519). Nothing else changes."""
    variant: Compose = copy.deepcopy(dict(compose))
    services = variant.get("services") or {}
    for name, service in services.items():
        check = service.get("healthcheck")
        if not isinstance(check, dict):
            continue
        # A new mapping per service: YAML aliases share one between services and x- fields.
        check = {key: value for key, value in check.items() if key not in PODMAN_DROPS}
        test = check.get("test")
        if (
            isinstance(test, list)
            and test[:1] == ["CMD"]
            and any(re.search(r"\s", str(arg)) for arg in test[1:])
        ):
            check["test"] = ["CMD-SHELL", shlex.join(str(arg) for arg in test[1:])]
        services[name] = {**service, "healthcheck": check}
    return variant


def toml_string(value: str) -> str:
    """A TOML basic string (JSON's escapes are TOML's for what a path holds)."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def containers_conf(root: Path, nofile: int, nproc: int = 32768) -> str:
    """``containers.conf`` (``CONTAINERS_CONF``) for this host: every container's file limit
    at the host's hard limit (crun/runc cannot raise it: ``setrlimit RLIMIT_NOFILE: Operation
    not permitted``), runc with cgroupfs (crun refuses a hybrid cgroup host; there is no
    systemd), and everything Podman keeps (networks, events, volumes) under ``root``."""
    lines = [
        "# Written by tests/deploy/podman for `make test-compose`: this host's settings, not the",
        "# deployment's (deploy/compose/compose.yaml is the same on every engine).",
        "[containers]",
        f'default_ulimits = ["nofile={nofile}:{nofile}", "nproc={nproc}:{nproc}"]',
        "",
        "[engine]",
        'runtime = "runc"',
        'cgroup_manager = "cgroupfs"',
        # A `docker compose exec` is answered once it ends; Podman's default keeps each exec
        # session's conmon 300 s after that for a client that might still ask.
        "exit_command_delay = 10",
        'events_logger = "file"',
        f"events_logfile_path = {toml_string(str(root / 'events.log'))}",
        f"tmp_dir = {toml_string(str(root / 'tmp'))}",
        f"volume_path = {toml_string(str(root / 'storage' / 'volumes'))}",
        "",
        "[network]",
        f"network_config_dir = {toml_string(str(root / 'networks'))}",
        "",
    ]
    return "\n".join(lines)


def storage_conf(root: Path) -> str:
    """``storage.conf`` (``CONTAINERS_STORAGE_CONF``): images, layers and containers under
    ``root``, on overlay."""
    return "\n".join(
        [
            "[storage]",
            'driver = "overlay"',
            f"graphroot = {toml_string(str(root / 'storage'))}",
            f"runroot = {toml_string(str(root / 'run'))}",
            "",
        ]
    )


def debian_sources(indextargets: str, release: str) -> list[str]:
    """mmdebstrap's mirror lines for ``release`` (its -updates and -security suites too, main
    only) from ``apt-get indextargets --format '$(REPO_URI) $(RELEASE) $(COMPONENT)
    $(TARGET_OF)'``: the mirrors apt itself uses, in the order release, updates, security."""
    order = {release: 0, f"{release}-updates": 1, f"{release}-security": 2}
    found: dict[str, str] = {}
    for line in indextargets.splitlines():
        parts = line.split()
        if len(parts) != 4:
            continue
        uri, suite, component, kind = parts
        if kind == "deb" and component == "main" and suite in order:
            found.setdefault(suite, uri.rstrip("/"))
    if release not in found:
        raise ValueError(f"apt has no source for {release} main: {indextargets.strip()!r}")
    return [f"deb {found[s]} {s} main" for s in sorted(found, key=order.__getitem__)]


def is_placeholder(value: str) -> bool:
    """An example's placeholder: ``changeme`` in it, or in what its base64 decodes to."""
    if "changeme" in value:
        return True
    try:
        return b"changeme" in base64.b64decode(value, validate=True)
    except ValueError:
        return False


def deployment_env(
    example: Mapping[str, str], overrides: Mapping[str, str], random_bytes: Callable[[int], bytes]
) -> dict[str, str]:
    """The test's ``.env``: ``.env.example`` with every placeholder replaced by a fresh value
    of its kind (hex for tokens and keys; base64 of 64 bytes for one given as base64, the
    Azure key), then ``overrides`` (ports)."""
    env = dict(example)
    for key, value in example.items():
        if not is_placeholder(value):
            continue
        if "changeme" in value:
            env[key] = random_bytes(24).hex()
        else:
            env[key] = base64.b64encode(random_bytes(64)).decode()
    env.update(overrides)
    return env


def env_text(env: Mapping[str, str]) -> str:
    return "".join(f"{key}={value}\n" for key, value in env.items())


def qualified(image: str) -> str:
    """An image's full name as Podman stores it: ``docker.io/`` for a name with no registry,
    ``library/`` for one of a single component (``mongo:8.0.29``)."""
    first, _, rest = image.partition("/")
    if rest and ("." in first or ":" in first or first == "localhost"):
        return image
    return f"docker.io/{image}" if rest else f"docker.io/library/{image}"


SIZE = re.compile(r"([\d.]+)\s*([kMGT]?B)")
UNITS = {"B": 1, "kB": 10**3, "MB": 10**6, "GB": 10**9, "TB": 10**12}


def memory_in_use(stats: list[dict[str, Any]]) -> int:
    """Bytes of memory the containers use, from ``podman stats --format json`` (``mem_usage``:
    ``"53.81MB / 25.28GB"``, decimal units)."""
    total = 0.0
    for container in stats:
        found = SIZE.match(str(container.get("mem_usage", "")))
        if found:
            total += float(found[1]) * UNITS[found[2]]
    return int(total)
