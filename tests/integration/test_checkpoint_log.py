"""The checkpoint log on the real MongoDB-protocol server, signed by the real OpenBao transit
key: appended, never replaced; a head that does not extend its signed one is refused; a log
put back to an older checkpoint, or signed heads edited, stop the round; ``verify`` names
each, and a crash between a checkpoint and its signed heads is completed."""

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pymongo import AsyncMongoClient
from pymongo.asynchronous.database import AsyncDatabase

from bench import tamper
from tests.integration.test_audit_chain import records, trail
from workers.agents.sink import append_audit, create_indexes
from workers.audit import checkpoints
from workers.audit.checkpoints import SIGNED, Signed, all_signed, sign_next
from workers.audit.verify import verify
from workers.kms.keys import AuditSigner, open_signer
from workers.settings import Settings

Doc = dict[str, Any]
T0 = datetime(2026, 12, 7, 12, tzinfo=UTC)


@pytest.fixture
async def db(settings: Settings, unique: str) -> AsyncIterator[AsyncDatabase[Doc]]:
    client: AsyncMongoClient[Doc] = AsyncMongoClient(settings.mongo_url)
    try:
        await create_indexes(client[unique])
        await checkpoints.create_indexes(client[unique])
        yield client[unique]
    finally:
        await client.drop_database(unique)
        await client.close()


@pytest.fixture
async def signer(settings: Settings) -> AsyncIterator[AuditSigner]:
    signer = open_signer(settings, "sink")  # the sink's own token: the only one that signs
    yield signer
    await signer.close()


async def signed_round(db: AsyncDatabase[Doc], signer: AuditSigner, n: int) -> Doc:
    done = await sign_next(db, signer, T0 + timedelta(seconds=n), None)
    assert done.problem is None and not done.refused and done.signed is not None
    return done.signed


async def forty_chains_signed(db: AsyncDatabase[Doc], signer: AuditSigner) -> None:
    """Chains o0 to o39, two records each, signed in checkpoint 1: segments enough for a
    sweep of one segment a round to miss most of them."""
    await append_audit(db, [r for n in range(40) for r in records(f"o{n}", 0, 2)])
    await signed_round(db, signer, 1)


async def test_checkpoints_are_appended_and_link_to_the_one_before(
    db: AsyncDatabase[Doc], signer: AuditSigner
) -> None:
    await append_audit(db, records("a", 0, 3) + records("b", 0, 2))
    first = await signed_round(db, signer, 1)
    assert (first["_id"], first["size"], first["moved"]) == (1, 2, 2)
    assert await all_signed(db)
    assert (await sign_next(db, signer, T0, None)).signed is None  # nothing moved
    await append_audit(db, records("a", 3, 5))
    second = await signed_round(db, signer, 2)
    assert (second["_id"], second["prev"], second["moved"]) == (2, first["digest"], 1)
    assert await db["audit_log"].count_documents({}) == 2  # appended, not replaced
    found = await verify(db, signer, [{"number": 1, "digest": first["digest"]}])
    assert found.broken == {} and found.chains == 2 and "checkpoint 2" in found.log
    await db[SIGNED].update_one({"_id": "b"}, {"$set": {"seq": 1}})  # a signed head edited
    done = await sign_next(db, signer, T0 + timedelta(seconds=3), None)
    assert done.signed is None and "no longer give checkpoint 2's root" in str(done.problem)


async def test_a_consistent_rewrite_and_a_cut_end_are_refused_and_named(
    db: AsyncDatabase[Doc], signer: AuditSigner
) -> None:
    await append_audit(
        db, records("a", 0, 4) + records("b", 0, 4) + records("c", 0, 2) + records("d", 0, 2)
    )
    await signed_round(db, signer, 1)
    await db["audit"].delete_many({"object_id": "d"})  # a whole chain and its head deleted
    await db["audit_heads"].delete_one({"_id": "d"})
    prev = await tamper.rewrite(db, "a", 1)  # a middle record edited, later ones re-hashed
    await tamper.cut(db, "b")  # the end cut, the head moved back to match
    await append_audit(db, records("c", 2, 3))  # an honest change goes on being signed

    done = await sign_next(db, signer, T0 + timedelta(seconds=2), None)
    assert set(done.refused) == {"a", "b", "d"}, done.refused
    assert "its head is gone" in done.refused["d"][0]
    assert "rewritten after a checkpoint" in done.refused["a"][0]
    assert "moved back" in done.refused["b"][0]
    assert done.signed is not None and done.signed["moved"] == 1  # c alone
    signed_a = await db[SIGNED].find_one({"_id": "a"})
    assert signed_a is not None and signed_a["seq"] == 4 and signed_a["hash"] != prev
    found = await verify(db, signer, ())
    assert set(found.broken) == {"a", "b", "d"}, found.broken
    assert "gone" in found.broken["d"]
    assert "rewritten after a checkpoint" in found.broken["a"]
    assert "gone" in found.broken["b"]


async def test_a_log_put_back_or_signed_heads_edited_stop_the_round(
    db: AsyncDatabase[Doc], signer: AuditSigner
) -> None:
    await append_audit(db, records("a", 0, 2))
    first = await signed_round(db, signer, 1)
    await append_audit(db, records("a", 2, 3))
    second = await signed_round(db, signer, 2)
    # The second checkpoint removed and everything put back as at the first (a restore of
    # an older backup): consistent in itself.
    await db["audit_log"].delete_one({"_id": 2})
    await db["audit_signed_changes"].delete_many({"number": 2})
    await db[SIGNED].update_one({"_id": "a"}, {"$set": {"seq": 2, "number": 1}})
    old = await trail(db, "a")
    await db[SIGNED].update_one({"_id": "a"}, {"$set": {"hash": old[1]["hash"]}})
    await db["audit"].delete_one({"_id": old[-1]["_id"]})
    await db["audit_heads"].update_one({"_id": "a"}, {"$set": {"seq": 2, "hash": old[1]["hash"]}})
    last = Signed(second["_id"], second["digest"])
    done = await sign_next(db, signer, T0 + timedelta(seconds=3), last)
    assert done.signed is None and "went back" in str(done.problem)
    published = [{"number": n["_id"], "digest": n["digest"]} for n in (first, second)]
    found = await verify(db, signer, published)
    assert "checkpoint 2 was published but the log does not hold it" in found.broken["checkpoint"]
    assert "a" not in found.broken  # the chain agrees with the rolled-back log

    # A signed head edited where the latest checkpoint's own record of it is kept.
    change = checkpoints.change_id(1, "a")
    await db["audit_signed_changes"].update_one({"_id": change}, {"$set": {"seq": 1}})
    done = await sign_next(db, signer, T0 + timedelta(seconds=4), None)
    assert done.signed is None and "no longer give checkpoint 1's root" in str(done.problem)


async def test_a_crash_between_a_checkpoint_and_its_signed_heads_is_completed(
    db: AsyncDatabase[Doc], signer: AuditSigner
) -> None:
    await append_audit(db, records("a", 0, 2) + records("b", 0, 1))
    await signed_round(db, signer, 1)
    segment = {"_id": checkpoints.seg_key(checkpoints.segment_of("a"))}
    old_root = await db["audit_segments"].find_one(segment)
    await append_audit(db, records("a", 2, 4))
    await signed_round(db, signer, 2)
    assert old_root is not None
    # As if the process stopped after writing the signed head, before its segment's root.
    await db["audit_segments"].replace_one(segment, old_root)
    done = await sign_next(db, signer, T0 + timedelta(seconds=3), None, sweep=1)
    assert done.problem is None, done.problem
    assert (await verify(db, signer, ())).broken == {}
    # As if it stopped after the checkpoint and before applying anything.
    before = (await trail(db, "a"))[1]
    await db[SIGNED].update_one({"_id": "a"}, {"$set": {"seq": 2, "hash": before["hash"]}})
    await db["audit_segments"].replace_one(segment, old_root)
    done = await sign_next(db, signer, T0 + timedelta(seconds=4), None)
    assert done.problem is None, done.problem
    assert await all_signed(db)
    assert (await verify(db, signer, ())).broken == {}


async def test_a_signed_head_edited_outside_the_sweep_is_not_signed_over(
    db: AsyncDatabase[Doc], signer: AuditSigner
) -> None:
    await forty_chains_signed(db, signer)
    await append_audit(db, records("o8", 2, 3))
    await signed_round(db, signer, 2)  # o3's signed head now stands in audit_signed alone
    # o3's signed head deleted and its chain rewritten from the start, then a head in its
    # segment moved by the sink: the round must not sign o3 as a new chain.
    victim = "o3"
    await db[SIGNED].delete_one({"_id": victim})
    await tamper.rewrite(db, victim, 1)
    await db["audit_heads"].update_one({"_id": victim}, {"$set": {"dirty": checkpoints.MOVED}})
    done = await sign_next(db, signer, T0 + timedelta(seconds=3), None, sweep=1)
    assert done.signed is None and "differs" in str(done.problem), done
    again = await sign_next(db, signer, T0 + timedelta(seconds=4), None, sweep=1)
    assert again.signed is None and again.problem == done.problem  # until it is mended
    found = await verify(db, signer, (), only=victim)
    assert "does not give checkpoint 2's root" in found.broken[victim], found.broken


async def test_a_round_checks_marked_heads_at_once_and_finds_an_unmarked_one_by_its_sweep(
    db: AsyncDatabase[Doc], signer: AuditSigner
) -> None:
    await forty_chains_signed(db, signer)
    assert await db["audit_heads"].count_documents({"dirty": {"$exists": True}}) == 0  # settled
    await tamper.cut(db, "o7")  # behind the sink's back: no mark
    await append_audit(db, records("o8", 2, 3))  # the sink's own change: marked
    rounds = []
    for n in range(4):  # a quarter of the segments a round: o7's comes within four
        done = await sign_next(db, signer, T0 + timedelta(seconds=2 + n), None, sweep=1024)
        assert done.problem is None, done.problem
        rounds.append(done)
        if done.refused:
            break
    assert rounds[0].signed is not None and rounds[0].signed["moved"] == 1  # o8, at once
    assert set(rounds[-1].refused) == {"o7"} and "moved back" in rounds[-1].refused["o7"][0]
    cursor = await db["audit_sweep"].find_one({"_id": "cursor"})
    assert cursor is not None and cursor["next"] == len(rounds) * 1024 % 4096
    # Only the segments a change touched were re-hashed: o8's segment root moved, no other.
    segments = {d["_id"]: d["number"] async for d in db["audit_segments"].find({})}
    assert segments[checkpoints.seg_key(checkpoints.segment_of("o8"))] == 2
    assert sorted(set(segments.values())) == [1, 2]
    assert sum(n == 2 for n in segments.values()) == 1


async def test_one_chain_is_proven_by_its_inclusion_path(
    db: AsyncDatabase[Doc], signer: AuditSigner
) -> None:
    await append_audit(db, [r for name in "abcdef" for r in records(name, 0, 3)])
    top = await signed_round(db, signer, 1)
    found = await verify(db, signer, (), only="c")
    assert found.broken == {} and found.chains == 1, found.broken
    assert "c: its signed head is in checkpoint 1 (an inclusion path of" in found.log
    proof = await checkpoints.inclusion(db, "c", top, await checkpoints.changes_of(db, top))
    assert proof is not None and proof.root() == top["root"]
    await append_audit(db, records("a", 3, 4))
    top = await signed_round(db, signer, 2)  # c's signed head now stands in audit_signed alone
    # The signed head and its segment's root rewritten to agree: the signed root refuses it.
    forged = (await trail(db, "c"))[1]
    await db[SIGNED].update_one({"_id": "c"}, {"$set": {"seq": 2, "hash": forged["hash"]}})
    segment = checkpoints.segment_of("c")
    root = checkpoints.tree_of(await checkpoints.segment_heads(db, segment, {}))
    await db["audit_segments"].update_one(
        {"_id": checkpoints.seg_key(segment)}, {"$set": {"root": root[0], "size": root[1]}}
    )
    found = await verify(db, signer, (), only="c")
    assert "is not in checkpoint 2's root" in found.broken["c"], found.broken
    assert (
        "no longer give checkpoint 2's root" in (await verify(db, signer, ())).broken["checkpoint"]
    )


async def test_a_checkpoint_from_before_segments_is_checked_flat_then_continued(
    db: AsyncDatabase[Doc], signer: AuditSigner
) -> None:
    await append_audit(db, records("a", 0, 2) + records("b", 0, 2))
    heads = {d["_id"]: (d["seq"], d["hash"]) async for d in db["audit_heads"].find({})}
    for object_id, (seq, hash_) in heads.items():  # as the flat log stored them: no segment
        await db[SIGNED].insert_one({"_id": object_id, "seq": seq, "hash": hash_, "number": 1})
    root, size = await checkpoints.flat_root(db, {})
    doc = {"_id": 1, "at": T0, "prev": "0" * 64, "root": root, "size": size, "moved": 2}
    doc["digest"] = checkpoints.digest_of(doc)
    doc["signature"] = await signer.sign(doc["digest"].encode())
    await db["audit_log"].insert_one(doc)
    await db["audit_heads"].update_many({}, {"$unset": {"dirty": ""}})
    assert (await verify(db, signer, ())).broken == {}
    await append_audit(db, records("a", 2, 3))
    second = await signed_round(db, signer, 2)
    assert second["segments"] == 4096 and second["prev"] == doc["digest"]
    assert await db[SIGNED].count_documents({"seg": {"$exists": True}}) == 2
    assert await all_signed(db)
    assert (await verify(db, signer, ())).broken == {}
