"""The audit trail names who did what, records restores, removals and every scrub, and
``audit verify`` catches a cut chain end, a deleted chain and a rewritten, re-hashed chain."""

from pathlib import Path

import pytest

from tests.pipeline import EXPECTED_STEPS, Pipeline
from tests.waiting import wait_for
from workers.agents.sink import CHECKPOINT
from workers.client.identity import cli_actor
from workers.client.state import State
from workers.core.auditchain import record_hash


@pytest.fixture
def pipeline_overrides() -> dict[str, object]:
    return {"source_roots": (), "audit_checkpoint_s": 1.0}


async def trail(state: State, name: str) -> list[dict]:  # type: ignore[type-arg]
    object_id, _ = await state.resolve(name, "default")
    return await state.audit(object_id)


async def test_the_trail_names_actors_and_records_restores_removals_and_scrubs(
    pipeline: Pipeline, worker_all, state: State, tmp_path: Path
) -> None:
    for name in ("a.txt", "b.txt"):
        (tmp_path / name).write_bytes(name.encode() * 1000)
    assert (
        pipeline.cli("put", str(tmp_path / "a.txt"), str(tmp_path / "b.txt"), "--wait").returncode
        == 0
    )
    out = tmp_path / "restored"
    assert pipeline.cli("restore", "a.txt", "-o", str(out)).returncode == 0
    assert (
        pipeline.cli("restore", "a.txt", "--from", "s3", "-o", str(out)).returncode == 1
    )  # exists
    for _ in range(2):
        assert "3 replicas sent" in pipeline.cli("scrub", "a.txt").stdout
    assert pipeline.cli("rm", "b.txt").returncode == 0
    me = cli_actor().name

    async def complete() -> bool:
        actions = [r["action"] for r in await trail(state, "a.txt")]
        return actions.count("scrub.verified") == 6 and "restore" in actions

    await wait_for(complete, timeout_s=120)
    a = await trail(state, "a.txt")
    assert all(r["actor"] for r in a)  # every record names who
    accepted = next(r for r in a if r["action"] == "object.accepted")
    assert accepted["actor"].startswith("worker:ingest@")
    (restore,) = [r for r in a if r["action"] == "restore"]
    assert restore["actor"] == me and restore["outcome"] == "ok"
    assert restore["detail"]["replica"] == "s3"
    doc = (await state.resolve("a.txt", "default"))[1][-1]
    assert doc["requested_by"] == me
    b = await trail(state, "b.txt")
    intent = next(r for r in b if r["action"] == "delete.requested")
    assert intent["actor"] == me
    assert [r["action"] for r in b].index("delete.requested") < [r["action"] for r in b].index(
        "version.deleted"
    )


async def test_audit_verify_catches_a_cut_end_a_deleted_chain_and_a_rewritten_chain(
    pipeline: Pipeline, worker_all, state: State, tmp_path: Path
) -> None:
    for n in range(4):
        (tmp_path / f"f{n}.txt").write_bytes(f"file {n}\n".encode() * 100)
    put = pipeline.cli("put", *(str(tmp_path / f"f{n}.txt") for n in range(4)), "--wait")
    assert put.returncode == 0, put.stdout + put.stderr
    db = state.db
    steps = sum(EXPECTED_STEPS.values())  # each object's chain steps at least

    async def checkpointed() -> bool:
        # Every chain complete (tier follows verify) and the latest checkpoint holds them all.
        heads = {d["_id"]: d["seq"] async for d in db["audit_heads"].find({})}
        checkpoint = await db["audit_checkpoints"].find_one({"_id": CHECKPOINT})
        counts = {o: await db["audit"].count_documents({"object_id": o}) for o in heads}
        return (
            len(heads) == 4
            and all(seq == counts[o] and seq >= steps for o, seq in heads.items())
            and checkpoint is not None
            and {h["object_id"]: h["seq"] for h in checkpoint["heads"]} == heads
        )

    await wait_for(checkpointed, timeout_s=120)
    intact = pipeline.cli("audit", "verify")
    assert intact.returncode == 0 and "4 audit chains intact; checkpoint" in intact.stdout, (
        intact.stdout
    )
    pipeline.stop_workers()  # nobody writes while the attacker does

    ids = [(await state.resolve(f"f{n}.txt", "default"))[0] for n in range(3)]
    cut, deleted, rewritten = ids
    chain = await state.audit(cut)  # the last record deleted, the head moved back to match
    await db["audit"].delete_one({"_id": chain[-1]["_id"]})
    await db["audit_heads"].update_one(
        {"_id": cut}, {"$set": {"seq": chain[-2]["seq"], "hash": chain[-2]["hash"]}}
    )
    await db["audit"].delete_many({"object_id": deleted})  # the whole chain and its head
    await db["audit_heads"].delete_one({"_id": deleted})
    chain = await state.audit(rewritten)  # one record edited, every later one re-hashed
    chain[3]["detail"] = {"forged": True}
    prev = chain[2]["hash"]
    for record in chain[3:]:
        record["prev_hash"] = prev
        record["hash"] = prev = record_hash(prev, record)
        await db["audit"].replace_one({"_id": record["_id"]}, record)
    await db["audit_heads"].update_one({"_id": rewritten}, {"$set": {"hash": prev}})

    caught = pipeline.cli("audit", "verify")
    assert caught.returncode == 1, caught.stdout
    lines = caught.stdout.splitlines()
    assert any(cut in line and "is gone" in line for line in lines), lines
    assert any(deleted in line and "is gone" in line for line in lines), lines
    assert any(rewritten in line and "rewritten after a checkpoint" in line for line in lines), (
        lines
    )
    assert sum("broken" in line for line in lines) == 3
