"""Detached service processes tracked by PID file: start, liveness, stop.

A service runs in its own session (so ``stack down`` can signal its whole process group) with
stdout and stderr in ``<home>/<service>/<service>.log``. The PID file records the PID and a
marker that must appear in ``/proc/<pid>/cmdline``, so a recycled PID is never signalled.
"""

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

# Started through a short-lived launcher, a service is not our child: it belongs to init,
# which reaps it, so a long-lived caller (tests) neither collects zombies nor holds handles.
_LAUNCHER = """
import os, subprocess, sys
with open(sys.argv[1], "ab") as log:
    proc = subprocess.Popen(sys.argv[2:], stdin=subprocess.DEVNULL, stdout=log,
                            stderr=subprocess.STDOUT, start_new_session=True)
print(proc.pid, flush=True)
os._exit(0)
"""


class ServiceError(RuntimeError):
    """A service failed to install, start, become healthy or stop."""


@dataclass(frozen=True, slots=True)
class Tracked:
    """A started service process as recorded on disk."""

    pid: int
    marker: str


def read_pid_file(path: Path) -> Tracked | None:
    try:
        pid, marker = path.read_text().split("\n", 1)
        return Tracked(int(pid), marker.strip())
    except (FileNotFoundError, ValueError):
        return None


def is_alive(tracked: Tracked) -> bool:
    """True when the PID runs, is not a zombie, and is still the process we started."""
    proc = Path(f"/proc/{tracked.pid}")
    try:
        state = (proc / "stat").read_text().rsplit(")", 1)[1].split()[0]
        cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        threads = len(list((proc / "task").iterdir()))
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return False
    if state == "Z":
        # The main thread has exited, but until the last thread has, the process still holds
        # its sockets: a Go server that freed gigabytes kept its port past this point.
        return threads > 1
    # An empty cmdline is a process between fork and exec (some servers re-exec at start).
    return not cmdline.strip() or tracked.marker in cmdline


def spawn(
    argv: Sequence[str],
    *,
    marker: str,
    pid_file: Path,
    log_file: Path,
    cwd: Path,
    env: dict[str, str] | None = None,
) -> Tracked:
    """Start ``argv`` detached in its own session and record it in ``pid_file``."""
    log_file.parent.mkdir(parents=True, exist_ok=True)
    launched = subprocess.run(
        [sys.executable, "-c", _LAUNCHER, str(log_file), *argv],
        cwd=cwd,
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        check=False,
    )
    if launched.returncode != 0:
        raise ServiceError(f"{argv[0]}: could not start: {launched.stderr.strip()[-300:]}")
    tracked = Tracked(int(launched.stdout), marker)
    pid_file.write_text(f"{tracked.pid}\n{marker}\n")
    return tracked


def wait_until(
    check: Callable[[], bool],
    *,
    timeout_s: float,
    alive: Callable[[], bool] = lambda: True,
    interval_s: float = 0.2,
) -> bool:
    """Poll ``check`` until it is true, ``alive`` turns false, or the timeout passes."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if check():
            return True
        if not alive():
            return False
        time.sleep(interval_s)
    return check()


def stop(tracked: Tracked, *, grace_s: float) -> None:
    """SIGTERM the process group, wait ``grace_s``, then SIGKILL what is left."""
    if not is_alive(tracked):
        return
    for sig, wait_s in ((signal.SIGTERM, grace_s), (signal.SIGKILL, 10.0)):
        try:
            os.killpg(tracked.pid, sig)
        except ProcessLookupError:
            return
        if wait_until(lambda: not is_alive(tracked), timeout_s=wait_s):
            return
    raise ServiceError(f"process {tracked.pid} did not stop")
