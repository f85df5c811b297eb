"""deploy/compose/compose.yaml started for real (on Podman, tests/deploy/deployment.py), its
backing services stand-ins built from the local stack's packages (deploy/README.md): every
service healthy; an object put through the published API, verified in the three stores (by
the pipeline, and by reading each replica back from inside the deployment) and restored bit
for bit; a worker killed, after which the object still verifies and a new put does too;
``--scale replicate=2``; ``down --volumes`` leaving nothing behind.

The tests run in order on one deployment (module fixtures); each waits on conditions, never
on time. ``make test-compose`` runs them (``make test`` too, after the rest).
"""

import json
import os
import signal
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.deploy.podman.deployment import Deployment
from tests.waiting import wait_for

# A cold run builds the Compose plugin and every image before the first test (tens of minutes
# on two busy cores); the fixture's set-up counts towards the first test's time.
pytestmark = pytest.mark.timeout(3600)
MiB = 1024 * 1024
TARGETS = {"s3", "azure", "gcs"}

# Run in the API container: each replica's bytes read back from its store with the container's
# own settings and credentials, and their SHA-256 (the pipeline's ciphertext digest).
READ_BACK = """
import asyncio, hashlib, json, sys
from workers.deps import target_url
from workers.settings import load_settings
from workers.stores import open_store

async def main():
    settings = load_settings()
    digests = {}
    for target, key in json.loads(sys.argv[1]).items():
        store = open_store(target_url(target, settings), settings)
        try:
            digest = hashlib.sha256()
            async for chunk in store.read(key):
                digest.update(chunk)
            digests[target] = digest.hexdigest()
        finally:
            await store.close()
    print(json.dumps(digests))

asyncio.run(main())
"""


def services(deployment: Deployment) -> dict[str, list[dict[str, Any]]]:
    """Each service's containers (``compose ps --all``)."""
    found: dict[str, list[dict[str, Any]]] = {}
    for container in deployment.ps():
        found.setdefault(container["Service"], []).append(container)
    return found


def one_shot(service: dict[str, Any]) -> bool:
    return service.get("restart") == "no"


def not_yet_healthy(deployment: Deployment) -> list[str]:
    """Each service not as it should be (a long-running one's containers running and healthy,
    a one-shot's exited 0), with what it is instead."""
    wanted = deployment.services
    running = services(deployment)
    problems = [f"{name}: no container" for name in wanted if name not in running]
    for name, containers in running.items():
        for c in containers:
            if one_shot(wanted[name]):
                if c["State"] != "exited" or c["ExitCode"] != 0:
                    problems.append(f"{c['Name']}: {c['State']} (exit {c['ExitCode']})")
            elif c["State"] != "running" or c["Health"] != "healthy":
                problems.append(f"{c['Name']}: {c['State']}, {c['Health'] or 'no health'}")
    return problems


async def healthy_within(deployment: Deployment, timeout_s: float) -> None:
    last: list[str] = []

    async def check() -> bool:
        last[:] = not_yet_healthy(deployment)
        return not last

    try:
        await wait_for(check, timeout_s=timeout_s, interval_s=2)
    except TimeoutError:
        raise AssertionError(f"not healthy after {timeout_s:.0f} s: {last} (container logs in "
                             f"{deployment.logs / 'containers'})") from None  # fmt: skip


async def put(api: httpx.AsyncClient, name: str, content: bytes) -> str:
    answer = await api.post(
        "/v1/objects", params={"name": name, "wait": "true", "timeout": "300"}, content=content
    )
    assert answer.status_code == 201 and answer.json()["outcome"] == "verified", answer.text
    return str(answer.json()["object_id"])


async def latest(api: httpx.AsyncClient, object_id: str) -> dict[str, Any]:
    shown = await api.get(f"/v1/objects/{object_id}")
    assert shown.status_code == 200, shown.text
    return dict(max(shown.json()["versions"], key=lambda v: v["version"]))


async def assert_stored(
    deployment: Deployment, api: httpx.AsyncClient, object_id: str, content: bytes
) -> None:
    """Verified on every target by the pipeline; each replica read back from its store inside
    the deployment is the ciphertext the pipeline wrote; the API restores ``content``."""
    version = await latest(api, object_id)
    assert version["state"] == "verified", version
    assert set(version["replicas"]) == TARGETS, version["replicas"]
    assert {r["verdict"] for r in version["replicas"].values()} == {"good"}, version
    keys = {target: r["key"] for target, r in version["replicas"].items()}
    read_back = json.loads(deployment.exec("api", "python", "-c", READ_BACK, json.dumps(keys)))
    assert read_back == dict.fromkeys(TARGETS, version["ciphertext_sha256"])
    restored = await api.get(f"/v1/objects/{object_id}/content")
    assert restored.status_code == 200, restored.text
    assert restored.content == content


@pytest.fixture(scope="module")
def deployment() -> Iterator[Deployment]:
    """The deployment, up for this module; then down with its volumes, the Podman service
    stopped, and nothing of it left but images and caches, whatever the tests did."""
    running = Deployment()
    with running.running():
        yield running
    left = running.podman.leftovers()
    assert left == {}, f"the deployment left {left} behind"


@pytest.fixture(scope="module")
def writer(deployment: Deployment) -> str:
    """A writer's API token, made inside the deployment by the API container's own CLI."""
    made = deployment.exec(
        "api", "movingdata", "tokens", "create", "compose-test", "--role", "writer"
    )
    return made.strip()


@pytest.fixture(scope="module")
async def api(deployment: Deployment, writer: str) -> AsyncIterator[httpx.AsyncClient]:
    """The API as the deployment publishes it on the host, as the writer."""
    async with httpx.AsyncClient(
        base_url=deployment.api_url,
        headers={"Authorization": f"Bearer {writer}"},
        timeout=httpx.Timeout(30, read=330),
    ) as client:
        yield client


@pytest.fixture(scope="module")
async def first(deployment: Deployment, api: httpx.AsyncClient) -> tuple[str, bytes]:
    """One object put through the API (1 MiB of random bytes): its id and its content."""
    await healthy_within(deployment, timeout_s=300)
    content = os.urandom(MiB) + b"the end"
    return await put(api, "compose/first.bin", content), content


def worker_pid(deployment: Deployment, container: str) -> int:
    """The host pid of the MovingData process in ``container`` (init: true makes PID 1 an init
    whose child it is)."""
    init = int(deployment.podman.run("inspect", "--format", "{{.State.Pid}}", container).stdout)
    children = [
        int(stat.split()[0])
        for path in Path("/proc").glob("[0-9]*/stat")
        if (stat := read_stat(path)) and int(stat.rsplit(")", 1)[1].split()[1]) == init
    ]
    assert len(children) == 1, children
    return children[0]


def read_stat(path: Path) -> str:
    try:
        return path.read_text()
    except OSError:  # the process ended while the folder was listed
        return ""


def started_at(deployment: Deployment, container: str) -> str:
    return deployment.podman.run(
        "inspect", "--format", "{{.State.StartedAt}}", container
    ).stdout.strip()


async def test_every_service_becomes_healthy(deployment: Deployment) -> None:
    await healthy_within(deployment, timeout_s=300)
    running = services(deployment)
    assert set(running) == set(deployment.services)
    assert all(len(containers) == 1 for containers in running.values())
    assert deployment.record_memory("every service healthy") > 0


async def test_a_put_is_verified_in_three_stores_and_restored_bit_for_bit(
    deployment: Deployment, api: httpx.AsyncClient, first: tuple[str, bytes]
) -> None:
    object_id, content = first
    await assert_stored(deployment, api, object_id, content)


async def test_after_a_worker_is_killed_the_object_verifies_and_a_new_put_too(
    deployment: Deployment, api: httpx.AsyncClient, first: tuple[str, bytes]
) -> None:
    object_id, content = first
    (verify,) = services(deployment)["verify"]
    name = verify["Name"]
    before = started_at(deployment, name)
    killed_at = datetime.now(UTC)
    os.kill(worker_pid(deployment, name), signal.SIGKILL)  # as the kernel's OOM killer would

    # The restart policy (unless-stopped) brings it back, and its health check passes again.
    async def restarted() -> bool:
        (now,) = services(deployment)["verify"]
        return (
            started_at(deployment, name) != before
            and now["State"] == "running"
            and now["Health"] == "healthy"
        )

    await wait_for(restarted, timeout_s=240, interval_s=2)

    # A scrub re-reads every replica through the restarted verify stage.
    asked = await api.post(f"/v1/objects/{object_id}/verify", json={})
    assert asked.status_code == 202 and asked.json()["replicas"] == len(TARGETS), asked.text

    async def checked_again() -> bool:
        replicas = (await latest(api, object_id))["replicas"]
        return all(
            r["checked_at"] and datetime.fromisoformat(r["checked_at"]) > killed_at
            for r in replicas.values()
        )

    await wait_for(checked_again, timeout_s=240, interval_s=2)
    await assert_stored(deployment, api, object_id, content)
    after = os.urandom(MiB // 2)
    await assert_stored(deployment, api, await put(api, "compose/after-kill.bin", after), after)


async def test_replicate_scales_to_two_and_the_chain_still_verifies(
    deployment: Deployment, api: httpx.AsyncClient
) -> None:
    before = {c["ID"] for c in deployment.ps()}
    with deployment.phase("up --scale replicate=2"):
        deployment.up("--scale", "replicate=2")
    with deployment.phase("every service healthy again"):
        await healthy_within(deployment, timeout_s=300)
    replicate = services(deployment)["replicate"]
    assert len(replicate) == 2 and {c["State"] for c in replicate} == {"running"}, replicate
    added = {c["ID"] for c in deployment.ps()} - before
    assert added == {c["ID"] for c in replicate} - before and len(added) == 1, added
    content = os.urandom(MiB)
    with deployment.phase("a put verified after the scale"):
        object_id = await put(api, "compose/scaled.bin", content)
    await assert_stored(deployment, api, object_id, content)
    assert deployment.record_memory("with replicate scaled to two") > 0


def test_down_removes_containers_networks_and_volumes(deployment: Deployment) -> None:
    deployment.down()
    assert deployment.podman.leftovers(processes=False) == {}  # the service stops after
