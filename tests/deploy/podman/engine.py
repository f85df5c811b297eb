"""The container engine for ``make test-compose``, without Docker: Podman from Debian's packages
(installed when missing), its Docker-compatible API on a socket under ``.movingdata/podman/``,
and the ``docker compose`` v2 plugin built once from the Go module proxy (cached under
``.movingdata/tools/``).

This host's settings (ulimits, runc, cgroupfs, where Podman keeps its state) are in the files
``CONTAINERS_CONF`` and ``CONTAINERS_STORAGE_CONF`` name (``config.containers_conf``); nothing
here changes the Compose file's meaning. There is no systemd, so no timer runs the containers'
health checks: ``HealthChecks`` runs ``podman healthcheck run`` on a loop instead.
"""

import json
import os
import resource
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path

from tests.deploy.podman.config import containers_conf, storage_conf

ROOT = Path(__file__).resolve().parents[3]
HOME = ROOT / ".movingdata"
PACKAGES = ("podman", "runc", "mmdebstrap")
COMPOSE_MODULE = "github.com/docker/compose/v2"
COMPOSE_VERSION = "v2.40.3"
# Long builds share two cores with other work: one Go thread, one package at a time.
QUIET_GO = {"GOMAXPROCS": "1", "GOFLAGS": "-mod=mod -p=1", "CGO_ENABLED": "0"}


class EngineError(Exception):
    """A step of the engine's set-up failed; the message names its log."""


def run_logged(
    argv: Sequence[str],
    log: Path,
    *,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
    nice: bool = False,
) -> None:
    """Run a set-up step, its output appended to ``log``; one clear line if it fails."""
    log.parent.mkdir(parents=True, exist_ok=True)
    command = ["nice", "-n", "15", *argv] if nice else list(argv)
    with log.open("ab") as out:
        out.write(f"\n$ {' '.join(command)}\n".encode())
        out.flush()
        done = subprocess.run(
            command, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=cwd, check=False
        )
    if done.returncode != 0:
        raise EngineError(f"{argv[0]} {argv[1] if len(argv) > 1 else ''}: exit "
                          f"{done.returncode}, see {log}")  # fmt: skip


def ensure_packages(log: Path) -> None:
    """Podman, runc and mmdebstrap from apt, when any is missing (the index refreshed only if
    the first try fails)."""
    if all(shutil.which(tool) for tool in PACKAGES):
        return
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = ["apt-get", "install", "-y", "-q", "--no-install-recommends", *PACKAGES]
    try:
        run_logged(install, log, env=env)
    except EngineError:
        run_logged(["apt-get", "update", "-q"], log, env=env)
        run_logged(install, log, env=env)


@dataclass
class ComposePlugin:
    """``docker compose`` v2, built from its module's source (``go install`` refuses a module
    with exclude directives) into ``tools/compose-<version>/docker-compose`` once."""

    tools: Path
    version: str = COMPOSE_VERSION

    @property
    def binary(self) -> Path:
        return self.tools / f"compose-{self.version}" / "docker-compose"

    def ensure(self, log: Path) -> Path:
        if not self.binary.exists():
            self.build(log)
        return self.binary

    def build(self, log: Path) -> None:
        env = {**os.environ, **QUIET_GO}
        module = f"{COMPOSE_MODULE}@{self.version}"
        found = subprocess.run(
            ["go", "mod", "download", "-json", module],
            capture_output=True,
            text=True,
            env=env,
            check=False,
        )
        if found.returncode != 0:
            raise EngineError(f"go mod download {module}: {found.stdout}{found.stderr}")
        self.binary.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=self.tools, prefix="compose-src-") as tmp:
            src = Path(tmp) / "src"
            shutil.copytree(json.loads(found.stdout)["Dir"], src)
            for path in [src, *src.rglob("*")]:
                path.chmod(path.stat().st_mode | 0o200)  # the module cache is read-only
            partial = self.binary.with_suffix(".partial")
            stamp = f"-X {COMPOSE_MODULE}/internal.Version={self.version}"
            build = ["go", "build", "-trimpath", "-ldflags", f"-s -w {stamp}", "-o", str(partial)]
            run_logged([*build, "./cmd"], log, env=env, cwd=src, nice=True)
            partial.rename(self.binary)  # only a whole binary is ever taken as the cache


def unix_get(path: Path, url: str, timeout_s: float = 5) -> int:
    """The status of ``GET url`` over a Unix socket (0 if nothing answers)."""
    try:
        with socket.socket(socket.AF_UNIX) as sock:
            sock.settimeout(timeout_s)
            sock.connect(str(path))
            sock.sendall(f"GET {url} HTTP/1.0\r\nHost: podman\r\n\r\n".encode())
            head = sock.recv(64).decode("latin-1")
    except OSError:
        return 0
    parts = head.split()
    return int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else 0


@dataclass
class Podman:
    """Podman with every file it keeps under ``root`` and this host's settings."""

    root: Path

    @property
    def socket(self) -> Path:
        return self.root / "podman.sock"

    @property
    def log(self) -> Path:
        return self.root / "logs" / "podman.log"

    def configure(self) -> None:
        """Write the settings files (the host's hard file limit is read now)."""
        for sub in ("storage", "run", "tmp", "networks", "logs"):
            (self.root / sub).mkdir(parents=True, exist_ok=True)
        nofile = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
        if nofile == resource.RLIM_INFINITY:
            nofile = 1048576
        (self.root / "containers.conf").write_text(containers_conf(self.root, nofile))
        (self.root / "storage.conf").write_text(storage_conf(self.root))

    def env(self) -> dict[str, str]:
        return {
            "PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin"),
            "HOME": os.environ.get("HOME", "/root"),
            "CONTAINERS_CONF": str(self.root / "containers.conf"),
            "CONTAINERS_STORAGE_CONF": str(self.root / "storage.conf"),
            "TMPDIR": str(self.root / "tmp"),
        }

    def run(
        self, *args: str, check: bool = True, timeout_s: float = 300
    ) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            ["podman", *args],
            capture_output=True,
            text=True,
            env=self.env(),
            timeout=timeout_s,
            check=False,
        )
        if check and done.returncode != 0:
            raise EngineError(f"podman {' '.join(args)}: {done.stderr.strip()}")
        return done

    @contextmanager
    def service(self, timeout_s: float = 60) -> Iterator[str]:
        """``podman system service`` on ``root/podman.sock`` while the block runs; yields the
        ``DOCKER_HOST`` that reaches it. The process is stopped (and waited for) after."""
        self.socket.unlink(missing_ok=True)
        self.log.parent.mkdir(parents=True, exist_ok=True)
        with self.log.open("ab") as out:
            proc = subprocess.Popen(
                ["podman", "system", "service", "--time=0", f"unix://{self.socket}"],
                stdout=out,
                stderr=subprocess.STDOUT,
                env=self.env(),
                start_new_session=True,
            )
        try:
            deadline = time.monotonic() + timeout_s
            while unix_get(self.socket, "/_ping") != 200:
                if proc.poll() is not None:
                    raise EngineError(f"podman system service exited {proc.returncode}: {self.log}")
                if time.monotonic() > deadline:
                    raise EngineError(f"podman system service: no answer in {timeout_s} s")
                time.sleep(0.2)
            yield f"unix://{self.socket}"
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=30)
            self.socket.unlink(missing_ok=True)

    def remove_everything(self) -> None:
        """Every container, pod, volume and network in this Podman's own storage (none is
        anyone else's), and a service on its socket: what a killed run may have left."""
        for pid, argv in self.processes().items():
            if f"system service --time=0 unix://{self.socket}" in argv:
                with suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGTERM)
        self.run("rm", "--all", "--force", "--time", "10", check=False)
        self.run("volume", "prune", "--force", check=False)
        self.run("network", "prune", "--force", check=False)

    def processes(self) -> dict[int, str]:
        """Running processes of this Podman (the service, conmon, health checks), by pid: each
        one's command line names a path under ``root``."""
        mark = str(self.root).encode()
        found = {}
        for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
            if cmdline.parent.name == str(os.getpid()):
                continue
            with suppress(OSError):
                argv = cmdline.read_bytes()
                if mark in argv:
                    found[int(cmdline.parent.name)] = argv.replace(b"\0", b" ").decode(
                        errors="replace"
                    )
        return found

    def leftovers(self, processes: bool = True) -> dict[str, list[str]]:
        """What is left of this Podman's work besides images (and the default network), and
        its processes unless ``processes`` is false (while the service runs)."""
        found = {
            "containers": self.run("ps", "--all", "--format", "{{.Names}}").stdout.split(),
            "volumes": self.run("volume", "ls", "--format", "{{.Name}}").stdout.split(),
            "networks": self.run("network", "ls", "--format", "{{.Name}}").stdout.split(),
            "processes": [f"{pid}: {argv[:160]}" for pid, argv in self.processes().items()]
            if processes
            else [],
        }
        found["networks"] = [n for n in found["networks"] if n != "podman"]
        return {kind: names for kind, names in found.items() if names}


def health_of(status: str) -> str | None:
    """A health state from ``podman ps``'s status (``Up 3 seconds (starting)``)."""
    for state in ("starting", "healthy", "unhealthy"):
        if status.endswith(f"({state})"):
            return state
    return None


@dataclass
class HealthChecks:
    """Runs the containers' health checks, as a systemd timer would: a container that is not
    healthy yet is checked every ``starting_s`` (compose.yaml's ``start_interval``), a healthy
    one every ``interval_s``, each check in its own thread (a slow one holds up no other)."""

    podman: Podman
    project: str
    starting_s: float = 2.0
    interval_s: float = 30.0
    workers: int = 4
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None
    _last: dict[str, float] = field(default_factory=dict)
    _running: dict[str, Future[None]] = field(default_factory=dict)

    def running_containers(self) -> dict[str, str | None]:
        """Each running container of the project, by id, with its health state."""
        listed = self.podman.run(
            "ps",
            "--filter",
            f"label=com.docker.compose.project={self.project}",
            "--format",
            "{{.ID}}\t{{.Status}}",
            check=False,
            timeout_s=30,
        )
        found: dict[str, str | None] = {}
        for line in listed.stdout.splitlines():
            cid, _, status = line.partition("\t")
            found[cid] = health_of(status)
        return found

    def due(self, health: str | None, last: float | None, now: float) -> bool:
        if health is None:  # no health check (a one-shot, or disabled)
            return False
        wait = self.interval_s if health == "healthy" else self.starting_s
        return last is None or now - last >= wait

    def check(self, cid: str) -> None:
        self.podman.run("healthcheck", "run", cid, check=False, timeout_s=60)

    def loop(self) -> None:
        with ThreadPoolExecutor(self.workers, thread_name_prefix="healthcheck") as pool:
            while not self._stop.wait(1.0):
                now = time.monotonic()
                for cid, health in self.running_containers().items():
                    busy = self._running.get(cid)
                    if (busy and not busy.done()) or not self.due(health, self._last.get(cid), now):
                        continue
                    self._last[cid] = now
                    self._running[cid] = pool.submit(self.check, cid)

    def __enter__(self) -> "HealthChecks":
        self._thread = threading.Thread(target=self.loop, name="healthchecks", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=90)


def compose_command(plugin: Path, docker_config: Path) -> list[str]:
    """``docker compose`` with the plugin in ``docker_config/cli-plugins`` (the docker CLI is
    installed here); without the CLI, the plugin runs as the standalone ``docker-compose``."""
    if shutil.which("docker") is None:
        return [str(plugin)]
    plugins = docker_config / "cli-plugins"
    plugins.mkdir(parents=True, exist_ok=True)
    link = plugins / "docker-compose"
    if not (link.is_symlink() and link.readlink() == plugin):
        link.unlink(missing_ok=True)
        link.symlink_to(plugin)
    return ["docker", "compose"]


def wait_until(check: Callable[[], bool], what: str, timeout_s: float, every_s: float = 1) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what}: not within {timeout_s:.0f} s")
        time.sleep(every_s)


@contextmanager
def exclusive(lock: Path) -> Iterator[None]:
    """One ``make test-compose`` at a time in a work tree (they would share one Podman)."""
    import fcntl

    lock.parent.mkdir(parents=True, exist_ok=True)
    with lock.open("w") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise EngineError(f"another Compose test holds {lock}") from None
        handle.write(str(os.getpid()))
        handle.flush()
        try:
            yield
        finally:
            with suppress(OSError):
                fcntl.flock(handle, fcntl.LOCK_UN)
