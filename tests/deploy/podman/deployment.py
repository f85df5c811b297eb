"""``deploy/compose/compose.yaml`` started for real on Podman (``make test-compose``).

``Deployment.running()`` sets up the engine (tests/deploy/podman/engine.py), builds the images
(tests/deploy/podman/images.py), writes the Compose file's Podman variant and a ``.env`` of fresh
secrets and free host ports, then ``up``; afterwards ``down --volumes`` and the Podman service
stopped, whatever happened in between. Every file is under ``.movingdata/podman/`` (images,
volumes and logs included) and ``.movingdata/tools/`` (the Compose plugin).

By hand: ``.venv/bin/python -m tests.deploy.podman.deployment`` starts it, prints the API's address
and a writer token, and takes it down on Enter.
"""

import json
import os
import secrets
import shlex
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from tests.deploy.podman.config import deployment_env, env_text, memory_in_use, podman_variant
from tests.deploy.podman.engine import (
    COMPOSE_VERSION,
    HOME,
    ROOT,
    ComposePlugin,
    EngineError,
    HealthChecks,
    Podman,
    compose_command,
    ensure_packages,
    exclusive,
    wait_until,
)
from tests.deploy.podman.images import Images

COMPOSE_DIR = ROOT / "deploy/compose"
COMPOSE_FILE = COMPOSE_DIR / "compose.yaml"
ENV_EXAMPLE = COMPOSE_DIR / ".env.example"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def read_env_file(path: Path) -> dict[str, str]:
    pairs = {}
    for line in path.read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            key, _, value = line.partition("=")
            pairs[key] = value
    return pairs


@dataclass
class Deployment:
    root: Path = HOME / "podman"
    compose_file: Path = COMPOSE_FILE
    up_timeout_s: float = 900
    podman: Podman = field(init=False)
    env: dict[str, str] = field(init=False, default_factory=dict)
    docker_host: str = field(init=False, default="")
    _compose: list[str] = field(init=False, default_factory=list)

    def __post_init__(self) -> None:
        self.podman = Podman(self.root)

    @property
    def logs(self) -> Path:
        return self.root / "logs"

    @property
    def variant_file(self) -> Path:
        return self.root / "compose.podman.yaml"

    @property
    def env_file(self) -> Path:
        return self.root / "compose.env"

    @property
    def source(self) -> dict[str, Any]:
        return dict(yaml.safe_load(self.compose_file.read_text()))

    @property
    def services(self) -> dict[str, Any]:
        """The services ``up`` starts: those of no profile (``monitoring`` is one)."""
        return {
            name: service
            for name, service in self.source["services"].items()
            if not service.get("profiles")
        }

    @property
    def project(self) -> str:
        return str(self.source["name"])

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.env['API_HOST_PORT']}"

    @property
    def dashboard_url(self) -> str:
        return f"http://127.0.0.1:{self.env['DASHBOARD_HOST_PORT']}"

    def prepare(self) -> None:
        """Engine, plugin, settings and images; the Compose variant and its ``.env``."""
        with self.phase("podman, runc, mmdebstrap (apt)"):
            ensure_packages(self.logs / "apt.log")
        with self.phase(f"docker compose {COMPOSE_VERSION} (Go module proxy, cached)"):
            plugin = ComposePlugin(HOME / "tools").ensure(self.logs / "compose-build.log")
        self._compose = compose_command(plugin, self.root / "docker")
        self.podman.configure()
        self.podman.remove_everything()  # what a killed run may have left
        images = Images(self.podman, self.logs)
        with self.phase("base image (mmdebstrap, cached)"):
            images.base()
        with self.phase("stand-in images"):
            images.standins(
                {
                    name: str(service["image"])
                    for name, service in self.services.items()
                    if not str(service["image"]).startswith("movingdata:")
                }
            )
        with self.phase("project image"):
            images.project()
        self.variant_file.write_text(
            "# Written by tests/deploy/podman/deployment.py from deploy/compose/compose.yaml:\n"
            "# Podman 4.3's gaps only (tests/deploy/podman/config.py podman_variant).\n"
            + yaml.safe_dump(podman_variant(self.source), sort_keys=False, width=100)
        )
        self.env = deployment_env(
            read_env_file(ENV_EXAMPLE),
            {
                "PUBLISH_ADDRESS": "127.0.0.1",
                # Free ports: the local stack's API and dashboard keep 8001 and 8501.
                "API_HOST_PORT": str(free_port()),
                "DASHBOARD_HOST_PORT": str(free_port()),
            },
            secrets.token_bytes,
        )
        self.env_file.touch(mode=0o600)
        self.env_file.write_text(env_text(self.env))

    def compose(
        self, *args: str, check: bool = True, timeout_s: float = 300, log: bool = True
    ) -> subprocess.CompletedProcess[str]:
        """``docker compose`` on the variant, against this Podman, its output in the log
        (only the command without ``log``)."""
        argv = [
            *self._compose,
            "--project-directory",
            str(COMPOSE_DIR),
            "--env-file",
            str(self.env_file),
            "--file",
            str(self.variant_file),
            *args,
        ]
        env = {
            **self.podman.env(),
            "DOCKER_HOST": self.docker_host,
            "DOCKER_CONFIG": str(self.root / "docker"),
            "COMPOSE_PROGRESS": "plain",
            "COMPOSE_ANSI": "never",
        }
        done = subprocess.run(
            argv, capture_output=True, text=True, env=env, timeout=timeout_s, check=False
        )
        with (self.logs / "compose.log").open("a") as out:
            output = f"{done.stdout}{done.stderr}" if log or done.returncode else ""
            out.write(f"\n$ docker compose {shlex.join(args)}\n{output}")
        if check and done.returncode != 0:
            raise EngineError(
                f"docker compose {' '.join(args)}: exit {done.returncode}: {done.stderr[-2000:]}"
            )
        return done

    def exec(self, service: str, *argv: str, check: bool = True) -> str:
        """Run ``argv`` in the (first) container of ``service``; its standard output."""
        return self.compose("exec", "-T", service, *argv, check=check).stdout

    def ps(self) -> list[dict[str, Any]]:
        """Every container of the project (``compose ps --all``), one dict each."""
        out = self.compose("ps", "--all", "--format", "json", log=False).stdout.strip()
        if out.startswith("["):
            return list(json.loads(out))
        return [json.loads(line) for line in out.splitlines() if line.strip()]

    def record_memory(self, when: str) -> int:
        """The containers' memory in use now, noted in ``logs/timings.log``; in bytes."""
        stats = json.loads(self.podman.run("stats", "--no-stream", "--format", "json").stdout)
        used = memory_in_use(stats)
        running = sum(memory_in_use([one]) > 0 for one in stats)
        with (self.logs / "timings.log").open("a") as out:
            out.write(f"memory {when}: {used / 2**20:.0f} MiB in {running} containers\n")
        return used

    def up(self, *options: str) -> None:
        """``up`` with the images built here. ``--no-recreate``: Podman 4.3 lists a container's
        networks under their names where Compose compares the networks' ids, so Compose would
        recreate every running container at every later ``up`` (``--scale`` too)."""
        self.compose("up", "--detach", "--no-build", "--pull", "never", "--no-recreate", *options,
                     timeout_s=self.up_timeout_s)  # fmt: skip

    def down(self) -> None:
        self.compose("down", "--volumes", "--remove-orphans", "--timeout", "30", timeout_s=300)

    def keep_logs(self) -> None:
        """Each container's log under ``logs/containers/`` (read after a failure)."""
        folder = self.logs / "containers"
        folder.mkdir(parents=True, exist_ok=True)
        names = self.podman.run("ps", "--all", "--format", "{{.Names}}", check=False).stdout
        for name in names.split():
            logged = self.podman.run("logs", name, check=False)
            (folder / f"{name}.log").write_text(logged.stdout + logged.stderr)

    @contextmanager
    def running(self) -> Iterator["Deployment"]:
        """The deployment up, then down with its volumes and the Podman service stopped; on
        the way out nothing of it is left but images and caches."""
        with exclusive(self.root / "lock"):
            shutil.rmtree(self.logs, ignore_errors=True)  # the last run's
            self.logs.mkdir(parents=True)
            self.prepare()
            try:
                with self.podman.service() as docker_host, HealthChecks(self.podman, self.project):
                    self.docker_host = docker_host
                    try:
                        with self.phase("up"):
                            self.up()
                        with self.phase("in use (the tests)"):
                            yield self
                    finally:
                        self.keep_logs()
                        with self.phase("down --volumes"):
                            self.down()
            finally:
                self.podman.remove_everything()
                # Exec sessions' conmons outlive their container by exit_command_delay.
                with suppress(TimeoutError):
                    wait_until(lambda: not self.podman.processes(), "Podman's processes", 60)

    @contextmanager
    def phase(self, name: str) -> Iterator[None]:
        """How long a step took, in ``logs/timings.log``."""
        started = time.monotonic()
        try:
            yield
        finally:
            with (self.logs / "timings.log").open("a") as out:
                out.write(f"{name}: {time.monotonic() - started:.0f} s\n")


def main() -> None:
    deployment = Deployment()
    with deployment.running():
        token = deployment.exec("api", "movingdata", "tokens", "create", "by-hand", "--role",
                                "writer").strip()  # fmt: skip
        print(f"API {deployment.api_url} (token {token}), dashboard {deployment.dashboard_url}")
        print(f"DOCKER_HOST={deployment.docker_host}; Enter takes it down")
        input()


if __name__ == "__main__":
    os.chdir(ROOT)
    main()
