"""rclone 1.60 (Debian's package) on a workload: ``rclone copy`` through a ``crypt`` remote to
each of the three stores at once, then ``rclone cryptcheck`` of each, the same figures as
``bench.pipeline``.

    .venv/bin/python -m bench.rclone --workload b

The package is fetched with ``apt-get download`` and unpacked under ``<home>/tools/rclone``
(no root, nothing installed system-wide). Remotes are configured through environment
variables only: S3 with SSE-KMS under the same key as MovingData, Azure through an account SAS
(rclone 1.60 cannot take a custom Azure endpoint otherwise), GCS anonymous at the emulator.
The crypt password is random per run and never written down.
"""

import argparse
import asyncio
import json
import os
import secrets
import subprocess
import tempfile
import time
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from azure.storage.blob import AccountSasPermissions, ResourceTypes, generate_account_sas

from bench.report import Processes, percentiles, print_rows, throughput, write_json
from bench.workloads import WORKLOADS, materialise
from workers.settings import Settings, load_settings

VERSION = "v1.60"
REMOTES = {"s3": "S3", "azure": "AZURE", "gcs": "GCS"}


def ensure_rclone(home: Path) -> Path:
    """The project-local rclone binary, unpacked from Debian's package on first use."""
    root = home / "tools" / "rclone"
    binary = root / "usr" / "bin" / "rclone"
    if not binary.exists():
        root.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=root) as tmp:
            os.chmod(tmp, 0o755)  # apt fetches as its own user
            subprocess.run(["apt-get", "download", "-q", "rclone"], cwd=tmp, check=True)
            (deb,) = Path(tmp).glob("rclone_*.deb")
            subprocess.run(["dpkg-deb", "-x", str(deb), str(root)], check=True)
    version = subprocess.run([binary, "version"], capture_output=True, text=True, check=True)
    if not version.stdout.startswith(f"rclone {VERSION}"):
        raise RuntimeError(f"expected rclone {VERSION}, got {version.stdout.splitlines()[0]}")
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

    def __init__(self, settings: Settings, bucket: str) -> None:
        self.binary = ensure_rclone(settings.home)
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
            "AZURE_SAS_URL": azure_sas_url(settings),
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

    def start(self, args: Sequence[str], log: Path) -> subprocess.Popen[bytes]:
        command = [str(self.binary), *args, "--use-json-log", "-v", "--log-file", str(log)]
        return subprocess.Popen(command, env=self.env, stdout=subprocess.DEVNULL)

    def run_all(self, verb: str, args: Sequence[str], logs: Path) -> list[subprocess.Popen[bytes]]:
        """``verb`` against every store at once, one process each."""
        return [
            self.start([verb, *[a.format(remote=r) for a in args]], logs / f"{verb}-{r}.log")
            for r in REMOTES.values()
        ]

    def purge(self, logs: Path) -> None:
        for proc in self.run_all("purge", ["{remote}:" + self.bucket], logs):
            proc.wait()


async def wait_sampling(procs: list[subprocess.Popen[bytes]]) -> tuple[list[int], int]:
    """Exit codes and the peak RSS of any one process in MiB, sampled every 100 ms."""
    sampled = Processes({"rclone": procs})
    while any(p.poll() is None for p in procs):
        sampled.sample()
        await asyncio.sleep(0.1)
    return [p.wait() for p in procs], sampled.memory()["rclone"]["peak_MiB"]


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


async def run(base: Settings, workload: str) -> dict[str, Any]:
    spec = WORKLOADS[workload]
    folder = materialise(spec, base.home / "bench" / "workloads")
    bucket = f"rc{workload}{uuid.uuid4().hex[:6]}"
    logs = base.home / "bench" / "logs" / bucket
    logs.mkdir(parents=True)
    rclone = Rclone(base, bucket)
    codes, _ = await wait_sampling(rclone.run_all("mkdir", ["{remote}:" + bucket], logs))
    if any(codes):
        raise RuntimeError(f"rclone mkdir failed, see {logs}")
    try:
        began, wall = time.monotonic(), datetime.now(UTC)
        copy_codes, copy_peak = await wait_sampling(
            rclone.run_all("copy", [str(folder), "{remote}C:"], logs)
        )
        copied = time.monotonic()
        check_codes, check_peak = await wait_sampling(
            rclone.run_all("cryptcheck", [str(folder), "{remote}C:"], logs)
        )
        ended = time.monotonic()
    finally:
        rclone.purge(logs)
    done = copied_at(logs)
    files = sorted(folder.iterdir())
    total = sum(f.stat().st_size for f in files)
    latency = [(done[f.name] - wall).total_seconds() for f in files if f.name in done]
    seconds = ended - began
    return {
        "tool": "rclone",
        "workload": workload,
        **throughput(len(files), total, seconds),
        "latency_s": percentiles(latency),
        "stage_s": {"copy": round(copied - began, 2), "cryptcheck": round(ended - copied, 2)},
        "peak_rss_MiB": {"copy": copy_peak, "cryptcheck": check_peak},
        "failures": len(files) - len(done) + sum(1 for c in copy_codes + check_codes if c),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--workload", choices=sorted(WORKLOADS), default="b")
    args = parser.parse_args()
    result = asyncio.run(run(load_settings(), args.workload))
    print_rows([result])
    write_json(f"rclone-{args.workload}", result)


if __name__ == "__main__":
    main()
