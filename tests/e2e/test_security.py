"""Security end to end: key rotation, crypto-shredding, tamper-evident audit, no leaked secrets."""

import base64
import subprocess
from pathlib import Path

import orjson
from aiokafka import AIOKafkaConsumer

from tests.pipeline import Pipeline
from tests.waiting import wait_for
from topics import ALL
from workers.broker import kafka_options
from workers.client.identity import cli_actor
from workers.client.kafka import produce
from workers.client.puts import requests_for_path, wait_verified
from workers.client.state import State
from workers.kms.keyregistry import key_ref
from workers.kms.keys import open_kek
from workers.stack.localenv import read_local_env
from workers.stack.services import OpenBao

TARGETS = ("s3", "azure", "gcs")
MARKER = b"PLAINTEXT-SAMPLE-do-not-leak-"


async def topic_bytes(pipeline: Pipeline) -> bytes:
    """Every message on every topic of this pipeline, concatenated."""
    names = [spec.name(pipeline.settings.topic_prefix) for spec in ALL]
    consumer = AIOKafkaConsumer(
        *names,
        **kafka_options(pipeline.settings),
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await consumer.start()
    chunks = []
    try:
        while batch := await consumer.getmany(timeout_ms=3000):
            chunks += [(m.key or b"") + (m.value or b"") for ms in batch.values() for m in ms]
    finally:
        await consumer.stop()
    return b"\n".join(chunks)


async def test_rotate_forget_audit_and_no_secret_anywhere(
    pipeline: Pipeline,
    worker_all: subprocess.Popen[bytes],
    state: State,
    source_dir: Path,
    tmp_path: Path,
) -> None:
    for n in range(3):
        (source_dir / f"s{n}.txt").write_bytes(MARKER + bytes([65 + n]) * 300_000)
    requests = requests_for_path(source_dir, TARGETS, "default", {}, actor=cli_actor())
    await produce(pipeline.settings, requests)
    assert await wait_verified(state, requests, timeout_s=300) == {}
    ids = [r.object_id for r in requests]

    # Plaintext data keys, recovered here only to prove they appear nowhere else.
    kek = open_kek(pipeline.settings)
    data_keys = []
    async for doc in state.db["data_keys"].find({}):
        data_keys.append(await kek.unwrap(doc["kek_key_id"], base64.b64decode(doc["wrapped"])))
    await kek.close()  # type: ignore[attr-defined]
    assert len(data_keys) == 3

    # Rotation re-wraps every data key and old KEK versions stop working; restores still do.
    rotated = pipeline.cli("keys", "rotate", "--disable-old")
    assert rotated.returncode == 0 and "3 data keys re-wrapped" in rotated.stdout, rotated.stderr
    for object_id in ids:
        out = tmp_path / f"{object_id}.out"
        done = pipeline.cli("restore", object_id, "--from", "gcs", "-o", str(out))
        assert done.returncode == 0, done.stdout + done.stderr
        assert out.read_bytes().startswith(MARKER)

    # Crypto-shredding: no replica of the forgotten object can be decrypted any more.
    assert pipeline.cli("forget", ids[0], "--yes").returncode == 0
    for target in TARGETS:
        denied = pipeline.cli("restore", ids[0], "--from", target, "-o", str(tmp_path / "x"))
        assert denied.returncode == 3  # no verified version to restore
        assert "shredded" in denied.stderr, denied.stderr
        assert not (tmp_path / "x").exists()

    async def shred_audited() -> bool:
        trail = await state.audit(ids[0])
        return any(r["action"] == "version.shredded" for r in trail)

    await wait_for(shred_audited, timeout_s=60)

    # The audit chains hold; an edited record is named.
    assert pipeline.cli("audit", "verify").returncode == 0
    victim = (await state.audit(ids[1]))[2]
    await state.db["audit"].update_one({"_id": victim["_id"]}, {"$set": {"outcome": "failed"}})
    tampered = pipeline.cli("audit", "verify")
    assert tampered.returncode == 1 and victim["_id"] in tampered.stdout

    # Nothing secret in topics, MongoDB or worker logs.
    env = read_local_env(pipeline.settings.home / "local.env")
    openbao = OpenBao(pipeline.settings)
    init = orjson.loads((openbao.dir / "init.json").read_bytes())
    secrets = [
        env["MOVINGDATA_OPENBAO_TOKEN"].encode(),
        env["MOVINGDATA_S3_SECRET_KEY"].encode(),
        init["root_token"].encode(),
        init["keys_base64"][0].encode(),
        openbao.token("seaweed").encode(),
        openbao.token("sink").encode(),  # the only token that signs checkpoints
        MARKER,
    ]
    for key in data_keys:
        secrets += [key, key.hex().encode(), base64.b64encode(key), base64.urlsafe_b64encode(key)]
    everything = await topic_bytes(pipeline)
    for name in await state.db.list_collection_names():
        everything += b"".join(
            [orjson.dumps(d, default=str) async for d in state.db[name].find({})]
        )
    everything += pipeline.worker_logs().encode()
    leaked = [s[:6] for s in secrets if s in everything]
    assert leaked == [], f"secrets found (first bytes): {leaked}"
    assert key_ref(ids[1], 1).encode() in everything  # the scan did see the data
