"""``movingdata stack up | down | status | logs``: the local stack as one unit.

``up`` installs what is missing, starts every service not already running, waits until each
is healthy and is idempotent; ``down`` stops only the processes the stack recorded, by PID.
"""

import secrets
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import psutil

from workers.settings import Settings
from workers.stack import process
from workers.stack.localenv import ensure_local_env
from workers.stack.process import ServiceError
from workers.stack.services import OpenBao, Service, all_services


@dataclass(frozen=True, slots=True)
class ServiceStatus:
    """One row of ``stack status``."""

    name: str
    version: str
    port: int
    pid: int | None
    state: str  # "healthy" | "unhealthy" | "stopped"
    rss_mib: float | None


def _tracked(service: Service) -> process.Tracked | None:
    tracked = process.read_pid_file(service.pid_file)
    return tracked if tracked and process.is_alive(tracked) else None


def _start(service: Service, timeout_s: float) -> float:
    """Install, prepare and start one service unless it already runs; return seconds taken."""
    began = time.monotonic()
    if _tracked(service) is None:
        if not service.installed():
            service.install()
        service.dir.mkdir(parents=True, exist_ok=True)
        service.prepare()
        tracked = process.spawn(
            service.argv(),
            marker=service.marker,
            pid_file=service.pid_file,
            log_file=service.log_file,
            cwd=service.dir,
            env=service.env(),
        )
        alive = lambda: process.is_alive(tracked)  # noqa: E731
        if not process.wait_until(service.healthy, timeout_s=timeout_s, alive=alive):
            state = "exited" if not alive() else "not healthy"
            raise ServiceError(f"{service.name}: {state} after start, see {service.log_file}")
    service.after_start()
    return time.monotonic() - began


def up(settings: Settings) -> dict[str, float]:
    """Bring every service up; return the seconds each took (0-ish when already running)."""
    settings.home.mkdir(parents=True, exist_ok=True)
    # The API's key signing share links: no service of the stack holds it.
    ensure_local_env(settings.home / "local.env", {"MOVINGDATA_LINK_KEY": secrets.token_hex(32)})
    first, *rest = all_services(settings)
    assert isinstance(first, OpenBao)
    timings = {first.name: _start(first, settings.stack_timeout_s)}
    # The others do not depend on each other: start them concurrently (Kafka's JVM is slowest).
    with ThreadPoolExecutor(len(rest)) as pool:
        futures = {s.name: pool.submit(_start, s, settings.stack_timeout_s) for s in rest}
        for name, future in futures.items():
            timings[name] = future.result()
    return timings


def down(settings: Settings) -> list[str]:
    """Stop every recorded service (concurrently: SeaweedFS alone takes ~20 s)."""
    services = [s for s in all_services(settings) if _tracked(s) is not None]

    def stop_one(service: Service) -> str:
        tracked = _tracked(service)
        if tracked is not None:
            process.stop(tracked, grace_s=service.grace_s)
        service.pid_file.unlink(missing_ok=True)
        return service.name

    with ThreadPoolExecutor(max(1, len(services))) as pool:
        return list(pool.map(stop_one, services))


def service(settings: Settings, name: str) -> Service:
    for candidate in all_services(settings):
        if candidate.name == name:
            return candidate
    raise ServiceError(f"no service named {name!r}")


def stop_service(settings: Settings, name: str) -> None:
    """Stop one service (fault tests take a single service away)."""
    svc = service(settings, name)
    tracked = _tracked(svc)
    if tracked is not None:
        process.stop(tracked, grace_s=svc.grace_s)


def start_service(settings: Settings, name: str) -> float:
    return _start(service(settings, name), settings.stack_timeout_s)


def status(settings: Settings) -> Iterator[ServiceStatus]:
    for service in all_services(settings):
        tracked = _tracked(service)
        if tracked is None:
            yield ServiceStatus(service.name, service.version, service.port, None, "stopped", None)
            continue
        rss = sum(
            p.memory_info().rss
            for p in [psutil.Process(tracked.pid), *psutil.Process(tracked.pid).children(True)]
        )
        state = "healthy" if service.healthy() else "unhealthy"
        yield ServiceStatus(
            service.name, service.version, service.port, tracked.pid, state, rss / 2**20
        )


def log_path(settings: Settings, name: str) -> str:
    return str(service(settings, name).log_file)
