"""Pure parts of the sink: which fields each event owns, and the audit hash chain."""

from schemas.events import ObjectAccepted, ReplicaTiered
from tests.unit.agents.conftest import inline_request
from workers.agents.sink import object_update, update_document
from workers.core.auditchain import GENESIS, first_broken_link, record_hash
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
    assert a is not None and t is not None
    assert a["source"] == "inline" and a["tags"] == {"a": "b"}
    assert t == {"replicas.s3.tier": "cold", "replicas.s3.tiered_at": tiered.produced_at}
    assert not set(a) & set(t)
    assert object_update(request) is None


def chain(n: int) -> list[dict[str, object]]:
    records, prev = [], GENESIS
    for i in range(n):
        rec: dict[str, object] = {
            "event_id": f"e{i}",
            "object_id": "o",
            "version": 1,
            "stage": "s",
            "action": "a",
            "outcome": "ok",
            "detail": {},
        }
        rec["prev_hash"], rec["hash"] = prev, record_hash(prev, rec)
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


def test_replayed_event_cannot_move_timestamps_forward_or_unset_fields() -> None:
    request = inline_request(b"x")
    tiered = stamp(
        ReplicaTiered, request, "2", version=1, target="gcs", key="k", tier="hot", reason="tag"
    )
    update = update_document(tiered)
    assert update is not None
    assert update["$set"] == {"replicas.gcs.tier": "hot"}
    assert set(update["$min"]) == {"replicas.gcs.tiered_at", "created_at"}
    assert update["$setOnInsert"] == {"object_id": request.object_id, "version": 1}
