"""Every stage's ``handle`` over in-memory stores: the chain, rejections, repair."""

import hashlib
import os
from pathlib import Path

import pytest

from schemas.events import (
    IngestRequest,
    ObjectAccepted,
    ObjectEncrypted,
    Placement,
    ReplicaTiered,
    ReplicaVerified,
    ReplicaWritten,
    Source,
)
from tests.unit.agents.conftest import inline_request
from workers.agents import encrypt, ingest, replicate, tier, verify
from workers.client.identity import cli_actor
from workers.client.puts import put_request
from workers.client.restore import decrypt_stream
from workers.deps import Deps
from workers.errors import IntegrityError, Permanent, Retryable
from workers.stores.base import Tier
from workers.stores.memory import MemoryStore


async def run_chain(request: IngestRequest, deps: Deps) -> dict[str, list]:
    """Drive one request through every stage, as the agents would."""
    (accepted,) = await ingest.handle(request, deps)
    assert isinstance(accepted.event, ObjectAccepted)
    encrypted, *replicated = await encrypt.handle(accepted.event, deps)
    assert isinstance(encrypted.event, ObjectEncrypted)
    written, verified, tiered = [], [], []
    copies = [await replicate.handle(one, deps) for one in replicate.per_target(encrypted.event)]
    for (w,) in [[r] for r in replicated] + copies:
        written.append(w.event)
        (v,) = await verify.handle(w.event, deps)
        verified.append(v.event)
        (t,) = await tier.handle(v.event, deps)
        tiered.append(t.event)
    return {
        "encrypted": [encrypted.event],
        "written": written,
        "verified": verified,
        "tiered": tiered,
    }


async def plaintext_of(deps: Deps, target: str, event: ObjectEncrypted) -> bytes:
    chunks = deps.store(target).read(event.key)
    return b"".join([c async for c in decrypt_stream(chunks, deps.data_keys, event.object_id, 1)])


@pytest.mark.parametrize("size", [0, 1, 4095, 4096, 4097, 3 * 4096 + 17])
async def test_chain_encrypts_replicates_verifies_and_restores(deps: Deps, size: int) -> None:
    data = os.urandom(size)
    out = await run_chain(inline_request(data), deps)
    (enc,) = out["encrypted"]
    assert enc.plaintext_sha256 == hashlib.sha256(data).hexdigest()
    assert enc.plaintext_size == size and enc.ciphertext_size > size
    assert sorted(v.target for v in out["verified"]) == ["azure", "gcs", "s3"]
    for target in ("s3", "azure", "gcs"):
        stored = b"".join([c async for c in deps.store(target).read(enc.key)])
        assert hashlib.sha256(stored).hexdigest() == enc.ciphertext_sha256
        if size >= 64:
            assert data[:64] not in stored  # ciphertext, not plaintext
        assert await plaintext_of(deps, target, enc) == data


async def test_file_source_streams_in_chunks(deps: Deps, tmp_path: Path) -> None:
    data = os.urandom(50_000)
    (tmp_path / "f.bin").write_bytes(data)
    request = put_request(
        Placement(name="f.bin", targets=("s3", "gcs")),
        Source(path=str(tmp_path / "f.bin")),
        None,
        actor=cli_actor(),
    )
    out = await run_chain(request, deps)
    assert [v.target for v in out["verified"]] == ["s3", "gcs"]
    assert await plaintext_of(deps, "gcs", out["encrypted"][0]) == data


async def test_fernet_mode_round_trip(deps: Deps) -> None:
    out = await run_chain(inline_request(b"small and old-fashioned", mode="fernet"), deps)
    (enc,) = out["encrypted"]
    assert enc.algorithm == "fernet"
    assert await plaintext_of(deps, "azure", enc) == b"small and old-fashioned"


async def test_tier_tag_sets_storage_tier(deps: Deps) -> None:
    out = await run_chain(inline_request(b"x" * 100, tags={"tier": "cold"}), deps)
    assert {t.tier for t in out["tiered"]} == {"cold"}
    info = await deps.store("azure").stat(out["encrypted"][0].key)
    assert info.tier == Tier.COLD
    assert all(isinstance(t, ReplicaTiered) for t in out["tiered"])


@pytest.mark.parametrize(
    ("source", "reason"),
    [
        (Source(path="relative/file"), "absolute"),
        (Source(path="/etc/hostname"), "outside the allowed source roots"),
        (Source(url="s3://elsewhere/key"), "outside the allowed stores"),
    ],
)
async def test_ingest_rejects_sources(deps: Deps, source: Source, reason: str) -> None:
    request = put_request(Placement(name="n", targets=("s3",)), source, None, actor=cli_actor())
    with pytest.raises(Permanent, match=reason):
        await ingest.handle(request, deps)


async def test_ingest_rejects_missing_file_and_unknown_target(deps: Deps, tmp_path: Path) -> None:
    missing = put_request(
        Placement(name="n", targets=("s3",)),
        Source(path=str(tmp_path / "nope")),
        None,
        actor=cli_actor(),
    )
    with pytest.raises(Permanent, match="not a regular file"):
        await ingest.handle(missing, deps)
    other = put_request(
        Placement(name="n", targets=("memory",)), Source(inline_b64=""), None, actor=cli_actor()
    )
    with pytest.raises(Permanent, match="not configured"):
        await ingest.handle(other, deps)


async def written_events(deps: Deps, data: bytes) -> list[ReplicaWritten]:
    (accepted,) = await ingest.handle(inline_request(data), deps)
    encrypted, *replicated = await encrypt.handle(accepted.event, deps)
    assert replicate.per_target(encrypted.event) == []  # the one pass wrote every target
    return [w.event for w in replicated]


async def test_verify_repairs_an_overwritten_replica(deps: Deps) -> None:
    events = await written_events(deps, os.urandom(10_000))
    bad = next(e for e in events if e.target == "azure")

    async def garbage():
        yield b"not the ciphertext"

    await deps.store("azure").write(bad.key, garbage())
    (out,) = await verify.handle(bad, deps)
    assert isinstance(out.event, ReplicaVerified)
    assert out.event.repaired_from == "s3"
    stored = b"".join([c async for c in deps.store("azure").read(bad.key)])
    assert hashlib.sha256(stored).hexdigest() == bad.ciphertext_sha256


async def test_verify_repairs_a_deleted_replica(deps: Deps) -> None:
    events = await written_events(deps, b"y" * 5000)
    gone = next(e for e in events if e.target == "gcs")
    await deps.store("gcs").delete(gone.key)
    (out,) = await verify.handle(gone, deps)
    assert out.event.repaired_from == "s3"


async def test_store_returning_wrong_bytes_is_never_verified(deps: Deps) -> None:
    events = await written_events(deps, b"z" * 3000)
    lying = deps.store("gcs")
    assert isinstance(lying, MemoryStore)
    target = next(e for e in events if e.target == "gcs")
    lying.corrupt_reads.add(target.key)
    with pytest.raises(IntegrityError, match="still differs"):
        await verify.handle(target, deps)


async def test_verify_without_any_good_copy_retries_later(deps: Deps) -> None:
    events = await written_events(deps, b"w" * 3000)
    for store in deps.stores.values():
        await store.delete(events[0].key)
    with pytest.raises(Retryable, match="no intact copy"):
        await verify.handle(events[1], deps)


async def test_fan_out_puts_each_target_on_its_own_topic(deps: Deps) -> None:
    (accepted,) = await ingest.handle(inline_request(b"q" * 100), deps)
    encrypted, *_ = await encrypt.handle(accepted.event, deps)
    before_one_pass = encrypted.event.model_copy(update={"written_targets": ()})
    outs = await replicate.fan_out(before_one_pass, deps)
    assert [o.topic.suffix for o in outs] == ["replicate.s3", "replicate.azure", "replicate.gcs"]
    assert [o.event.only_targets for o in outs] == [("s3",), ("azure",), ("gcs",)]
    assert len({o.event.event_id for o in outs}) == 3
    (written,) = await replicate.handle(outs[1].event, deps)
    assert written.topic.suffix == "replicated.azure"
