"""Tamper evidence that survives a running sink: with the workers running (the sink signing a
checkpoint every second), a chain rewritten consistently, a chain cut at its end with its
head moved back, and the database put back to an older checkpoint are each refused by the
sink, named by ``audit verify``, and the other chains go on being signed."""

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from bench import tamper
from tests.pipeline import Pipeline
from tests.stores import drop_locked_bucket
from tests.waiting import wait_for
from workers.audit.checkpoints import LOG, SEGS, SIGNED, SWEEP, all_signed
from workers.client.state import State

AUDIT = ("audit", "audit_heads", SIGNED, "audit_signed_changes", LOG, SEGS, SWEEP)


LOCK_S = 20.0  # each checkpoint's locked copy is retained this long (then cleaned up)


@pytest.fixture
def pipeline_overrides(unique: str) -> dict[str, object]:
    return {
        "source_roots": (),
        "audit_checkpoint_s": 1.0,
        "audit_sweep_segments": 512,
        "audit_lock_bucket": f"lock-{unique}",
        "audit_lock_days": LOCK_S / 86400,
    }


@pytest.fixture(autouse=True)
async def locked_bucket(pipeline: Pipeline) -> AsyncIterator[None]:
    yield
    await drop_locked_bucket(pipeline.settings, str(pipeline.settings.audit_lock_bucket), 120)


async def put_files(pipeline: Pipeline, folder: Path, names: list[str]) -> None:
    for name in names:
        (folder / name).write_bytes(f"contents of {name}\n".encode() * 200)
    put = pipeline.cli("put", *(str(folder / n) for n in names), "--wait")
    assert put.returncode == 0, put.stdout + put.stderr


async def settled(state: State, count: int) -> bool:
    """``count`` chains, each complete (tier follows verify) and signed as it stands."""
    heads = await state.db["audit_heads"].count_documents({"_id": {"$ne": "audit-checkpoints"}})
    return heads == count and await all_signed(state.db)


async def actions(state: State, object_id: str) -> list[str]:
    return [r["action"] for r in await state.audit(object_id)]


async def test_a_rewritten_chain_and_a_cut_chain_are_refused_while_the_sink_runs(
    pipeline: Pipeline, worker_all: Any, state: State, tmp_path: Path
) -> None:
    await put_files(pipeline, tmp_path, [f"f{n}.txt" for n in range(3)])
    await wait_for(lambda: settled(state, 3), timeout_s=120)
    intact = pipeline.cli("audit", "verify")
    assert intact.returncode == 0 and "3 audit chains intact; checkpoint" in intact.stdout, (
        intact.stdout + intact.stderr
    )
    db = state.db
    rewritten, cut = [(await state.resolve(f"f{n}.txt", "default"))[0] for n in range(2)]
    await tamper.rewrite(db, rewritten, 3)  # a middle record edited, later ones re-hashed
    await tamper.cut(db, cut)  # the last record deleted, the head moved back to match

    async def refused() -> bool:  # the sink's alerts, recorded in the chains themselves
        found = [await actions(state, o) for o in (rewritten, cut)]
        return all("checkpoint.refused" in trail for trail in found)

    await wait_for(refused, timeout_s=60)
    await put_files(pipeline, tmp_path, ["after.txt"])  # the others are still signed
    after = (await state.resolve("after.txt", "default"))[0]

    async def after_signed() -> bool:
        head = await db["audit_heads"].find_one({"_id": after})
        signed = await db[SIGNED].find_one({"_id": after})
        return bool(head and signed and head["hash"] == signed["hash"])

    await wait_for(after_signed, timeout_s=60)
    for object_id in (rewritten, cut):  # still the head signed before the tampering
        signed = await db[SIGNED].find_one({"_id": object_id})
        assert signed is not None and signed["seq"] >= 4
    caught = pipeline.cli("audit", "verify")
    assert caught.returncode == 1, caught.stdout
    lines = caught.stdout.splitlines()
    assert any(rewritten in line and "rewritten after a checkpoint" in line for line in lines), (
        lines,
        caught.stderr,
    )
    # The cut record's place is taken by the sink's alert: either way, not what was signed.
    assert any(
        cut in line and ("is gone" in line or "rewritten after a checkpoint" in line)
        for line in lines
    ), lines
    assert sum("broken" in line for line in lines) == 2, lines
    one = pipeline.cli("audit", "verify", "f1.txt")
    assert one.returncode == 1 and cut in one.stdout and rewritten not in one.stdout
    assert pipeline.cli("audit", "verify", "after.txt").returncode == 0
    assert "audit head refused" in pipeline.worker_logs()


async def test_a_database_put_back_to_an_older_checkpoint_is_caught(
    pipeline: Pipeline, worker_all: Any, state: State, tmp_path: Path
) -> None:
    await put_files(pipeline, tmp_path, ["a.txt", "b.txt"])
    await wait_for(lambda: settled(state, 2), timeout_s=120)
    db = state.db
    backup = {name: [d async for d in db[name].find({})] for name in AUDIT}  # consistent now
    await put_files(pipeline, tmp_path, ["c.txt"])
    await wait_for(lambda: settled(state, 3), timeout_s=120)
    newest = await db[LOG].find_one({}, sort=[("_id", -1)])
    assert newest is not None and newest["_id"] > max(d["_id"] for d in backup[LOG])

    for name, docs in backup.items():  # the older backup restored over the trail
        await db[name].delete_many({})
        await db[name].insert_many(docs)
    await put_files(pipeline, tmp_path, ["d.txt"])  # a head moves: the sink tries to sign

    async def sink_refused() -> bool:
        return "the checkpoint log went back" in pipeline.worker_logs()

    await wait_for(sink_refused, timeout_s=60)
    assert (await db[LOG].find_one({}, sort=[("_id", -1)]) or {}).get("_id") == max(
        d["_id"] for d in backup[LOG]
    )  # nothing signed over the rolled-back log
    caught = pipeline.cli("audit", "verify")
    assert caught.returncode == 1, caught.stdout
    found = caught.stdout.replace("\n", " ")
    for copy in ("published", "locked"):  # the audit topic's copy and the locked bucket's
        assert f"checkpoint {newest['_id']} was {copy} but the log does not hold it" in found, (
            caught.stdout
        )
