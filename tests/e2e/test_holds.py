"""Retention and legal hold against a real ``movingdata api``, real workers and services:
what is held is not deleted through either door (the API, even with an admin token; the
CLI's ``rm``), a legal hold is released by an admin only and the release audited, a
retention is never shortened, and a prefix hold covers a name put after it."""

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

from tests.e2e.test_api import bearer, is_problem, put_verified, token
from tests.e2e.test_versions import put_edits
from tests.pipeline import Pipeline
from tests.waiting import wait_for
from topics import DELETE
from workers.api.problems import HELD
from workers.audit.checkpoints import all_signed
from workers.cli.base import Code
from workers.client.identity import Actor
from workers.client.kafka import produce_events
from workers.client.ops import delete_request
from workers.client.state import State
from workers.core.reconcile import stalled_removals


async def test_a_held_version_is_refused_to_everyone_until_an_admin_releases_it(
    pipeline: Pipeline, api: str
) -> None:
    writer = bearer(token(pipeline, "holder", "writer"))
    admin = bearer(token(pipeline, "boss", "admin"))
    async with httpx.AsyncClient(base_url=api, timeout=300) as http:
        object_id = await put_verified(http, "case/a.txt", b"evidence" * 64, writer)
        hold = f"/v1/objects/{object_id}/hold"
        placed = await http.put(hold, json={"legal_hold": True, "reason": "case 7"}, headers=writer)
        assert placed.status_code == 200, placed.text
        assert [(h["version"], h["legal_hold"]) for h in placed.json()] == [(1, True)]
        shown = (await http.get(f"/v1/objects/{object_id}", headers=writer)).json()
        assert shown["versions"][0]["legal_hold"] is True

        for who in (writer, admin):
            refused = await http.delete(f"/v1/objects/{object_id}", headers=who)
            assert is_problem(refused, 409), refused.text
            assert refused.json()["type"] == HELD
            assert "a legal hold on v1 (case 7)" in refused.json()["detail"]
        forgot = await http.delete(
            f"/v1/objects/{object_id}", params={"forget": "true"}, headers=admin
        )
        assert is_problem(forgot, 409)

        rm = pipeline.cli("rm", "case/a.txt")
        assert rm.returncode == Code.REFUSED and rm.stdout == ""
        assert rm.stderr.count("\n") == 1 and "case/a.txt v1 is held" in rm.stderr, rm.stderr

        not_admin = await http.delete(hold, headers=writer)
        assert is_problem(not_admin, 403)
        released = await http.delete(hold, headers=admin)
        assert released.status_code == 200, released.text
        again = await http.delete(hold, headers=admin)
        assert is_problem(again, 409)  # nothing left to release

        async def trail() -> list[dict[str, Any]]:
            answer = await http.get(f"/v1/objects/{object_id}/audit", headers=writer)
            return answer.json()  # type: ignore[no-any-return]

        async def audited() -> bool:
            return {"hold.placed", "hold.released"} <= {r["action"] for r in await trail()}

        await wait_for(audited, timeout_s=60)
        actors = {r["action"]: r["actor"] for r in await trail()}
        assert (actors["hold.placed"], actors["hold.released"]) == ("api:holder", "api:boss")
        assert "delete.requested" not in actors  # nothing refused reached the chain

    removed = pipeline.cli("rm", "case/a.txt")
    assert removed.returncode == 0, removed.stderr


async def test_retention_is_never_shortened_and_a_prefix_hold_covers_later_puts(
    pipeline: Pipeline, api: str
) -> None:
    writer = bearer(token(pipeline, "keeper", "writer"))
    admin = bearer(token(pipeline, "chief", "admin"))
    now = datetime.now(UTC)
    later, sooner = (now + timedelta(days=2)).isoformat(), (now + timedelta(days=1)).isoformat()
    async with httpx.AsyncClient(base_url=api, timeout=300) as http:
        kept = {"prefix": "ledger/", "retain_until": later, "reason": "seven years"}
        by_writer = await http.put("/v1/holds", json=kept, headers=writer)
        assert is_problem(by_writer, 403)  # nobody can take a retention back: admin only
        placed = await http.put("/v1/holds", json=kept, headers=admin)
        assert placed.status_code == 200, placed.text
        shorter = await http.put("/v1/holds", json={**kept, "retain_until": sooner}, headers=admin)
        assert is_problem(shorter, 409) and "cannot be shortened" in shorter.json()["detail"]
        listed = (await http.get("/v1/holds", headers=writer)).json()
        assert [(h["kind"], h["prefix"]) for h in listed] == [("prefix", "ledger/")]

        object_id = await put_verified(http, "ledger/2026.csv", b"a,b\n" * 50, writer)
        shown = (await http.get(f"/v1/objects/{object_id}", headers=writer)).json()
        assert shown["versions"][0]["retain_until"] is not None
        refused = await http.delete(f"/v1/objects/{object_id}", headers=admin)
        assert is_problem(refused, 409) and "prefix 'ledger/'" in refused.json()["detail"]
        outside = await put_verified(http, "notes/free.txt", b"free", writer)
        assert (await http.delete(f"/v1/objects/{outside}", headers=writer)).status_code == 202


async def test_the_cli_holds_lists_refuses_and_releases(
    pipeline: Pipeline, worker_all: object, state: State, tmp_path: Path
) -> None:
    """Direct mode, as an operator runs it: ``hold``, ``holds list``, ``release``; a prefix's
    hold is audited on its tenant's chain of holds, and every chain still verifies."""
    (tmp_path / "deed.txt").write_bytes(b"deed" * 32)
    held = pipeline.cli("hold", "--prefix", "deeds/", "--until", "30d", "--reason", "probate")
    assert held.returncode == 0, held.stderr
    assert pipeline.cli("put", str(tmp_path / "deed.txt"), "--wait").returncode == 0
    put = pipeline.cli("put", str(tmp_path / "deed.txt"), "--prefix", "deeds/", "--wait")
    assert put.returncode == 0, put.stderr
    legal = pipeline.cli("hold", "deed.txt", "--legal", "--reason", "case 9")
    assert (legal.returncode, legal.stdout.strip()) == (0, "held deed.txt v1: legal hold")
    (shown,) = [
        json.loads(v) for v in pipeline.cli("show", "deed.txt", "--json").stdout.splitlines()
    ]
    assert shown["legal_hold"] is True
    (under,) = [
        json.loads(v) for v in pipeline.cli("show", "deeds/deed.txt", "--json").stdout.splitlines()
    ]
    assert under["retain_until"] is not None  # the prefix's retention
    lines = pipeline.cli("holds", "list", "--json").stdout.splitlines()
    listed = [json.loads(line) for line in lines]
    assert [(h["kind"], h.get("prefix") or h["name"]) for h in listed] == [
        ("prefix", "deeds/"),
        ("version", "deed.txt"),
    ]
    for name, why in (("deed.txt", "a legal hold on v1 (case 9)"), ("deeds/deed.txt", "probate")):
        rm = pipeline.cli("rm", name)
        assert rm.returncode != 0 and why in rm.stderr, rm.stderr
    released = pipeline.cli("release", "deed.txt")
    assert released.stdout.strip() == "released the legal hold of deed.txt v1", released.stderr
    assert pipeline.cli("release", "deed.txt").returncode != 0  # nothing left to release
    assert pipeline.cli("rm", "deed.txt").returncode == 0
    shortened = pipeline.cli("hold", "--prefix", "deeds/", "--until", "1d")
    assert shortened.returncode != 0 and "cannot be shortened" in shortened.stderr

    async def signed() -> bool:
        placed = await state.db["audit"].find_one({"object_id": "holds.default"})
        return placed is not None and await all_signed(state.db)

    await wait_for(signed, timeout_s=120)
    (record,) = await state.audit("holds.default")
    assert (record["action"], record["detail"]["hold"]) == ("hold.placed", "default/deeds/")
    verified = pipeline.cli("audit", "verify")
    assert verified.returncode == 0, verified.stdout + verified.stderr


async def test_a_removal_past_the_doors_is_dead_lettered_by_the_delete_stage_not_redriven(
    pipeline: Pipeline, worker_all: object, state: State, tmp_path: Path
) -> None:
    """A delete request sent straight to the chain (a replay, one sent before the hold) is
    refused by the delete stage: dead-lettered naming the hold, no tombstone, and recorded so
    the reconcile leaves it alone."""
    (tmp_path / "will.txt").write_bytes(b"will" * 32)
    assert pipeline.cli("put", str(tmp_path / "will.txt"), "--wait").returncode == 0
    assert pipeline.cli("hold", "will.txt", "--legal", "--reason", "estate").returncode == 0
    object_id, (doc,) = await state.resolve("will.txt", "default")
    request = delete_request(doc, "delete", "past the doors", Actor("test:bypass"))
    await produce_events(pipeline.settings, DELETE, [request])

    async def refused() -> bool:
        found = await state.object(object_id, 1)
        return bool(found and found.get("removal_refused_at"))

    await wait_for(refused, timeout_s=60)
    after = await state.object(object_id, 1)
    assert after is not None and after["state"] == "verified" and "deleted_at" not in after
    assert "a legal hold on v1 (estate)" in after["removal_refusal"]
    letter = await state.db["deadletters"].find_one({"stage": "delete"})
    assert letter is not None and letter["reason"] == after["removal_refusal"]
    assert stalled_removals(after, datetime.now(UTC) + timedelta(days=1), timedelta(hours=1)) == []


async def test_the_retention_job_retires_around_a_held_version(
    pipeline: Pipeline, state: State, tmp_path: Path
) -> None:
    """Keeping one version, the job retires v2 once v3 is verified, in the same round that
    passes over v1, which is held."""
    pipeline.settings = pipeline.settings.model_copy(
        update={"retain_versions": 1, "retention_interval_s": 1.0}
    )
    pipeline.start_worker("all")
    doc = tmp_path / "minutes.txt"
    put_edits(pipeline, doc, 1)
    assert pipeline.cli("hold", "minutes.txt", "--legal").returncode == 0
    doc.write_bytes(b"edit 1\n")
    assert pipeline.cli("put", str(doc), "--wait").returncode == 0
    doc.write_bytes(b"edit 2\n")
    assert pipeline.cli("put", str(doc), "--wait").returncode == 0
    object_id, _ = await state.resolve("minutes.txt", "default")

    async def retired() -> bool:
        return (await state.object(object_id, 2) or {}).get("state") == "deleted"

    await wait_for(retired, timeout_s=120)
    states = [(d["version"], d["state"]) for d in await state.objects(object_id)]
    assert states == [(1, "verified"), (2, "deleted"), (3, "verified")]
