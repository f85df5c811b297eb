"""Bad input gets a dead letter with a clear reason, loses nothing else, stops no agent."""

import base64
import subprocess
from pathlib import Path

import orjson
from aiokafka import AIOKafkaProducer

from schemas.codec import redacted
from schemas.events import INLINE_MAX_BYTES, Placement, Source
from tests.pipeline import MOVINGDATA, Pipeline
from tests.waiting import wait_for
from workers.broker import kafka_options
from workers.client.identity import cli_actor
from workers.client.kafka import produce
from workers.client.puts import put_request, requests_for_path, wait_verified
from workers.client.state import State

TARGETS = ("s3", "azure", "gcs")


def good_request_doc() -> dict[str, object]:
    request = put_request(
        Placement(name="ok.txt", targets=TARGETS),
        Source(inline_b64="aGk="),
        None,
        actor=cli_actor(),
    )
    return orjson.loads(request.model_dump_json())


def variant(change) -> bytes:
    doc = good_request_doc()
    change(doc)
    return orjson.dumps(doc)


BAD = {
    b"{not json": "malformed JSON",
    variant(lambda d: d.update(v=7)): "unknown event kind/version",
    variant(lambda d: d.pop("placement")): "placement: Field required",
    variant(
        lambda d: d.update(
            source={"inline_b64": base64.b64encode(b"x" * (INLINE_MAX_BYTES + 1)).decode()}
        )
    ): "inline payload over",
    variant(lambda d: d["placement"].update(name="a/../../etc/passwd")): "no '.' or '..' segments",
    variant(lambda d: d["placement"].update(name="/etc/passwd")): "must be relative",
    variant(lambda d: d["placement"].update(name="bad\x00name")): "NUL or control",
    variant(lambda d: d["placement"].update(name="bad\x1bname")): "NUL or control",
    variant(
        lambda d: d.update(source={"url": "s3://someone-elses-bucket/key"})
    ): "outside the allowed stores",
    variant(lambda d: d.update(source={"url": "https://example.invalid/x"})): "source url must be",
    variant(lambda d: d.update(source={"path": "/etc/shadow"})): "outside the allowed source roots",
}


async def test_every_kind_of_bad_input_is_dead_lettered_with_its_reason(
    pipeline: Pipeline, worker_all: subprocess.Popen[bytes], state: State, source_dir: Path
) -> None:
    producer = AIOKafkaProducer(**kafka_options(pipeline.settings))
    await producer.start()
    for raw in BAD:
        await producer.send_and_wait(f"{pipeline.settings.topic_prefix}.ingest", raw)
    await producer.stop()
    (source_dir / "after.txt").write_bytes(b"the good one behind the bad ones")
    requests = requests_for_path(source_dir, TARGETS, "default", {}, actor=cli_actor())
    await produce(pipeline.settings, requests)
    assert await wait_verified(state, requests[:1], timeout_s=300) == {}

    async def all_dead_lettered() -> bool:
        return await state.db["deadletters"].count_documents({}) >= len(BAD)

    await wait_for(all_dead_lettered, timeout_s=120)
    # Dead letters keep the first 64 KiB of the payload, an inline one redacted: match on that.
    letters = {
        base64.b64decode(doc["payload_b64"])[:1000]: doc["reason"]
        async for doc in state.db["deadletters"].find({})
    }
    for raw, reason in BAD.items():
        kept = redacted(raw)[:1000]
        assert reason in letters.get(kept, ""), (raw[:60], letters.get(kept))
    assert worker_all.poll() is None


async def test_tampered_ciphertext_is_refused_on_restore(
    pipeline: Pipeline,
    worker_all: subprocess.Popen[bytes],
    state: State,
    source_dir: Path,
    tmp_path: Path,
) -> None:
    """Bad header, truncated body, a header naming another object's key: clear errors, no file."""
    for name in ("a.bin", "b.bin"):
        (source_dir / name).write_bytes(name.encode() * 50_000)
    requests = requests_for_path(source_dir, TARGETS, "default", {}, actor=cli_actor())
    await produce(pipeline.settings, requests)
    assert await wait_verified(state, requests, timeout_s=300) == {}
    a, b = [await state.object(r.object_id, 1) for r in requests]
    assert a is not None and b is not None
    from workers.deps import build_deps

    deps = build_deps(pipeline.settings)
    s3, azure, gcs = deps.store("s3"), deps.store("azure"), deps.store("gcs")
    original = b"".join([c async for c in s3.read(a["key"])])
    other = b"".join([c async for c in s3.read(b["key"])])

    async def put(store, data: bytes) -> None:
        async def body():
            yield data

        await store.write(a["key"], body())

    await put(s3, b"XXXX" + original[4:])  # bad magic
    await put(azure, original[: len(original) // 2])  # truncated
    await put(gcs, other)  # b's ciphertext under a's name: names b's key
    await deps.close()
    expected = {"s3": "bad magic", "azure": "truncated", "gcs": "another object's data key"}
    for target, reason in expected.items():
        out = tmp_path / f"{target}.out"
        done = subprocess.run(
            [MOVINGDATA, "restore", a["object_id"], "--from", target, "-o", str(out)],
            env=pipeline.env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert done.returncode == 1, done.stdout
        assert reason in done.stderr.lower(), (target, done.stderr)
        assert not out.exists()
