"""Objects as users expect them, through the CLI and real workers: versions, unchanged puts,
staging from a machine that shares nothing with the workers, ls, rm, forget, bad input."""

import asyncio
import hashlib
import os
from pathlib import Path

import orjson
import pytest
from aiokafka import AIOKafkaProducer

from schemas.events import object_id_for
from tests.pipeline import Pipeline, messages_on
from tests.stores import raw_keys
from tests.waiting import wait_for
from topics import INGEST
from workers import staging
from workers.broker import kafka_options
from workers.client.identity import cli_actor
from workers.client.kafka import produce
from workers.client.puts import requests_for_path, wait_verified
from workers.client.state import State
from workers.deps import build_deps, version_prefix

TARGETS = ("s3", "azure", "gcs")


@pytest.fixture
def pipeline_overrides() -> dict[str, object]:
    return {"source_roots": ()}  # the workers read no client path: every put is staged


def json_lines(text: str) -> list[dict[str, object]]:
    return [orjson.loads(line) for line in text.splitlines() if line.startswith("{")]


async def store_state(pipeline: Pipeline) -> dict[str, dict[str, tuple[int, object]]]:
    """Every key in every store with its size and modification time."""
    deps = build_deps(pipeline.settings)
    try:
        return {
            t: {i.key: (i.size, i.modified) async for i in store.list()}
            for t, store in deps.stores.items()
        }
    finally:
        await deps.close()


async def test_versions_unchanged_puts_and_restores_by_name(
    pipeline: Pipeline, worker_all, state: State, tmp_path: Path
) -> None:
    report = tmp_path / "client" / "report.txt"
    report.parent.mkdir()
    report.write_bytes(b"first draft\n")
    first = pipeline.cli("put", str(report), "--wait", "--json")
    assert first.returncode == 0, first.stdout + first.stderr
    (v1,) = json_lines(first.stdout)
    assert (v1["version"], v1["outcome"], v1["source"]) == (1, "verified", "staged")

    report.write_bytes(b"second draft, longer\n")
    second = pipeline.cli("put", str(report), "--wait", "--json")
    assert json_lines(second.stdout)[0]["version"] == 2, second.stdout + second.stderr

    before = await store_state(pipeline)
    again = pipeline.cli("put", str(report), "--wait", "--json")
    (same,) = json_lines(again.stdout)
    assert (same["outcome"], same["version"], same["source"]) == ("unchanged", 2, "digest")
    assert await store_state(pipeline) == before  # nothing written anywhere
    keys = await raw_keys("s3", pipeline.settings.bucket, "_staging/", pipeline.settings)
    assert keys == []  # every staged upload was deleted once encrypted

    out = tmp_path / "out.txt"
    latest = pipeline.cli("restore", "report.txt", "-o", str(out))
    assert latest.returncode == 0, latest.stderr
    assert out.read_bytes() == b"second draft, longer\n"
    old = pipeline.cli(
        "restore", "report.txt", "--version", "1", "--from", "azure", "-o", str(out), "--force"
    )
    assert old.returncode == 0, old.stderr
    assert out.read_bytes() == b"first draft\n"

    object_id = object_id_for("default", "report.txt")
    shown = json_lines(pipeline.cli("show", "report.txt", "--json").stdout)
    assert [(d["version"], d["state"]) for d in shown] == [(1, "verified"), (2, "verified")]

    async def unchanged_audited() -> bool:
        trail = await state.audit(object_id)
        return any(r["action"] == "put.unchanged" and r["version"] == 2 for r in trail)

    await wait_for(unchanged_audited, timeout_s=60)
    trail = await state.audit(object_id)
    accepted = [r["version"] for r in trail if r["action"] == "object.accepted"]
    assert accepted == [1, 2]  # both puts are in the trail

    missing = pipeline.cli("restore", "report.txt", "--version", "7", "-o", str(out))
    assert missing.returncode == 3  # not found
    assert "report.txt has no version 7 (versions: 1, 2)" in missing.stderr
    assert "Traceback" not in missing.stderr


async def test_two_racing_puts_of_one_name_get_two_versions(
    pipeline: Pipeline, worker_all, state: State, tmp_path: Path
) -> None:
    a, b = tmp_path / "a" / "same.bin", tmp_path / "b" / "same.bin"
    for path in (a, b):
        path.parent.mkdir()
        path.write_bytes(os.urandom(100_000))
    both = await asyncio.gather(
        *(asyncio.to_thread(pipeline.cli, "put", str(p), "--wait", "--json") for p in (a, b))
    )
    versions = sorted(json_lines(r.stdout)[0]["version"] for r in both)
    assert versions == [1, 2], [r.stdout + r.stderr for r in both]
    docs = await state.objects(object_id_for("default", "same.bin"))
    by_sha = {d["plaintext_sha256"]: d["version"] for d in docs}
    for path in (a, b):
        version = by_sha[hashlib.sha256(path.read_bytes()).hexdigest()]
        out = tmp_path / f"v{version}"
        done = pipeline.cli("restore", "same.bin", "--version", str(version), "-o", str(out))
        assert done.returncode == 0, done.stderr
        assert out.read_bytes() == path.read_bytes()


async def test_ls_rm_and_forget_leave_no_bytes_in_any_store(
    pipeline: Pipeline, worker_all, state: State, tmp_path: Path
) -> None:
    folder = tmp_path / "docs"
    folder.mkdir()
    for n in range(5):
        (folder / f"d{n}.txt").write_bytes(f"document {n}\n".encode() * 1000)
    put = pipeline.cli("put", str(folder), "--prefix", "docs/", "--wait")
    assert put.returncode == 0, put.stdout + put.stderr

    listed = pipeline.cli("ls", "docs/", "--limit", "2", "--json")
    assert [r["name"] for r in json_lines(listed.stdout)] == ["docs/d0.txt", "docs/d1.txt"]
    assert json_lines(listed.stderr) == [{"next_after": "docs/d1.txt"}]
    rest = json_lines(pipeline.cli("ls", "docs/", "--after", "docs/d1.txt", "--json").stdout)
    assert [r["name"] for r in rest] == ["docs/d2.txt", "docs/d3.txt", "docs/d4.txt"]

    docs = {n: (await state.resolve(f"docs/d{n}.txt", "default"))[1][-1] for n in (0, 1)}
    removed = pipeline.cli("rm", "docs/d0.txt")
    assert removed.returncode == 0, removed.stdout + removed.stderr
    assert "deleted: removed from s3, azure, gcs" in removed.stdout
    forgot = pipeline.cli("forget", "docs/d1.txt", "--yes")
    assert forgot.returncode == 0, forgot.stdout + forgot.stderr
    for doc in docs.values():
        prefix = version_prefix("default", doc["object_id"], doc["version"])
        for target in TARGETS:
            assert await raw_keys(target, pipeline.settings.bucket, prefix, pipeline.settings) == []
        record = await state.db["data_keys"].find_one({"object_id": doc["object_id"]})
        assert record is not None and "wrapped" not in record

    deleted = json_lines(pipeline.cli("ls", "docs/", "--state", "deleted", "--json").stdout)
    assert [r["name"] for r in deleted] == ["docs/d0.txt"]
    shredded = json_lines(pipeline.cli("ls", "--state", "shredded", "--json").stdout)
    assert [r["name"] for r in shredded] == ["docs/d1.txt"]
    verified = json_lines(
        pipeline.cli("ls", "--state", "verified", "--store", "gcs", "--json").stdout
    )
    assert [r["name"] for r in verified] == ["docs/d2.txt", "docs/d3.txt", "docs/d4.txt"]

    out = tmp_path / "x"
    for name, state_name in (("docs/d0.txt", "deleted"), ("docs/d1.txt", "shredded")):
        refused = pipeline.cli("restore", name, "-o", str(out))
        assert refused.returncode == 3 and state_name in refused.stderr, refused.stderr
        assert not out.exists()
        scrubbed = pipeline.cli("scrub", name)
        assert "0 replicas sent to verify" in scrubbed.stdout
    unknown = pipeline.cli("rm", "docs/never.txt")
    assert unknown.returncode == 3 and "no object 'docs/never.txt'" in unknown.stderr
    assert "Traceback" not in unknown.stderr
    bad = pipeline.cli("ls", "--state", "misplaced")
    assert bad.returncode == 2 and "is not one of" in bad.stderr


async def test_a_source_changed_between_put_and_encrypt_is_dead_lettered(
    pipeline: Pipeline, state: State, source_dir: Path
) -> None:
    pipeline.settings = pipeline.settings.model_copy(update={"source_roots": (source_dir,)})
    pipeline.env["MOVINGDATA_SOURCE_ROOTS"] = orjson.dumps([str(source_dir)]).decode()
    (source_dir / "moving.bin").write_bytes(b"as measured" * 1000)
    requests = requests_for_path(source_dir, TARGETS, "default", {}, actor=cli_actor())
    (source_dir / "moving.bin").write_bytes(b"changed!!!!" * 1000)  # same size, other bytes
    await produce(pipeline.settings, requests)
    pipeline.start_worker("all")
    failures = await wait_verified(state, requests, timeout_s=300)
    assert "source changed since put" in failures[requests[0].object_id]
    doc = await state.object(requests[0].object_id, 1)
    assert doc is not None and doc["state"] == "failed"


async def test_a_put_after_a_failed_one_waits_for_its_own_version(
    pipeline: Pipeline, worker_all, tmp_path: Path
) -> None:
    """A dead letter of an earlier put of the name is not this put's failure."""
    refused = pipeline.cli("put", "--url", "s3://someone-elses/x", "--name", "n.txt", "--wait")
    assert refused.returncode == 1 and "outside the allowed stores" in refused.stdout
    (tmp_path / "n.txt").write_bytes(b"fine now")
    done = pipeline.cli("put", str(tmp_path / "n.txt"), "--wait")
    assert done.returncode == 0 and "n.txt v1 verified" in done.stdout, done.stdout


async def test_a_producer_in_any_language_writes_only_what_it_knows(
    pipeline: Pipeline, worker_all, state: State
) -> None:
    """The minimal request a kcat user writes: kind, v, source, placement."""
    minimal = {
        "kind": "ingest.request",
        "v": 1,
        "source": {"inline_b64": "aGVsbG8gZnJvbSBrY2F0"},
        "placement": {"name": "kcat.txt", "targets": list(TARGETS)},
    }
    relabelled = {**minimal, "object_id": object_id_for("other-tenant", "kcat.txt")}
    producer = AIOKafkaProducer(**kafka_options(pipeline.settings))
    await producer.start()
    topic = f"{pipeline.settings.topic_prefix}.ingest"
    await producer.send_and_wait(topic, orjson.dumps(minimal))
    await producer.send_and_wait(topic, orjson.dumps(relabelled), key=b"req-relabel")
    await producer.stop()
    object_id = object_id_for("default", "kcat.txt")

    async def verified() -> bool:
        doc = await state.object(object_id, 1)
        return bool(doc and doc.get("state") == "verified")

    await wait_for(verified, timeout_s=120)

    async def refused() -> bool:
        return await state.db["deadletters"].find_one({"correlation_id": "req-relabel"}) is not None

    await wait_for(refused, timeout_s=60)
    letter = await state.db["deadletters"].find_one({"correlation_id": "req-relabel"})
    assert "does not match the tenant and name" in letter["reason"]


async def test_an_interrupted_staged_upload_sends_nothing_and_stale_ones_are_swept(
    pipeline: Pipeline, worker_all, tmp_path: Path
) -> None:
    settings = pipeline.settings
    deps = build_deps(settings)
    try:

        async def cut_short():
            yield os.urandom(9 * 1024 * 1024)  # past one multipart part
            raise OSError("the client's disk went away")

        with pytest.raises(OSError, match="disk went away"):
            await staging.upload(deps.staging, "_staging/interrupted", cut_short())

        async def leftover():
            yield b"a request that was never sent"

        await deps.staging.write("_staging/abandoned", leftover())
    finally:
        await deps.close()
    keys = await raw_keys("s3", settings.bucket, "_staging/", settings)
    assert keys == ["_staging/abandoned"]  # the interrupted upload left nothing
    swept = pipeline.cli("staging", "sweep", "--older-than", "0")
    assert swept.returncode == 0 and "1 staged uploads removed" in swept.stdout, swept.stderr
    assert await raw_keys("s3", settings.bucket, "_staging/", settings) == []


async def test_bad_names_and_tags_are_refused_before_anything_is_sent(
    pipeline: Pipeline, tmp_path: Path
) -> None:
    folder = tmp_path / "odd"
    folder.mkdir()
    (folder / "fine.txt").write_bytes(b"x")
    (Path(os.fsdecode(bytes(folder) + b"/not-utf8-\xff.txt"))).write_bytes(b"x")
    refused = pipeline.cli("put", str(folder))
    assert refused.returncode == 2, refused.stdout  # a usage error
    assert "name is not valid UTF-8" in refused.stderr and "Traceback" not in refused.stderr
    tag = pipeline.cli("put", str(folder / "fine.txt"), "--tag", "foo")
    assert tag.returncode == 2 and "'foo' is not key=value" in tag.stderr
    assert await messages_on(pipeline, INGEST) == 0
    assert await raw_keys("s3", pipeline.settings.bucket, "", pipeline.settings) == []


def put_edits(pipeline: Pipeline, doc: Path, count: int) -> None:
    """``count`` edits of ``doc`` put one after another, each verified as its next version."""
    for n in range(count):
        doc.write_bytes(f"edit {n}\n".encode())
        done = pipeline.cli("put", str(doc), "--wait")
        assert done.returncode == 0 and f"{doc.name} v{n + 1} verified" in done.stdout, done.stdout


async def test_retention_keeps_the_last_versions_and_removes_the_rest(
    pipeline: Pipeline, state: State, tmp_path: Path
) -> None:
    pipeline.settings = pipeline.settings.model_copy(
        update={"retain_versions": 1, "retention_interval_s": 1.0}
    )
    pipeline.start_worker("all")
    doc = tmp_path / "kept.txt"
    put_edits(pipeline, doc, 3)
    object_id = object_id_for("default", "kept.txt")

    async def retired() -> bool:
        states = [(d["version"], d["state"]) for d in await state.objects(object_id)]
        return states == [(1, "deleted"), (2, "deleted"), (3, "verified")]

    await wait_for(retired, timeout_s=120)
    for version in (1, 2):
        prefix = version_prefix("default", object_id, version)
        for target in TARGETS:

            async def removed(target: str = target, prefix: str = prefix) -> bool:
                keys = await raw_keys(target, pipeline.settings.bucket, prefix, pipeline.settings)
                return keys == []

            await wait_for(removed, timeout_s=60)
    trail = await state.audit(object_id)
    intents = [r for r in trail if r["action"] == "delete.requested"]
    assert {r["version"] for r in intents} == {1, 2}  # asked by the sink's retention job
    assert all(r["actor"].startswith("worker:sink@") for r in intents)
    assert {r["detail"]["reason"] for r in intents} == {"retention: keep 1 verified versions"}
    assert {r["version"] for r in trail if r["action"] == "version.deleted"} == {1, 2}


async def test_puts_that_fail_never_retire_an_older_verified_version(
    pipeline: Pipeline, state: State, source_dir: Path
) -> None:
    """Keep 2: v1 and v2 verified, v3 and v4 fail; both verified versions stay until a newer
    one is verified. (Retention at put time retired v1 when v4 was put.)"""
    pipeline.settings = pipeline.settings.model_copy(
        update={"retain_versions": 2, "retention_interval_s": 1.0, "source_roots": (source_dir,)}
    )
    pipeline.env["MOVINGDATA_SOURCE_ROOTS"] = orjson.dumps([str(source_dir)]).decode()
    pipeline.start_worker("all")
    doc = source_dir / "kept.txt"
    put_edits(pipeline, doc, 2)
    failing = []
    for n in (2, 3):
        doc.write_bytes(f"edit {n}\n".encode())
        failing += requests_for_path(doc, TARGETS, "default", {}, actor=cli_actor())
    doc.write_bytes(b"edit X\n")  # same size, other bytes: encrypt refuses v3 and v4
    await produce(pipeline.settings, failing)
    failures = await wait_verified(state, failing, timeout_s=300)
    object_id = object_id_for("default", "kept.txt")
    assert "source changed since put" in failures[object_id]

    async def states() -> list[tuple[int, str]]:
        return [(d["version"], d["state"]) for d in await state.objects(object_id)]

    async def both_failed() -> bool:
        return await states() == [(1, "verified"), (2, "verified"), (3, "failed"), (4, "failed")]

    await wait_for(both_failed, timeout_s=60)
    await asyncio.sleep(5)  # several retention rounds: nothing newer is verified, nothing goes
    assert await both_failed(), await states()
    assert not any(d.get("delete_requested_at") for d in await state.objects(object_id))
    doc.write_bytes(b"edit 4\n")
    done = pipeline.cli("put", str(doc), "--wait")
    assert done.returncode == 0 and "kept.txt v5 verified" in done.stdout, done.stdout

    async def retired() -> bool:  # the two newest verified are v5 and v2: only v1 is older
        found = await states()
        return found == [
            (1, "deleted"),
            (2, "verified"),
            (3, "failed"),
            (4, "failed"),
            (5, "verified"),
        ]

    await wait_for(retired, timeout_s=120)


async def test_restore_falls_back_writes_mode_600_and_never_overwrites_unasked(
    pipeline: Pipeline, worker_all, state: State, tmp_path: Path
) -> None:
    data = os.urandom(300_000)
    (tmp_path / "precious.bin").write_bytes(data)
    put = pipeline.cli("put", str(tmp_path / "precious.bin"), "--wait")
    assert put.returncode == 0, put.stdout + put.stderr
    doc = (await state.resolve("precious.bin", "default"))[1][-1]
    deps = build_deps(pipeline.settings)
    try:

        async def rot():
            yield b"MDE1 but not really"

        await deps.store("s3").write(doc["key"], rot())  # the primary replica goes bad
    finally:
        await deps.close()
    out = tmp_path / "out" / "precious.bin"
    out.parent.mkdir()
    done = pipeline.cli("restore", "precious.bin", "-o", str(out))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "skipped the s3 replica" in done.stderr and "from azure" in done.stdout
    assert out.read_bytes() == data
    assert out.stat().st_mode & 0o777 == 0o600
    again = pipeline.cli("restore", "precious.bin", "-o", str(out))
    assert again.returncode == 1 and "exists: restore elsewhere or add --force" in again.stderr
    forced = pipeline.cli("restore", "precious.bin", "--from", "gcs", "-o", str(out), "--force")
    assert forced.returncode == 0, forced.stderr
    only_s3 = pipeline.cli("restore", "precious.bin", "--from", "s3", "-o", str(tmp_path / "s3"))
    assert only_s3.returncode == 1 and "no replica could be restored" in only_s3.stderr
    assert not (tmp_path / "s3").exists()
