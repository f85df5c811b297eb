"""Pure parts of the sink: which fields each event owns, and the audit hash chain."""

import itertools
from datetime import UTC, datetime

from schemas.events import (
    DeadLetter,
    DeleteRequest,
    Event,
    ObjectAccepted,
    ObjectAccessed,
    ObjectEncrypted,
    RecordRef,
    ReplicaRemoval,
    ReplicaTiered,
    ReplicaVerified,
    ReplicaWritten,
    Source,
)
from tests.unit.agents.conftest import inline_request
from workers.agents.sink import (
    READS_KEPT,
    Head,
    HeadCache,
    batch_writes,
    latest_tier,
    latest_verdict,
    object_update,
    object_writes,
    ref_slot,
    update_document,
)
from workers.core.auditchain import (
    GENESIS,
    chain_problem,
    checkpoint_digest,
    extension_problem,
    first_broken_link,
    record_hash,
    signed_problem,
)
from workers.core.holds import REMOVAL_REFUSED
from workers.dispatch import stamp


def test_events_own_disjoint_fields_of_the_object_document() -> None:
    request = inline_request(b"x", tags={"a": "b"})
    accepted = stamp(
        ObjectAccepted, request, "1", version=1, source=request.source, placement=request.placement
    )
    tiered = stamp(
        ReplicaTiered, request, "2", version=1, target="s3", key="k", tier="cold", reason="tag"
    )
    a, t = object_update(accepted), object_update(tiered)
    assert a is not None and t == {}  # a tier is recorded by latest_tier
    assert a["source"] == "inline" and a["tags"] == {"a": "b"}
    assert object_update(request) is None


def test_the_version_records_the_fingerprint_a_sync_listed_its_source_with() -> None:
    request = inline_request(b"x")
    md5 = "9dd4e461268c8034f5c8564e155c67a6"
    listed = Source(url="s3://src/a.bin", fingerprint="generation:7", digests={"md5": md5})
    for source, expected in ((listed, ("generation:7", {"md5": md5})), (request.source, None)):
        assert source is not None
        accepted = stamp(
            ObjectAccepted, request, "1", version=1, source=source, placement=request.placement
        )
        update = object_update(accepted)
        assert update is not None
        recorded = (update["source_fingerprint"], update["source_digests"]) if expected else None
        assert recorded == expected and ("source_fingerprint" in update) == bool(expected)


def test_a_tier_is_recorded_only_over_an_older_placement() -> None:
    request = inline_request(b"x")
    tiered = stamp(
        ReplicaTiered, request, "2", version=1, target="s3", key="k", tier="cold", reason="r"
    )
    write = latest_tier(tiered)
    at = tiered.produced_at
    assert write._filter == {
        "_id": f"{request.object_id}:v1",
        "replicas.s3.tier_events": {"$ne": tiered.event_id},  # a replay's copy: not again
        "$or": [
            {"replicas.s3.tiered_at": {"$exists": False}},
            {"replicas.s3.tiered_at": {"$lt": at}},
        ],
    }
    assert write._doc == {
        "$set": {
            "replicas.s3.tier": "cold",
            "replicas.s3.tiered_at": at,
            "replicas.s3.tier_reason": "r",
        },
        "$push": {"replicas.s3.tier_events": tiered.event_id},
    }
    assert [w._doc for w in object_writes(tiered)][1:] == [write._doc]


def test_a_read_is_appended_once_and_the_oldest_dropped_when_full() -> None:
    request = inline_request(b"x")
    read = stamp(ObjectAccessed, request, "r1", version=1, target="s3", bytes_read=1)
    pop, push = object_writes(read)
    once = {"_id": f"{request.object_id}:v1", "read_ids": {"$ne": read.event_id}}
    assert pop._filter == {**once, f"reads.{READS_KEPT - 1}": {"$exists": True}}
    assert pop._doc == {"$pop": {"reads": -1, "read_ids": -1}}
    assert push._filter == once
    assert push._doc["$push"] == {"reads": read.produced_at, "read_ids": read.event_id}


def chain(n: int) -> list[dict[str, object]]:
    records, prev = [], GENESIS
    for i in range(n):
        rec: dict[str, object] = {
            "_id": f"e{i}",
            "event_id": f"e{i}",
            "object_id": "o",
            "version": 1,
            "produced_at": datetime(2026, 12, 1, 12, 0, i, 123456, tzinfo=UTC),
            "actor": "worker:verify@host",
            "stage": "s",
            "action": "a",
            "outcome": "ok",
            "detail": {},
            "seq": i + 1,
            "prev_hash": prev,
        }
        rec["hash"] = record_hash(prev, rec)
        prev = str(rec["hash"])
        records.append(rec)
    return records


def test_intact_chain_has_no_broken_link() -> None:
    assert first_broken_link(chain(5)) is None


def test_edited_removed_or_reordered_record_is_named() -> None:
    edited = chain(5)
    edited[2]["outcome"] = "failed"
    assert first_broken_link(edited) == "e2"
    removed = chain(5)
    del removed[1]
    assert first_broken_link(removed) == "e2"
    swapped = chain(5)
    swapped[3], swapped[4] = swapped[4], swapped[3]
    assert first_broken_link(swapped) == "e4"
    for field, value in (("produced_at", datetime(2027, 1, 1, tzinfo=UTC)), ("seq", 9),
                         ("actor", "someone else"), ("prev_hash", "0" * 64)):  # fmt: skip
        altered = chain(3)
        altered[1][field] = value
        assert first_broken_link(altered) == "e1", field


def test_a_round_trip_through_the_database_keeps_the_hash() -> None:
    """MongoDB keeps milliseconds and drops the time zone: the hash does not change."""
    (record,) = chain(1)
    stored = {**record, "produced_at": datetime(2026, 12, 1, 12, 0, 0, 123000)}
    assert record_hash(GENESIS, stored) == record["hash"]


def test_a_chain_is_checked_against_its_head_and_checkpoint() -> None:
    records = chain(4)
    head = {"seq": 4, "hash": records[-1]["hash"]}
    assert chain_problem(records, head) is None
    assert chain_problem(records, {"seq": 3, "hash": records[2]["hash"]}) is None  # lagging
    assert "records after seq 3 deleted" in str(chain_problem(records[:3], head))
    assert "chain deleted" in str(chain_problem([], head))
    assert chain_problem(records, None) == "no head for this chain"
    signed = {"seq": 4, "hash": str(records[-1]["hash"])}
    assert signed_problem(records, signed) is None
    assert "gone" in str(signed_problem(records[:3], signed))
    rewritten = chain(4)
    rewritten[3]["detail"] = {"edited": True}
    rewritten[3]["hash"] = record_hash(str(rewritten[2]["hash"]), rewritten[3])  # re-hashed
    assert first_broken_link(rewritten) is None  # the chain alone cannot tell
    assert "rewritten" in str(signed_problem(rewritten, signed))


def test_a_head_is_signed_only_if_it_extends_the_one_signed_before() -> None:
    records = chain(6)
    head = (6, str(records[-1]["hash"]))
    at3 = (3, str(records[2]["hash"]))
    assert extension_problem(None, records, head) is None  # from the genesis
    assert extension_problem(at3, records[2:], head) is None
    assert "moved back" in str(extension_problem(head, records[3:4], (4, "x")))
    assert "gone" in str(extension_problem(at3, records[3:], head))
    rewritten = chain(6)  # record 2 edited, every later one re-hashed, the head moved
    rewritten[1]["detail"] = {"edited": True}
    prev = str(rewritten[0]["hash"])
    for record in rewritten[1:]:
        record["prev_hash"] = prev
        record["hash"] = prev = record_hash(prev, record)
    assert first_broken_link(rewritten) is None  # consistent on its own
    assert "rewritten" in str(extension_problem(at3, rewritten[2:], (6, prev)))
    broken = chain(6)
    broken[4]["detail"] = {"edited": True}  # not re-hashed
    assert "first bad record e4" in str(extension_problem(at3, broken[2:], head))
    assert "do not reach the head" in str(extension_problem(at3, records[2:5], head))


def test_a_checkpoint_digest_covers_each_field() -> None:
    at = datetime(2026, 12, 7, tzinfo=UTC)
    base = checkpoint_digest(2, at, "a" * 64, "b" * 64, 10)
    assert checkpoint_digest(3, at, "a" * 64, "b" * 64, 10) != base
    assert checkpoint_digest(2, at.replace(day=8), "a" * 64, "b" * 64, 10) != base
    assert checkpoint_digest(2, at, "c" * 64, "b" * 64, 10) != base
    assert checkpoint_digest(2, at, "a" * 64, "c" * 64, 10) != base
    assert checkpoint_digest(2, at, "a" * 64, "b" * 64, 11) != base


def test_replayed_event_cannot_move_timestamps_forward_or_unset_fields() -> None:
    request = inline_request(b"x")
    tiered = stamp(
        ReplicaTiered, request, "2", version=1, target="gcs", key="k", tier="hot", reason="tag"
    )
    update = update_document(tiered)
    assert update is not None
    assert update["$set"] == {}
    assert set(update["$min"]) == {"created_at"}
    assert update["$setOnInsert"] == {"object_id": request.object_id, "version": 1}


def test_a_replica_read_back_again_moves_its_read_back_time_forward() -> None:
    request = inline_request(b"x")
    placement = request.placement
    at = datetime(2026, 12, 2, tzinfo=UTC)
    verified = stamp(
        ReplicaVerified,
        request,
        "v",
        version=1,
        placement=placement,
        target="s3",
        key="k",
        ciphertext_sha256="0" * 64,
        ciphertext_size=1,
        verified_at=at,
        mode="read-back",
    )
    update = update_document(verified)
    assert update is not None
    assert update["$max"] == {"replicas.s3.read_back_at": at}  # the proof: latest_verdict
    assert "replicas.s3.verified_at" in update["$min"]  # the first verification stays
    damaged = verified.model_copy(update={"verdict": "damaged"})
    update = update_document(damaged)
    assert update is not None and update["$set"] == {}  # no proof, no digest: the verdict only
    assert "$max" not in update and set(update["$min"]) == {"created_at"}


def test_a_replica_verdict_is_the_latest_checks_in_any_order() -> None:
    request = inline_request(b"x")
    at = datetime(2026, 12, 2, tzinfo=UTC)
    checked = stamp(ReplicaVerified, request, "v", version=1, placement=request.placement,
                    target="gcs", key="k", ciphertext_sha256="0" * 64, ciphertext_size=1,
                    verified_at=at, scrub=True, verdict="missing")  # fmt: skip
    pop, write = latest_verdict(checked)
    assert write._doc == {
        "$set": {"replicas.gcs.verdict": "missing", "replicas.gcs.checked_at": at},
        "$push": {"replicas.gcs.check_ids": checked.event_id},
    }
    older = {"replicas.gcs.checked_at": {"$lt": at}}  # a later check's verdict stands
    assert write._filter["$or"] == [{"replicas.gcs.checked_at": {"$exists": False}}, older]
    # a replay of this check (same id, verified again later) changes nothing
    assert write._filter["replicas.gcs.check_ids"] == {"$ne": checked.event_id}
    assert pop._doc == {"$pop": {"replicas.gcs.check_ids": -1}} and not write._upsert
    good = latest_verdict(checked.model_copy(update={"verdict": "good"}))[1]
    assert good._doc["$set"]["replicas.gcs.proven_at"] == at
    assert checked.step == "replica.missing" and checked.step_outcome() == "failed"


def applied(doc: dict[str, object] | None, update: dict[str, dict[str, object]]) -> dict:  # type: ignore[type-arg]
    """MongoDB's ``$set``, ``$min``, ``$max`` and ``$setOnInsert`` on flat (dotted) names."""
    out = dict(doc or {})
    for name, value in update.get("$set", {}).items():
        out[name] = value
    for name, value in update.get("$min", {}).items():
        out[name] = min(out[name], value) if name in out else value  # type: ignore[type-var]
    for name, value in update.get("$max", {}).items():
        out[name] = max(out[name], value) if name in out else value  # type: ignore[type-var]
    if doc is None:
        out.update(update.get("$setOnInsert", {}))
    return out


def version_events() -> list[Event]:
    """One version's events: accepted, encrypted, written, verified thrice, tiered."""
    request = inline_request(b"x")
    at = [datetime(2026, 12, 2, h, tzinfo=UTC) for h in range(4)]
    common = {"version": 1, "placement": request.placement, "target": "s3", "key": "k"}
    digests = {"ciphertext_sha256": "1" * 64, "ciphertext_size": 9}
    accepted = stamp(ObjectAccepted, request, "a", version=1, source=request.source,
                     placement=request.placement)  # fmt: skip
    encrypted = stamp(ObjectEncrypted, request, "e", version=1, placement=request.placement,
                      primary="s3", key="k", key_id="local:k:v1", algorithm="aes256gcm-chunked",
                      plaintext_size=1, plaintext_sha256="0" * 64, **digests)  # fmt: skip
    written = stamp(ReplicaWritten, request, "w", plaintext_sha256="0" * 64, key_id="local:k:v1",
                    **common, **digests)  # fmt: skip
    verified = [
        stamp(ReplicaVerified, request, f"v{n}", verified_at=at[n], mode=mode, **common, **digests)
        for n, mode in ((2, "store-digest"), (3, "read-back"), (1, "read-back"))
    ]
    tiered = stamp(ReplicaTiered, request, "t", version=1, target="s3", key="k", tier="hot",
                   reason="initial")  # fmt: skip
    return [accepted, encrypted, written, *verified, tiered]


def test_a_batch_makes_one_upsert_per_version_ending_where_its_events_one_by_one_do() -> None:
    """Merged: first-occurrence times the earliest, ``read_back_at`` the latest, ``$set`` the
    later event's value, whatever order the batch holds the events in."""
    events = version_events()
    for order in itertools.permutations(events[2:]):  # accepted and encrypted: any place
        batch = [events[1], *order[:2], events[0], *order[2:]]
        one_by_one = None
        for event in batch:
            update = update_document(event)
            assert update is not None
            one_by_one = applied(one_by_one, update)
        upsert, *filtered = batch_writes(batch)
        assert upsert._filter == {"_id": f"{events[0].object_id}:v1"} and upsert._upsert
        assert applied(None, upsert._doc) == one_by_one
        assert [w._doc for w in filtered] == [  # filtered: after the upsert, in event order
            w._doc
            for e in batch
            if isinstance(e, ReplicaTiered | ReplicaVerified)
            for w in ([latest_tier(e)] if isinstance(e, ReplicaTiered) else latest_verdict(e))
        ]
    merged_doc = applied(None, batch_writes(events)[0]._doc)
    assert merged_doc["replicas.s3.read_back_at"] == datetime(2026, 12, 2, 3, tzinfo=UTC)
    assert merged_doc["replicas.s3.verified_at"] == datetime(2026, 12, 2, 1, tzinfo=UTC)


def test_filtered_writes_follow_the_upserts_in_event_order() -> None:
    request = inline_request(b"x")
    reads = [stamp(ObjectAccessed, request, f"r{n}", version=1, target="s3", bytes_read=1)
             for n in range(2)]  # fmt: skip
    events = version_events()
    writes = batch_writes([reads[0], *events, reads[1]])
    assert [bool(w._upsert) for w in writes] == [True] + [False] * 11
    assert writes[1]._doc["$pop"] and writes[2]._doc["$push"]["read_ids"] == reads[0].event_id
    verdicts = [w._doc for e in events[3:6] for w in latest_verdict(e)]  # type: ignore[arg-type]
    assert [w._doc for w in writes[3:9]] == verdicts
    assert writes[9]._doc == latest_tier(events[-1])._doc  # type: ignore[arg-type]
    assert writes[11]._doc["$push"]["read_ids"] == reads[1].event_id


def test_the_cache_keeps_the_most_recently_written_heads() -> None:
    cache = HeadCache(limit=2)
    cache.put({"a": Head("h", 1), "b": Head("h", 1)})
    cache.put({"a": Head("h", 2)})
    cache.put({"c": Head("h", 1)})  # b is the least recently written
    assert (cache.get("a"), cache.get("b"), cache.get("c")) == (Head("h", 2), None, Head("h", 1))


def test_the_sink_keeps_where_it_read_each_chain_event_a_stalled_version_needs() -> None:
    request = inline_request(b"x")
    accepted = stamp(
        ObjectAccepted, request, "1", version=1, source=request.source, placement=request.placement
    )
    tiered = stamp(
        ReplicaTiered, request, "2", version=1, target="s3", key="k", tier="cold", reason="r"
    )
    where = RecordRef(topic="p.accepted", partition=1, offset=7)
    upsert, *_ = batch_writes(
        [accepted, tiered], [where, RecordRef(topic="p.tiered", partition=0, offset=1)]
    )
    assert upsert._doc["$set"]["refs.accepted.topic"] == "p.accepted"
    assert upsert._doc["$set"]["refs.accepted.partition"] == 1
    assert upsert._doc["$min"]["refs.accepted.offset"] == 7  # the first copy: replays add more
    assert ref_slot(accepted) == "accepted" and ref_slot(tiered) is None
    refs = [k for op in upsert._doc.values() for k in op if k.startswith("refs.")]
    assert all(k.startswith("refs.accepted.") for k in refs)


def test_the_sink_records_each_removal_intent_and_where_its_events_were_read() -> None:
    request = inline_request(b"x")
    asked = stamp(
        DeleteRequest, request, "d", version=2, mode="forget", tenant="default",
        targets=("s3", "gcs"),
    )  # fmt: skip
    removal = stamp(
        ReplicaRemoval, asked, "r", mode="forget", target="gcs",
        prefix=f"default/{request.object_id}/v2/",
    )  # fmt: skip
    assert object_update(asked) == {"forget_requested_at": asked.produced_at}
    assert (ref_slot(asked), ref_slot(removal)) == ("forget_request", "forget_remove_gcs")
    where = [RecordRef(topic="p.delete", partition=0, offset=3)]
    where.append(RecordRef(topic="p.remove", partition=1, offset=9))
    (upsert,) = batch_writes([asked, removal], where)
    assert upsert._doc["$min"]["forget_requested_at"] == asked.produced_at
    assert upsert._doc["$min"]["shredded_at"] == removal.produced_at
    assert upsert._doc["$set"]["refs.forget_request.topic"] == "p.delete"
    assert upsert._doc["$min"]["refs.forget_remove_gcs.offset"] == 9


def test_the_sink_records_the_latest_refusal_of_a_held_versions_removal() -> None:
    request = inline_request(b"x")
    asked = stamp(
        DeleteRequest, request, "d", version=2, mode="delete", tenant="default", targets=("s3",)
    )
    why = REMOVAL_REFUSED + "a.txt v2 is held: a legal hold on v2"
    fields = {"stage": "delete", "topic": "p.delete", "partition": 0, "offset": 1}
    refused = stamp(DeadLetter, asked, "x", reason=why, payload_b64="", **fields)
    update = update_document(refused)
    assert update is not None
    assert update["$max"]["removal_refused_at"] == refused.produced_at  # the latest counts
    assert update["$set"]["removal_refusal"] == why
    other = stamp(DeadLetter, asked, "y", reason="keys outside", payload_b64="", **fields)
    assert object_update(other) is None  # any other dead letter of a removal: re-driven
