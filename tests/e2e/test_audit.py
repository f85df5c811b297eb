"""The audit trail names who did what, records restores, removals and every scrub (tamper
evidence with the workers running: ``test_audit_tamper``)."""

from pathlib import Path

import pytest

from tests.pipeline import Pipeline
from tests.waiting import wait_for
from workers.client.identity import cli_actor
from workers.client.state import State


@pytest.fixture
def pipeline_overrides() -> dict[str, object]:
    return {"source_roots": (), "audit_checkpoint_s": 1.0, "audit_sweep_segments": 512}


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
