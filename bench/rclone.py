"""rclone on a workload: ``rclone copy`` through a ``crypt`` remote to each of the three
stores at once, then ``rclone cryptcheck`` of each, the same figures as ``bench.pipeline``.

    .venv/bin/python -m bench.rclone --workload b [--version 1.76]

One run gives rclone's figure in both verification modes: ``copy`` alone is store-digest
(rclone compares each store's hash of the upload with its own), ``copy`` then ``cryptcheck``
is read-back (every replica read back, decrypted and hashed).

Two versions, each ratio taken against the faster on that workload: Debian's 1.60
(``apt-get download``, unpacked under ``<home>/tools/rclone``) and 1.76 (``go install`` from the
Go module proxy into ``<home>/tools/rclone-1.76/bin``, a few minutes once). Nothing is installed
system-wide. Remotes are configured through environment variables only: S3 with SSE-KMS under
the same key as MovingData; Azure through an account SAS on 1.60 (it cannot take a custom Azure
endpoint otherwise), account key and endpoint on 1.76; GCS anonymous at the emulator. The crypt
password is random per run and never written down.
"""

import argparse
import asyncio
import json
import os
import secrets
import subprocess
import tempfile
import threading
import time
import uuid
from collections.abc import Sequence
from contextlib import suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import IO, Any

import psutil
from azure.storage.blob import AccountSasPermissions, ResourceTypes, generate_account_sas

from bench.report import (
    cpu_by_name,
    cpu_delta,
    percentiles,
    print_rows,
    service_pids,
    throughput,
    write_json,
)
from bench.workloads import WORKLOADS, materialise
from workers.settings import Settings, load_settings

VERSIONS = ("1.60", "1.76")
GO_MODULE = "github.com/rclone/rclone@v1.76.0"
REMOTES = {"s3": "S3", "azure": "AZURE", "gcs": "GCS"}


def install_debian(root: Path) -> None:
    root.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=root) as tmp:
        os.chmod(tmp, 0o755)  # apt fetches as its own user
        subprocess.run(["apt-get", "download", "-q", "rclone"], cwd=tmp, check=True)
        (deb,) = Path(tmp).glob("rclone_*.deb")
        subprocess.run(["dpkg-deb", "-x", str(deb), str(root)], check=True)


def install_go(root: Path) -> None:
    env = {**os.environ, "GOBIN": str((root / "bin").resolve()), "GOFLAGS": "-mod=mod"}
    print(f"building rclone {GO_MODULE} (a few minutes, once)", flush=True)
    subprocess.run(["go", "install", GO_MODULE], env=env, check=True, cwd=root)


def ensure_rclone(home: Path, version: str = "1.76") -> Path:
    """The project-local rclone binary of ``version``, fetched or built on first use."""
    if version == "1.60":
        root = home / "tools" / "rclone"
        binary, install = root / "usr" / "bin" / "rclone", install_debian
    elif version == "1.76":
        root = home / "tools" / "rclone-1.76"
        binary, install = root / "bin" / "rclone", install_go
    else:
        raise ValueError(f"rclone {version}: not one of {VERSIONS}")
    if not binary.exists():
        root.mkdir(parents=True, exist_ok=True)
        install(root)
    found = subprocess.run([binary, "version"], capture_output=True, text=True, check=True)
    if not found.stdout.startswith(f"rclone v{version}."):  # go install's build says -DEV
        raise RuntimeError(f"expected rclone {version}, got {found.stdout.splitlines()[0]}")
    return binary


def azure_sas_url(settings: Settings) -> str:
    token = generate_account_sas(
        settings.azure_account,
        settings.azure_key.get_secret_value(),
        ResourceTypes(service=True, container=True, object=True),
        AccountSasPermissions(read=True, write=True, delete=True, list=True, add=True, create=True),
        expiry=datetime.now(UTC) + timedelta(hours=6),
    )
    return f"{settings.azure_endpoint}?{token}"


class Rclone:
    """The binary plus an environment with one plain and one crypt remote per store."""

    def __init__(self, settings: Settings, bucket: str, version: str = "1.76") -> None:
        self.binary = ensure_rclone(settings.home, version)
        self.version = version
        assert settings.s3_access_key and settings.s3_secret_key
        obscured = subprocess.run(
            [self.binary, "obscure", "-"],
            input=secrets.token_urlsafe(24),
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        config = {
            "S3_TYPE": "s3",
            "S3_PROVIDER": "Other",
            "S3_ENDPOINT": settings.s3_endpoint,
            "S3_REGION": settings.s3_region,
            "S3_ACCESS_KEY_ID": settings.s3_access_key.get_secret_value(),
            "S3_SECRET_ACCESS_KEY": settings.s3_secret_key.get_secret_value(),
            "S3_SERVER_SIDE_ENCRYPTION": "aws:kms",
            "S3_SSE_KMS_KEY_ID": settings.s3_kms_key_id,
            "AZURE_TYPE": "azureblob",
            **azure_config(settings, version),
            "GCS_TYPE": "gcs",
            "GCS_ANONYMOUS": "true",
            "GCS_ENDPOINT": f"{settings.gcs_endpoint}/storage/v1/",
            "GCS_PROJECT_NUMBER": settings.gcs_project,
        }
        for remote in REMOTES.values():
            config[f"{remote}C_TYPE"] = "crypt"
            config[f"{remote}C_REMOTE"] = f"{remote}:{bucket}"
            config[f"{remote}C_PASSWORD"] = obscured
        env = {k: v for k, v in os.environ.items() if k != "AWS_CA_BUNDLE"}
        self.env = {**env, "RCLONE_CONFIG": os.devnull}
        self.env.update({f"RCLONE_CONFIG_{k}": v for k, v in config.items()})
        self.bucket = bucket

    def start(
        self, args: Sequence[str], log: Path, stdout: int = subprocess.DEVNULL
    ) -> subprocess.Popen[bytes]:
        command = [str(self.binary), *args, "--use-json-log", "-v", "--log-file", str(log)]
        return subprocess.Popen(command, env=self.env, stdout=stdout)

    def run_all(
        self, verb: str, args: Sequence[str], logs: Path, stdout: int = subprocess.DEVNULL
    ) -> dict[str, subprocess.Popen[bytes]]:
        """``verb`` against every store at once, one process each, by store."""
        return {
            store: self.start(
                [verb, *[a.format(remote=r) for a in args]], logs / f"{verb}-{r}.log", stdout
            )
            for store, r in REMOTES.items()
        }

    def purge(self, logs: Path) -> None:
        for proc in self.run_all("purge", ["{remote}:" + self.bucket], logs).values():
            proc.wait()


def azure_config(settings: Settings, version: str) -> dict[str, str]:
    if version == "1.60":
        return {"AZURE_SAS_URL": azure_sas_url(settings)}
    return {
        "AZURE_ACCOUNT": settings.azure_account,
        "AZURE_KEY": settings.azure_key.get_secret_value(),
        "AZURE_ENDPOINT": settings.azure_endpoint,
    }


@dataclass
class Finished:
    """What a set of processes left behind: exit codes, CPU seconds, the largest peak RSS."""

    codes: dict[str, int] = field(default_factory=dict)
    cpu_s: dict[str, float] = field(default_factory=dict)
    peak_MiB: int = 0


async def wait_sampling(procs: dict[str, subprocess.Popen[bytes]]) -> Finished:
    """Wait for every process, sampling RSS every 100 ms; reap each with ``wait4`` for its
    exact CPU time (user + system), which psutil can no longer read once it has exited."""
    done = Finished()
    peak = 0
    left = dict(procs)
    while left:
        for name, proc in list(left.items()):
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                proc.returncode = os.waitstatus_to_exitcode(status)
                done.codes[name] = proc.returncode
                done.cpu_s[name] = round(usage.ru_utime + usage.ru_stime, 2)
                del left[name]
                continue
            with suppress(psutil.NoSuchProcess):
                peak = max(peak, psutil.Process(proc.pid).memory_info().rss)
        await asyncio.sleep(0.1)
    done.peak_MiB = peak >> 20
    return done


def copied_at(logs: Path) -> dict[str, datetime]:
    """Per file, when its last store reported it copied (rclone's JSON log)."""
    done: dict[str, datetime] = {}
    for log in logs.glob("copy-*.log"):
        for line in log.read_text().splitlines():
            entry = json.loads(line) if line.startswith("{") else {}
            if entry.get("msg", "").startswith("Copied"):
                at = datetime.fromisoformat(entry["time"])
                done[entry["object"]] = max(done.get(entry["object"], at), at)
    return done


def timestamp_lines(stream: IO[bytes], seen: dict[str, list[datetime]]) -> threading.Thread:
    """A thread recording when each line of ``stream`` arrived (``--combined -``: "= name" per
    file as cryptcheck finds it matching)."""

    def read() -> None:
        for line in stream:
            sigil, _, name = line.decode().rstrip("\n").partition(" ")
            if sigil == "=":
                seen.setdefault(name, []).append(datetime.now(UTC))

    thread = threading.Thread(target=read, daemon=True)
    thread.start()
    return thread


def mode_result(
    base: dict[str, Any],
    mode: str,
    files: int,
    total: int,
    seconds: float,
    latency: list[float],
    cpu: dict[str, float],
    peak: int,
    failures: int,
) -> dict[str, Any]:
    return {
        **base,
        "mode": mode,
        **throughput(files, total, seconds),
        "latency_s": percentiles(latency),
        "cpu_s": cpu,
        "cpu_total_s": round(sum(cpu.values()), 1),
        "peak_rss_MiB": peak,
        "failures": failures,
    }


async def run(base: Settings, workload: str, version: str = "1.76") -> list[dict[str, Any]]:
    """One copy + cryptcheck run: the store-digest figure (copy) and the read-back figure
    (copy, then cryptcheck), with CPU seconds per rclone process and per service."""
    spec = WORKLOADS[workload]
    folder = materialise(spec, base.home / "bench" / "workloads")
    bucket = f"rc{version.replace('.', '')}{workload}{uuid.uuid4().hex[:6]}"
    logs = base.home / "bench" / "logs" / bucket
    logs.mkdir(parents=True)
    rclone = Rclone(base, bucket, version)
    made = await wait_sampling(rclone.run_all("mkdir", ["{remote}:" + bucket], logs))
    if any(made.codes.values()):
        raise RuntimeError(f"rclone mkdir failed, see {logs}")
    services = {name: [pid] for name, pid in service_pids(base).items()}
    checked: dict[str, list[datetime]] = {}
    try:
        cpu_before = cpu_by_name(services)
        began, wall = time.monotonic(), datetime.now(UTC)
        copy = await wait_sampling(rclone.run_all("copy", [str(folder), "{remote}C:"], logs))
        copied = time.monotonic()
        cpu_copied = cpu_by_name(services)
        procs = rclone.run_all(
            "cryptcheck", [str(folder), "{remote}C:", "--combined", "-"], logs, subprocess.PIPE
        )
        readers = [timestamp_lines(p.stdout, checked) for p in procs.values() if p.stdout]
        check = await wait_sampling(procs)
        ended = time.monotonic()
        cpu_checked = cpu_by_name(services)
        for reader in readers:
            reader.join(timeout=10)
    finally:
        rclone.purge(logs)
    done = copied_at(logs)
    files = sorted(folder.iterdir())
    total = sum(f.stat().st_size for f in files)
    copy_failures = len(files) - len(done) + sum(1 for c in copy.codes.values() if c)
    check_failures = sum(1 for f in files if len(checked.get(f.name, ())) < len(REMOTES))
    check_failures += sum(1 for c in check.codes.values() if c)
    common = {"tool": f"rclone {version}", "version": version, "workload": workload}
    copy_cpu = {f"copy {s}": c for s, c in copy.cpu_s.items()}
    copy_cpu |= cpu_delta(cpu_before, cpu_copied)
    check_cpu = {f"cryptcheck {s}": c for s, c in check.cpu_s.items()}
    check_cpu |= cpu_delta(cpu_copied, cpu_checked)
    both_cpu = {k: round(copy_cpu.get(k, 0) + check_cpu.get(k, 0), 2) for k in copy_cpu | check_cpu}
    return [
        mode_result(
            common,
            "store-digest",
            len(files),
            total,
            copied - began,
            [(done[f.name] - wall).total_seconds() for f in files if f.name in done],
            copy_cpu,
            copy.peak_MiB,
            copy_failures,
        ),
        mode_result(
            common
            | {
                "stage_s": {
                    "copy": round(copied - began, 2),
                    "cryptcheck": round(ended - copied, 2),
                }
            },
            "read-back",
            len(files),
            total,
            ended - began,
            [(max(checked[f.name]) - wall).total_seconds() for f in files if f.name in checked],
            both_cpu,
            max(copy.peak_MiB, check.peak_MiB),
            copy_failures + check_failures,
        ),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--workload", choices=sorted(WORKLOADS), default="b")
    parser.add_argument("--version", choices=VERSIONS, default="1.76")
    args = parser.parse_args()
    results = asyncio.run(run(load_settings(), args.workload, args.version))
    print_rows([{k: v for k, v in r.items() if k != "cpu_s"} for r in results])
    for result in results:
        print(result["mode"], json.dumps(result["cpu_s"]))
    write_json(f"rclone-{args.version}-{args.workload}", results)


if __name__ == "__main__":
    main()
