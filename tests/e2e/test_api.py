"""The HTTP API as a client sees it: a real ``movingdata api`` process, real workers, real
services. Uploads and reads (0 B to 33 MiB, ranges), auth, scopes, expiry and tenant isolation,
bad input as problem+json with nothing left behind, readiness of a stopped store, metrics."""

import asyncio
import json
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from bench.relay import relay
from tests.e2e.conftest import bearer, free_port, is_problem, put_verified, scoped, token
from tests.pipeline import Pipeline
from tests.stores import raw_keys
from tests.waiting import wait_for
from workers.api import problems, tokens
from workers.api.app import create_app
from workers.client.state import State
from workers.deps import build_deps, version_prefix
from workers.settings import load_settings

MiB = 1024 * 1024
GCS = {"down": False}


@pytest.fixture
async def gcs_relay() -> AsyncIterator[str]:
    GCS["down"] = False
    async with relay(load_settings().gcs_endpoint, unavailable=lambda _: GCS["down"]) as url:
        yield url


@pytest.fixture
def pipeline_overrides(gcs_relay: str) -> dict[str, object]:
    return {"source_roots": (), "gcs_url": gcs_relay}


async def test_upload_and_read_back_over_http(pipeline: Pipeline, api: str) -> None:
    writer = bearer(token(pipeline, "w", "writer"))
    async with httpx.AsyncClient(base_url=api, timeout=600) as http:
        for size in (0, 1, 33 * MiB):
            data = os.urandom(size)
            put = await http.post(
                "/v1/objects",
                params={"name": f"up/{size}.bin", "wait": "true"},
                content=data,
                headers={**writer, "Content-Type": "application/octet-stream"},
            )
            assert put.status_code == 201, put.text
            answer = put.json()
            assert (answer["outcome"], answer["version"], answer["size"]) == ("verified", 1, size)
            back = await http.get(f"/v1/objects/{answer['object_id']}/content", headers=writer)
            assert back.status_code == 200 and back.content == data
            assert back.headers["etag"].strip('"') == answer["plaintext_sha256"]
            if size > 1:
                part = await http.get(
                    f"/v1/objects/{answer['object_id']}/content",
                    headers={**writer, "Range": "bytes=10-1048585"},
                )
                assert part.status_code == 206 and part.content == data[10:1048586]
                assert part.headers["content-range"] == f"bytes 10-1048585/{size}"
        shown = await http.get(f"/v1/objects/{answer['object_id']}", headers=writer)
        assert shown.json()["versions"][0]["state"] == "verified"
        listed = await http.get("/v1/objects", params={"prefix": "up/"}, headers=writer)
        assert [i["name"] for i in listed.json()["items"]] == [
            "up/0.bin", "up/1.bin", f"up/{33 * MiB}.bin",
        ]  # fmt: skip
        trail = await http.get(f"/v1/objects/{answer['object_id']}/audit", headers=writer)
        actions = [r["action"] for r in trail.json()]
        assert "object.accepted" in actions


async def test_auth_roles_and_tenant_isolation(pipeline: Pipeline, api: str) -> None:
    writer, reader = token(pipeline, "a-writer", "writer"), token(pipeline, "a-reader", "reader")
    other = token(pipeline, "b-reader", "reader", tenant="tenant-b")
    revoked = token(pipeline, "gone", "reader")
    assert pipeline.cli("tokens", "revoke", "gone").returncode == 0
    async with httpx.AsyncClient(base_url=api, timeout=300) as http:
        put = await http.post(
            "/v1/objects", params={"name": "mine.txt"}, content=b"a's data", headers=bearer(writer)
        )
        assert put.status_code == 202, put.text  # in flight
        object_id = put.json()["object_id"]
        assert is_problem(await http.get("/v1/objects"), 401)
        assert is_problem(await http.get("/v1/objects", headers=bearer("mdt_nope")), 401)
        assert is_problem(await http.get("/v1/objects", headers=bearer(revoked)), 401)
        refused = await http.post(
            "/v1/objects", params={"name": "x"}, content=b"x", headers=bearer(reader)
        )
        assert is_problem(refused, 403)
        assert is_problem(await http.get(f"/v1/objects/{object_id}", headers=bearer(other)), 404)
        theirs = await http.get("/v1/objects", headers=bearer(other))
        assert theirs.json()["items"] == []
        mine = await http.get(f"/v1/objects/{object_id}", headers=bearer(reader))
        assert mine.status_code == 200
        peek = await http.get("/v1/objects", params={"tenant": "default"}, headers=bearer(other))
        assert is_problem(peek, 403)
        assert is_problem(await http.get("/v1/deadletters", headers=bearer(reader)), 403)
    listed = pipeline.cli("tokens", "list", "--json")
    assert "mdt_" not in listed.stdout and '"gone"' in listed.stdout


async def test_what_a_token_restores_scrubs_and_deletes_is_recorded_as_the_token(
    pipeline: Pipeline, api: str
) -> None:
    """Every record a request makes names the token, its tenant and the request's id (the
    answer's ``X-Request-Id``), never the API process's user."""
    writer = bearer(token(pipeline, "auditor", "writer", tenant="acme"))
    async with httpx.AsyncClient(base_url=api, timeout=300) as http:
        object_id = await put_verified(http, "who.txt", b"who" * 100, writer)
        read = await http.get(f"/v1/objects/{object_id}/content", headers=writer)
        scrubbed = await http.post(f"/v1/objects/{object_id}/verify", headers=writer)
        deleted = await http.delete(f"/v1/objects/{object_id}", headers=writer)
        assert (read.status_code, scrubbed.status_code, deleted.status_code) == (200, 202, 202)
        asked = {
            "restore": read.headers["x-request-id"],
            "scrub": scrubbed.headers["x-request-id"],
            "delete.requested": deleted.headers["x-request-id"],
        }
        assert len(set(asked.values())) == 3

        async def trail() -> list[dict[str, Any]]:
            answer = await http.get(f"/v1/objects/{object_id}/audit", headers=writer)
            return answer.json()  # type: ignore[no-any-return]

        async def recorded() -> bool:
            actions = [r["action"] for r in await trail()]
            return set(asked) <= set(actions) and actions.count("scrub.requested") == 3

        await wait_for(recorded, timeout_s=120)
        records = await trail()
    for action, request_id in asked.items():
        (record,) = [r for r in records if r["action"] == action]
        assert record["actor"] == "api:auditor", record
        assert record["correlation_id"] == request_id
        assert (record["detail"]["tenant"], record["detail"]["request_id"]) == ("acme", request_id)
    replicas = [r for r in records if r["action"] == "scrub.requested"]
    assert {(r["actor"], r["correlation_id"]) for r in replicas} == {
        ("api:auditor", asked["scrub"])
    }


async def test_a_delete_answers_a_request_id_whose_status_can_be_polled_until_done(
    pipeline: Pipeline, api: str
) -> None:
    """``DELETE`` answers 202 with the request's id and a ``Location`` to its status, which
    says per version and replica what is pending and what is done, and ends done; another
    tenant's token, or an id that names no removal, is told there is none."""
    writer = bearer(scoped(pipeline, "remover", "--scope", "read,write", "--scope", "forget"))
    other = bearer(token(pipeline, "outsider", "writer", tenant="elsewhere"))
    async with httpx.AsyncClient(base_url=api, timeout=300) as http:
        object_id = await put_verified(http, "gone.txt", b"bye" * 99, writer)
        deleted = await http.delete(
            f"/v1/objects/{object_id}", params={"forget": "true"}, headers=writer
        )
        assert deleted.status_code == 202, deleted.text
        answer = deleted.json()
        request_id = deleted.headers["x-request-id"]
        location = f"/v1/objects/{object_id}/removals/{request_id}"
        assert (answer["request_id"], answer["status"], answer["mode"]) == (
            request_id,
            location,
            "forget",
        )
        assert deleted.headers["location"] == location

        async def status() -> dict[str, Any]:
            polled = await http.get(location, headers=writer)
            assert polled.status_code == 200, polled.text
            return polled.json()  # type: ignore[no-any-return]

        first = await status()
        assert first["request_id"] == request_id and first["mode"] == "forget"
        (version,) = first["versions"]
        assert version["version"] == 1
        assert set(version["replicas"]) == {"s3", "azure", "gcs"}
        assert set(version["replicas"].values()) <= {"pending", "done"}

        async def done() -> bool:
            return (await status())["status"] == "done"

        await wait_for(done, timeout_s=120)
        final = await status()
        (version,) = final["versions"]
        assert version["state"] == "shredded" and version["tombstoned"]
        assert version["replicas"] == {"s3": "done", "azure": "done", "gcs": "done"}
        hidden = await http.get(location, headers=other)
        unknown = await http.get(f"/v1/objects/{object_id}/removals/nope", headers=writer)
        assert is_problem(hidden, 404) and is_problem(unknown, 404)


async def test_each_route_needs_its_scope_and_an_expired_token_is_refused(
    pipeline: Pipeline, api: str, state: State
) -> None:
    """A reader may not delete and a writer may not forget (crypto-shredding is a scope of its
    own); a token given the forget scope may. Each refusal is a 403 naming the scope. An expired
    token is refused like a revoked one, told only that it expired; a token stored before
    scopes existed keeps its role's."""
    writer = bearer(token(pipeline, "s-writer", "writer"))
    reader = bearer(token(pipeline, "s-reader", "reader"))
    shredder = bearer(scoped(pipeline, "s-shredder", "--scope", "read,forget", "--expires", "1h"))
    past = datetime.now(UTC) - timedelta(seconds=1)
    expired = await tokens.create(state.db, "s-expired", "default", tokens.SCOPES, past)
    old = tokens.PREFIX + "before-scopes"
    await state.db["tokens"].insert_one(
        {"_id": tokens.digest(old), "name": "s-old", "role": "reader", "tenant": "default",
         "created_at": past, "revoked_at": None}
    )  # fmt: skip
    async with httpx.AsyncClient(base_url=api, timeout=300) as http:
        object_id = await put_verified(http, "scoped.txt", b"scoped" * 50, writer)
        path = f"/v1/objects/{object_id}"
        forget = {"forget": "true"}
        for who, params, missing in [
            (reader, {}, "delete"),
            (bearer(old), {}, "delete"),
            (writer, forget, "forget"),
            (shredder, {}, "delete"),  # forget does not imply a plain delete
        ]:
            refused = await http.delete(path, params=params, headers=who)
            assert is_problem(refused, 403), refused.text
            assert f"needs the {missing} scope" in refused.json()["detail"]
        assert (await http.get(path, headers=bearer(old))).status_code == 200
        other_tenant = await http.get("/v1/objects", params={"tenant": "x"}, headers=writer)
        assert is_problem(other_tenant, 403) and "admin scope" in other_tenant.json()["detail"]
        forgot = await http.delete(path, params=forget, headers=shredder)
        assert forgot.status_code == 202 and forgot.json()["mode"] == "forget", forgot.text
        late = await http.get("/v1/objects", headers=bearer(expired))
        assert is_problem(late, 401) and late.json()["detail"] == "this token has expired"
        assert late.headers["www-authenticate"] == "Bearer"


async def test_last_use_is_recorded_once_a_minute_and_listed(
    pipeline: Pipeline, api: str, state: State
) -> None:
    """The API writes a token's ``last_used_at`` when it is used, not again within the minute
    (no database write per request); ``tokens list`` shows scopes, expiry and last use."""
    reader = bearer(token(pipeline, "u-reader", "reader"))
    never = scoped(pipeline, "u-never", "--scope", "read", "--expires", "never")

    async def last_used(name: str) -> datetime | None:
        doc = await state.db["tokens"].find_one({"name": name})
        assert doc is not None
        return doc["last_used_at"]  # type: ignore[no-any-return]

    assert await last_used("u-reader") is None
    async with httpx.AsyncClient(base_url=api, timeout=60) as http:
        assert (await http.get("/v1/objects", headers=reader)).status_code == 200
        first = await last_used("u-reader")
        assert first is not None
        assert (await http.get("/v1/objects", headers=reader)).status_code == 200
        assert await last_used("u-reader") == first
    listed = pipeline.cli("tokens", "list", "--json")
    assert listed.returncode == 0, listed.stderr
    rows = {row["name"]: row for row in map(json.loads, listed.stdout.splitlines())}
    assert never not in listed.stdout
    assert rows["u-reader"]["scopes"] == ["read"] and rows["u-reader"]["last_used_at"]
    made = datetime.fromisoformat(rows["u-reader"]["created_at"])
    expires = datetime.fromisoformat(rows["u-reader"]["expires_at"])
    assert abs(expires - made - timedelta(days=90)) < timedelta(minutes=1)  # the default
    assert rows["u-never"]["expires_at"] is None and rows["u-never"]["last_used_at"] is None
    table = pipeline.cli("tokens", "list")
    assert table.returncode == 0 and "u-never" in table.stdout, table.stderr


async def test_bad_input_is_a_problem_and_leaves_nothing_behind(
    pipeline: Pipeline, api: str, state: State
) -> None:
    writer = bearer(token(pipeline, "w", "writer"))
    async with httpx.AsyncClient(base_url=api, timeout=300) as http:
        oversize = await http.post(
            "/v1/objects", params={"name": "big.bin"}, content=os.urandom(41 * MiB), headers=writer
        )
        assert is_problem(oversize, 413)

        async def streamed():  # no Content-Length: the limit is counted while reading
            for _ in range(41):
                yield os.urandom(MiB)

        chunked = await http.post(
            "/v1/objects", params={"name": "big2.bin"}, content=streamed(), headers=writer
        )
        assert chunked.status_code == 413
        for name in ("a/../b", "/etc/passwd", "bidi\u202e.txt"):
            bad = await http.post(
                "/v1/objects", params={"name": name}, content=b"x", headers=writer
            )
            assert is_problem(bad, 422), (name, bad.text)
        bad_tag = await http.post(
            "/v1/objects", params={"name": "t.txt", "tag": "$x=1"}, content=b"x", headers=writer
        )
        assert is_problem(bad_tag, 422)
        ok = await http.post(
            "/v1/objects", params={"name": "small.txt", "wait": "true"}, content=b"123",
            headers=writer,
        )  # fmt: skip
        assert ok.json()["outcome"] == "verified", ok.text
        object_id = ok.json()["object_id"]
        malformed = await http.post(
            f"/v1/objects/{object_id}/verify",
            content=b"{not json",
            headers={**writer, "Content-Type": "application/json"},
        )
        assert is_problem(malformed, 422)
        past = await http.get(
            f"/v1/objects/{object_id}/content", headers={**writer, "Range": "bytes=10-20"}
        )
        assert is_problem(past, 416)
        assert is_problem(await http.get("/v1/objects/nope", headers=writer), 404)
    settings = pipeline.settings
    assert await raw_keys("s3", settings.bucket, settings.staging_prefix, settings) == []
    for target in ("s3", "azure", "gcs"):
        assert await raw_keys(target, settings.bucket, "default/", settings) != []  # small.txt
    names = [d["name"] async for d in state.db["objects"].find({})]
    assert names == ["small.txt"]
    # The delete stage writes the tombstone, then removes the replicas, and the catalog says
    # "verified" until the sink has recorded it: a read in between is told it was deleted.
    deps = build_deps(settings)
    try:
        await deps.registry.tombstone(object_id, 1, "deleted")
        for target in ("s3", "azure", "gcs"):
            store = deps.store(target)
            async for info in store.list(version_prefix("default", object_id, 1)):
                await store.delete(info.key)
    finally:
        await deps.close()
    async with httpx.AsyncClient(base_url=api, timeout=60) as http:
        gone = await http.get(f"/v1/objects/{object_id}/content", headers=writer)
    assert is_problem(gone, 409) and "is deleted" in gone.json()["detail"], gone.text
    assert gone.json()["type"] == problems.TOMBSTONED


async def test_readiness_reports_a_store_that_stopped_and_metrics_move(
    pipeline: Pipeline, api: str
) -> None:
    writer = bearer(token(pipeline, "w", "writer"))
    async with httpx.AsyncClient(base_url=api, timeout=300) as http:
        ready = await http.get("/readyz")
        assert ready.status_code == 200 and ready.json()["ready"], ready.text
        before = counted(await http.get("/metrics"))
        await http.post("/v1/objects", params={"name": "m.txt"}, content=b"m", headers=writer)
        after = counted(await http.get("/metrics"))
        assert after > before
        GCS["down"] = True
        one_down = await http.get("/readyz")  # one cloud down: the API still serves
        assert one_down.status_code == 200 and one_down.json()["ready"], one_down.text
        checks = one_down.json()["checks"]
        assert checks["store:gcs"] == "unreachable" and checks["store:s3"] == "ok"
        assert checks["broker"] == checks["database"] == checks["kms"] == "ok"
        assert "Error" not in one_down.text  # the reason is in the log, not the answer
        gauge = dependency_up(await http.get("/metrics"))
        assert gauge["store:gcs"] == 0 and gauge["store:s3"] == gauge["database"] == 1
        GCS["down"] = False


def dependency_up(metrics: httpx.Response) -> dict[str, float]:
    """``movingdata_dependency_up`` by dependency, as the last readiness check set it."""
    families = text_string_to_metric_families(metrics.text)
    family = next(f for f in families if f.name == "movingdata_dependency_up")
    return {s.labels["dependency"]: s.value for s in family.samples}


def counted(metrics: httpx.Response) -> float:
    """Requests the API has answered, by its own counter."""
    families = text_string_to_metric_families(metrics.text)
    family = next(f for f in families if f.name == "movingdata_api_requests")
    return sum(s.value for s in family.samples if s.name == "movingdata_api_requests_total")


async def test_every_worker_serves_health_readiness_and_metrics(
    pipeline: Pipeline, tmp_path: Path
) -> None:
    port = free_port()
    pipeline.settings = pipeline.settings.model_copy(update={"worker_port": port})
    pipeline.start_worker("all")
    url = f"http://127.0.0.1:{port}"

    async def serving() -> bool:
        try:
            async with httpx.AsyncClient() as http:
                return (await http.get(f"{url}/healthz", timeout=1)).status_code == 200
        except httpx.HTTPError:
            return False

    await wait_for(serving, timeout_s=60)
    (tmp_path / "m.bin").write_bytes(os.urandom(50_000))
    # In a thread: the GCS relay is served by this test's event loop.
    put = await asyncio.to_thread(pipeline.cli, "put", str(tmp_path / "m.bin"), "--wait")
    assert put.returncode == 0, put.stderr
    async with httpx.AsyncClient(base_url=url, timeout=30) as http:
        ready = await http.get("/readyz")
        assert ready.status_code == 200 and ready.json()["ready"], ready.text
        text = (await http.get("/metrics")).text
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }

    def value(name: str, **labels: str) -> float:
        return samples.get((name, tuple(sorted(labels.items()))), 0.0)

    for stage in ("ingest", "encrypt", "replicate", "verify", "tier"):
        assert value("movingdata_events_total", stage=stage, outcome="ok") >= 1, stage
    assert value("movingdata_stage_bytes_total", stage="encrypt") == 50_000
    assert value("movingdata_store_request_seconds_count", store="azure", op="write") >= 1
    assert any(name == "movingdata_consumer_lag" for name, _ in samples)


async def test_no_input_the_openapi_document_allows_makes_a_5xx(
    pipeline: Pipeline, api: str
) -> None:
    """schemathesis generates requests from the OpenAPI document: no server error, and every
    answer matches its documented schema."""
    admin = token(pipeline, "fuzz", "admin")
    run = await asyncio.to_thread(
        subprocess.run,
        [
            str(Path(sys.executable).parent / "schemathesis"), "run", f"{api}/openapi.json",
            "-H", f"Authorization: Bearer {admin}",
            "--checks", "not_a_server_error,response_schema_conformance,status_code_conformance",
            "--max-examples", "12", "--request-timeout", "120",
        ],
        capture_output=True, text=True, timeout=1200, env=pipeline.env,
    )  # fmt: skip
    (pipeline.logs / "schemathesis.txt").write_text(run.stdout + run.stderr)
    assert run.returncode == 0, run.stdout[:8000] + run.stderr[-2000:]


async def test_an_idempotent_put_lands_once_and_reads_are_conditional(
    pipeline: Pipeline, api: str, state: State
) -> None:
    """A put answers 202 and its ``Location`` while in flight, 201 once verified; a retry with
    the same ``Idempotency-Key`` is the same request (one version), another tenant's same key
    another one. ``HEAD`` answers a read's headers from the catalog alone (no replica opened:
    no restore is recorded); ``If-None-Match`` gives 304 and ``If-Range`` a range only for the
    version's strong ETag."""
    writer = bearer(token(pipeline, "h-writer", "writer"))
    other = bearer(token(pipeline, "h-other", "writer", tenant="h-elsewhere"))
    data = os.urandom(100_000)
    key = {"Idempotency-Key": "upload-7f3a"}
    async with httpx.AsyncClient(base_url=api, timeout=300) as http:

        async def put(name: str, who: dict[str, str], **params: str) -> httpx.Response:
            asked = {"name": name, **params}
            return await http.post("/v1/objects", params=asked, content=data, headers=who)

        first = await put("idem/a.bin", {**writer, **key})
        assert first.status_code == 202, first.text
        object_id = first.json()["object_id"]
        assert first.headers["location"] == f"/v1/objects/{object_id}"
        retried = await put("idem/a.bin", {**writer, **key}, wait="true")
        assert retried.status_code == 201 and retried.json()["outcome"] == "verified"
        assert retried.headers["location"] == f"/v1/objects/{object_id}"
        assert retried.json()["version"] == first.json()["version"] == 1
        request_id = first.json()["request_id"]
        assert retried.headers["x-request-id"] == first.headers["x-request-id"] == request_id
        assert [d["version"] for d in await state.objects(object_id)] == [1]
        theirs = await put("idem/a.bin", {**other, **key})
        assert theirs.status_code == 202 and theirs.json()["request_id"] != request_id
        assert is_problem(await put("idem/b.bin", {**writer, **key}), 422)  # another name
        changed = {**writer, **key}
        other_bytes = await http.post(
            "/v1/objects", params={"name": "idem/a.bin"}, content=b"other", headers=changed
        )
        assert is_problem(other_bytes, 422)
        assert is_problem(await put("idem/c.bin", {**writer, "Idempotency-Key": "a b"}), 422)

        path = f"/v1/objects/{object_id}"

        async def heads_match_gets() -> bool:  # the tier stage may still change the view
            head, got = await http.head(path, headers=writer), await http.get(path, headers=writer)
            assert head.status_code == 200 and head.content == b""
            return head.headers["content-length"] == str(len(got.content))

        await wait_for(heads_match_gets, timeout_s=60)
        etag = f'"{retried.json()["plaintext_sha256"]}"'
        content = f"{path}/content"
        head = await http.head(content, headers=writer)
        got = await http.get(content, headers=writer)
        assert (head.status_code, head.content, got.content) == (200, b"", data)
        same = ("content-length", "content-type", "etag", "x-version", "accept-ranges")
        assert {h: head.headers[h] for h in same} == {h: got.headers[h] for h in same}
        assert head.headers["etag"] == etag and "x-replica" not in head.headers
        ranged = await http.head(content, headers={**writer, "Range": "bytes=0-9"})
        assert ranged.status_code == 206 and ranged.headers["content-length"] == "10"
        for method in (http.get, http.head):
            held = await method(content, headers={**writer, "If-None-Match": etag})
            assert (held.status_code, held.content, held.headers["etag"]) == (304, b"", etag)
        changed = await http.get(content, headers={**writer, "If-None-Match": '"old"'})
        assert changed.status_code == 200 and changed.content == data
        part = await http.get(content, headers={**writer, "Range": "bytes=0-9", "If-Range": etag})
        assert part.status_code == 206 and part.content == data[:10]
        stale = {**writer, "Range": "bytes=0-9", "If-Range": '"old"'}
        whole = await http.get(content, headers=stale)
        assert whole.status_code == 200 and whole.content == data

        async def restores() -> list[str]:
            trail = (await http.get(f"{path}/audit", headers=writer)).json()
            return [r["correlation_id"] for r in trail if r["action"] == "restore"]

        async def reads_recorded() -> bool:
            return whole.headers["x-request-id"] in await restores()

        await wait_for(reads_recorded, timeout_s=120)
        read_by = set(await restores())
        assert head.headers["x-request-id"] not in read_by  # recorded in order: it never read
        assert held.headers["x-request-id"] not in read_by
        assert {got.headers["x-request-id"], part.headers["x-request-id"]} <= read_by


async def test_lookup_by_name_and_folders(pipeline: Pipeline, api: str) -> None:
    """``by-name`` finds the token's tenant's object of that exact name; a ``delimiter`` folds
    the names under a prefix into folders, pages counting both."""
    writer = bearer(token(pipeline, "f-writer", "writer"))
    other = bearer(token(pipeline, "f-other", "reader", tenant="f-elsewhere"))
    names = ["tree/a/1.txt", "tree/a/2.txt", "tree/b/c/3.txt", "tree/top.txt", "treetop.txt"]
    async with httpx.AsyncClient(base_url=api, timeout=300) as http:
        for name in names:
            put = await http.post(
                "/v1/objects", params={"name": name}, content=name.encode(), headers=writer
            )
            assert put.status_code == 202, put.text

        async def folders(**params: str) -> dict[str, Any]:
            listed = await http.get("/v1/objects", params=params, headers=writer)
            assert listed.status_code == 200, listed.text
            body = listed.json()
            return {
                "items": [i["name"] for i in body["items"]],
                "prefixes": body["prefixes"],
                "next": body["next_cursor"],
            }

        async def all_listed() -> bool:
            return len((await folders(prefix="tree"))["items"]) == len(names)

        await wait_for(all_listed, timeout_s=120)
        assert await folders(prefix="tree/", delimiter="/") == {
            "items": ["tree/top.txt"], "prefixes": ["tree/a/", "tree/b/"], "next": None,
        }  # fmt: skip
        assert await folders(delimiter="/") == {
            "items": ["treetop.txt"], "prefixes": ["tree/"], "next": None,
        }  # fmt: skip
        first = await folders(prefix="tree/", delimiter="/", limit="2")
        assert first == {"items": [], "prefixes": ["tree/a/", "tree/b/"], "next": "tree/b/"}
        rest = await folders(prefix="tree/", delimiter="/", limit="2", cursor="tree/b/")
        assert rest == {"items": ["tree/top.txt"], "prefixes": [], "next": None}
        deep = await folders(prefix="tree/b/", delimiter="/")
        assert deep == {"items": [], "prefixes": ["tree/b/c/"], "next": None}
        filtered = await http.get(
            "/v1/objects", params={"delimiter": "/", "state": "verified"}, headers=writer
        )
        assert is_problem(filtered, 422)
        found = await http.get("/v1/objects/by-name/tree/a/1.txt", headers=writer)
        assert found.status_code == 200 and found.json()["name"] == "tree/a/1.txt"
        by_id = await http.get(f"/v1/objects/{found.json()['object_id']}", headers=writer)
        assert by_id.json()["object_id"] == found.json()["object_id"]
        assert is_problem(await http.get("/v1/objects/by-name/tree/a/1.txt", headers=other), 404)
        assert is_problem(await http.get("/v1/objects/by-name/tree/a", headers=writer), 404)
        assert is_problem(await http.get("/v1/objects/by-name/a/../b", headers=writer), 404)


async def test_two_api_replicas_spend_one_rate_budget(pipeline: Pipeline) -> None:
    """Two API applications over one database share each token's minute, and the budget of
    an address sending no valid token, which once spent refuses its requests before any token
    is looked up; every authenticated answer says what is left (``RateLimit-*``)."""
    own = ("topic_prefix", "bucket", "mongo_database", "kek_name", "gcs_url")
    ours = load_settings(operator=True, kafka_role="api").model_copy(
        update={**{k: getattr(pipeline.settings, k) for k in own}, "api_rate_per_minute": 3}
    )
    apps = [create_app(ours), create_app(ours)]
    async with AsyncExitStack() as stack:
        for app in apps:
            await stack.enter_async_context(app.router.lifespan_context(app))
        replicas = [
            await stack.enter_async_context(
                httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://api")
            )
            for app in apps
        ]
        db = apps[0].state.services.state.db
        reader = bearer(await tokens.create(db, "r-reader", "default", {"read"}, None))
        second = bearer(await tokens.create(db, "r-second", "default", {"read"}, None))

        async def room_in_this_minute() -> bool:  # the test's requests share one window
            return time.time() % 60 < 40

        await wait_for(room_in_this_minute, timeout_s=60)
        answers = [await replicas[n % 2].get("/v1/objects", headers=reader) for n in range(4)]
        assert [a.status_code for a in answers] == [200, 200, 200, 429]
        assert [a.headers["ratelimit-remaining"] for a in answers] == ["2", "1", "0", "0"]
        refused = answers[-1]
        assert is_problem(refused, 429) and refused.json()["type"] == problems.RATE_LIMITED
        assert refused.headers["ratelimit-limit"] == "3"
        assert 0 < int(refused.headers["retry-after"]) <= 60
        wrong = [
            await replicas[n % 2].get("/v1/objects", headers=bearer("mdt_wrong")) for n in range(3)
        ]
        none = await replicas[1].get("/v1/objects")
        assert [a.status_code for a in [*wrong, none]] == [401, 401, 401, 429]
        assert wrong[0].headers["ratelimit-remaining"] == "2"
        # The address is spent: a valid token from it is refused before its lookup.
        assert is_problem(await replicas[0].get("/v1/objects", headers=second), 429)
        assert (await db["tokens"].find_one({"name": "r-second"}) or {}).get("last_used_at") is None
