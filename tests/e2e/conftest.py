"""E2E tests use the shared pipeline fixtures (tests/pipeline.py), and a real ``movingdata
api`` process with tokens made by the real CLI."""

import socket
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from tests.pipeline import Pipeline, pipeline, pipeline_overrides, source_dir, state, worker_all
from tests.waiting import wait_for

__all__ = ["api", "pipeline", "pipeline_overrides", "source_dir", "state", "worker_all"]
MiB = 1024 * 1024


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
async def api(pipeline: Pipeline, worker_all: subprocess.Popen[bytes]) -> AsyncIterator[str]:
    """A ``movingdata api`` process configured like the pipeline, on a free port."""
    port = free_port()
    env = {
        **pipeline.env,
        "MOVINGDATA_API_MAX_UPLOAD_BYTES": str(40 * MiB),
        "MOVINGDATA_API_RATE_PER_MINUTE": "100000",
    }
    with (pipeline.logs / "api.log").open("wb") as log:
        proc = subprocess.Popen(
            [str(Path(sys.executable).parent / "movingdata"), "api", "--port", str(port)],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    url = f"http://127.0.0.1:{port}"

    async def answers() -> bool:
        assert proc.poll() is None, (pipeline.logs / "api.log").read_text()
        try:
            async with httpx.AsyncClient() as http:
                return (await http.get(f"{url}/healthz", timeout=1)).status_code == 200
        except httpx.HTTPError:
            return False

    await wait_for(answers, timeout_s=60)
    yield url
    proc.terminate()
    proc.wait(timeout=30)


def token(pipeline: Pipeline, name: str, role: str, tenant: str = "default") -> str:
    return scoped(pipeline, name, "--role", role, "--tenant", tenant)


def scoped(pipeline: Pipeline, name: str, *options: str) -> str:
    """A token made by ``movingdata tokens create NAME OPTIONS``."""
    made = pipeline.cli("tokens", "create", name, *options)
    assert made.returncode == 0, made.stderr
    return made.stdout.strip()


def bearer(value: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {value}"}


async def put_verified(
    http: httpx.AsyncClient, name: str, content: bytes, headers: dict[str, str]
) -> str:
    """Upload ``content`` as ``name``, waiting until it is verified; return its object id."""
    put = await http.post(
        "/v1/objects", params={"name": name, "wait": "true"}, content=content, headers=headers
    )
    assert put.json()["outcome"] == "verified", put.text
    return str(put.json()["object_id"])


def is_problem(answer: httpx.Response, status: int) -> bool:
    return (
        answer.status_code == status
        and answer.headers["content-type"].startswith("application/problem+json")
        and answer.json()["status"] == status
    )
