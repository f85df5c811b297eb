"""``movingdata sync`` through real workers: a source bucket on the local S3 store synced into
every target, a re-sync that moves nothing, changes, deletions and filters, and a scanner
stopped part-way through a listing that resumes with no second version."""

import subprocess
from collections.abc import AsyncIterator
from typing import Any

import httpx
import orjson
import pytest

from tests.e2e.conftest import bearer, is_problem, token
from tests.pipeline import MOVINGDATA, Pipeline
from tests.stores import remove_container
from tests.waiting import wait_for
from workers.client.state import State
from workers.stores import open_store
from workers.stores.base import ObjectStore

TARGETS = ("s3", "azure", "gcs")


@pytest.fixture
def pipeline_overrides(unique: str) -> dict[str, object]:
    return {"source_buckets": (f"{unique}-src",), "sync_page": 2}


@pytest.fixture
async def source(pipeline: Pipeline) -> AsyncIterator[ObjectStore]:
    """An allowed source bucket on the local S3 store, removed after."""
    settings = pipeline.settings
    store = open_store(f"s3://{settings.source_buckets[0]}", settings)
    await store.ensure_container()
    yield store
    await remove_container(store, "s3", settings.source_buckets[0], settings)


async def put_objects(store: ObjectStore, objects: dict[str, bytes]) -> None:
    for key, data in objects.items():
        await store.write(key, chunks(data))


async def chunks(data: bytes) -> AsyncIterator[bytes]:
    yield data


def synced(pipeline: Pipeline, *args: str) -> dict[str, Any]:
    done = pipeline.cli("sync", *args, "--wait", "--json", "--timeout", "240")
    assert done.returncode == 0, done.stdout + done.stderr
    (view,) = [orjson.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    return view


async def newest(state: State, tenant: str = "default") -> dict[str, dict[str, Any]]:
    """Each name's newest version."""
    return {doc["name"]: doc for doc in (await state.listing(tenant=tenant, limit=1000)).rows}


def verified_everywhere(doc: dict[str, Any]) -> bool:
    replicas = doc.get("replicas") or {}
    return doc.get("state") == "verified" and all(
        (replicas.get(t) or {}).get("verified_at") for t in TARGETS
    )


async def test_sync_moves_what_changed_and_removes_what_is_gone(
    pipeline: Pipeline,
    worker_all: subprocess.Popen[bytes],
    state: State,
    source: ObjectStore,
) -> None:
    url = f"s3://{pipeline.settings.source_buckets[0]}/estate"
    await put_objects(
        source,
        {
            "estate/a.txt": b"alpha",
            "estate/b.txt": b"bravo",
            "estate/docs/c.txt": b"charlie",
            "estate/docs/d.log": b"delta log",
            "estate/tmp/e.txt": b"scratch",
            "estate/docs/deep/f.txt": b"foxtrot",
            "outside/g.txt": b"not below the folder",
        },
    )
    rules = ("--exclude", "/tmp/**", "--to", ",".join(TARGETS), "--prefix", "in/")

    first = synced(pipeline, url, *rules)
    assert first["counts"] | {"bytes": 0} == {
        "seen": 6, "new": 5, "changed": 0, "unchanged": 0, "delete": 0, "refused": 0, "bytes": 0
    }  # fmt: skip
    assert (first["moved"], first["planned"], first["errors"]) == (5, 5, 0)
    names = await newest(state)
    assert sorted(names) == ["in/a.txt", "in/b.txt", "in/docs/c.txt", "in/docs/d.log",
                             "in/docs/deep/f.txt"]  # fmt: skip
    assert all(verified_everywhere(doc) for doc in names.values())
    assert names["in/a.txt"]["source_fingerprint"].startswith("etag:")

    again = synced(pipeline, url, *rules)
    assert (again["counts"]["unchanged"], again["planned"], again["counts"]["bytes"]) == (5, 0, 0)
    assert await newest(state) == names  # nothing moved, no version made

    await put_objects(source, {"estate/a.txt": b"alpha, revised", "estate/h.txt": b"hotel"})
    await source.delete("estate/b.txt")
    plan = pipeline.cli("sync", url, *rules, "--delete", "--dry-run", "--json")
    assert plan.returncode == 0, plan.stderr
    planned = {(d["name"], d["action"]) for d in map(orjson.loads, plan.stdout.splitlines())}
    assert {p for p in planned if p[1] != "unchanged"} == {
        ("in/a.txt", "changed"), ("in/h.txt", "new"), ("in/b.txt", "delete")
    }  # fmt: skip

    third = synced(pipeline, url, *rules, "--delete")
    counts = third["counts"]
    assert (counts["new"], counts["changed"], counts["delete"], counts["unchanged"]) == (1, 1, 1, 3)
    assert (third["moved"], third["removed"], third["errors"]) == (2, 1, 0)
    after = await newest(state)
    assert after["in/a.txt"]["version"] == 2 and verified_everywhere(after["in/a.txt"])
    assert after["in/h.txt"]["version"] == 1 and verified_everywhere(after["in/h.txt"])
    assert after["in/b.txt"]["state"] == "deleted"
    assert {n: d["version"] for n, d in after.items() if n not in ("in/a.txt", "in/h.txt")} == {
        "in/b.txt": 1, "in/docs/c.txt": 1, "in/docs/d.log": 1, "in/docs/deep/f.txt": 1
    }  # fmt: skip

    # Filters, in order, first match wins; an include leaves out the rest.
    only_logs = pipeline.cli("sync", url, "--include", "*.log", "--dry-run", "--json")
    lines = [orjson.loads(line) for line in only_logs.stdout.splitlines()]
    assert [d["name"] for d in lines] == ["docs/d.log"]
    ordered = pipeline.cli(
        "sync", url, "--exclude", "docs/deep/**", "--include", "docs/**", "--dry-run", "--json"
    )
    lines = [orjson.loads(line) for line in ordered.stdout.splitlines()]
    assert sorted(d["name"] for d in lines) == ["docs/c.txt", "docs/d.log"]

    jobs = pipeline.cli("sync", "list", "--json")
    assert len(jobs.stdout.splitlines()) == 3
    assert pipeline.cli("sync", "status", third["id"], "--json").returncode == 0
    assert pipeline.cli("sync", "cancel", third["id"]).returncode == 4  # listed already
    assert pipeline.cli("sync", "cancel", "sync-nothing").returncode == 3


async def test_a_scanner_stopped_mid_listing_resumes_with_no_second_version(
    pipeline: Pipeline, state: State, source: ObjectStore
) -> None:
    url = f"s3://{pipeline.settings.source_buckets[0]}"
    await put_objects(source, {f"k{i:03}.bin": f"object {i}".encode() for i in range(100)})
    scanner = pipeline.start_worker("scan")
    started = pipeline.cli("sync", url, "--json")
    assert started.returncode == 0, started.stderr
    job = orjson.loads(started.stdout)["id"]

    async def some_pages() -> bool:
        return await state.db["sync_pages"].count_documents({"job": job}) >= 3

    await wait_for(some_pages, timeout_s=120, interval_s=0.1)
    scanner.kill()  # part-way through the listing (50 pages of 2)
    scanner.wait()
    assert await state.db["sync_pages"].count_documents({"job": job}) < 50
    pipeline.start_worker("scan")
    pipeline.start_worker("ingest,encrypt,replicate,verify,tier,delete,retry,sink")

    async def done() -> bool:
        shown = pipeline.cli("sync", "status", job, "--json")
        return bool(orjson.loads(shown.stdout)["done"])

    await wait_for(done, timeout_s=240, interval_s=1)
    final = orjson.loads(pipeline.cli("sync", "status", job, "--json").stdout)
    assert (final["counts"]["seen"], final["moved"], final["errors"]) == (100, 100, 0)
    versions = [doc async for doc in state.db["objects"].find({}, {"name": 1, "version": 1})]
    assert len(versions) == 100 and {d["version"] for d in versions} == {1}


async def test_sync_through_the_api_and_the_cli_with_a_token(
    pipeline: Pipeline, api: str, state: State, source: ObjectStore
) -> None:
    bucket = pipeline.settings.source_buckets[0]
    await put_objects(source, {"x/1.txt": b"one", "x/2.txt": b"two", "x/skip.tmp": b"no"})
    writer = token(pipeline, "syncer", "writer", "acme")
    body = {"source": f"s3://{bucket}/x", "rules": [{"kind": "exclude", "glob": "*.tmp"}]}
    async with httpx.AsyncClient(base_url=api, headers=bearer(writer), timeout=60) as http:
        plan = await http.post("/v1/syncs/plan", json=body)
        assert plan.status_code == 200, plan.text
        assert [(p["name"], p["action"]) for p in plan.json()] == [
            ("1.txt", "new"),
            ("2.txt", "new"),
        ]
        created = await http.post("/v1/syncs", json=body)
        assert created.status_code == 202, created.text
        job = created.json()["id"]
        assert created.json()["tenant"] == "acme"

        async def done() -> bool:
            return bool((await http.get(f"/v1/syncs/{job}")).json()["done"])

        await wait_for(done, timeout_s=180)
        shown = (await http.get(f"/v1/syncs/{job}")).json()
        assert (shown["moved"], shown["counts"]["seen"], shown["errors"]) == (2, 3, 0)
        assert [j["id"] for j in (await http.get("/v1/syncs")).json()] == [job]
        assert is_problem(await http.delete(f"/v1/syncs/{job}"), 409)  # listed already
        refused = await http.post("/v1/syncs", json=body | {"source": "s3://someone-elses"})
        assert is_problem(refused, 403)
    assert sorted(await newest(state, "acme")) == ["1.txt", "2.txt"]

    env = pipeline.env | {"MOVINGDATA_API_URL": api, "MOVINGDATA_TOKEN": writer}
    again = subprocess.run(
        [MOVINGDATA, "sync", f"s3://{bucket}/x", "--exclude", "*.tmp", "--wait", "--json"],
        env=env, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert again.returncode == 0, again.stdout + again.stderr
    view = orjson.loads(again.stdout)
    assert (view["counts"]["unchanged"], view["planned"]) == (2, 0)


@pytest.mark.parametrize(("scheme", "backend"), [("azure", "azure"), ("gs", "gcs")])
async def test_sync_from_an_azure_container_and_a_gcs_bucket(
    pipeline: Pipeline,
    worker_all: subprocess.Popen[bytes],
    state: State,
    scheme: str,
    backend: str,
) -> None:
    settings = pipeline.settings
    bucket = settings.source_buckets[0]
    store = open_store(f"{scheme}://{bucket}", settings)
    await store.ensure_container()
    try:
        await put_objects(store, {"in/one.txt": b"one", "in/two.txt": b"two"})
        first = synced(pipeline, f"{scheme}://{bucket}/in")
        assert (first["moved"], first["errors"]) == (2, 0)
        names = await newest(state)
        assert sorted(names) == ["one.txt", "two.txt"]
        assert all(verified_everywhere(doc) for doc in names.values())
        await put_objects(store, {"in/two.txt": b"two, changed"})
        again = synced(pipeline, f"{scheme}://{bucket}/in")
        assert (again["counts"]["unchanged"], again["counts"]["changed"], again["moved"]) == (
            1,
            1,
            1,
        )
        assert (await newest(state))["two.txt"]["version"] == 2
        if scheme == "gs":  # its listing reports MD5 and CRC32C: --checksum has them to compare
            plan = pipeline.cli(
                "sync", f"{scheme}://{bucket}/in", "--checksum", "--dry-run", "--json"
            )
            assert {orjson.loads(line)["action"] for line in plan.stdout.splitlines()} == {
                "unchanged"
            }
    finally:
        await remove_container(store, backend, bucket, settings)
