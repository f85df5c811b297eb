"""Which versions are re-driven, and with which recorded events."""

from datetime import UTC, datetime, timedelta

from workers.core.reconcile import last_progress, redrive, stalled

T0 = datetime(2026, 12, 2, 4, 0, tzinfo=UTC)
HOUR = timedelta(hours=1)


def ref(topic: str, offset: int) -> dict[str, object]:
    return {"topic": f"p.{topic}", "partition": 2, "offset": offset}


REFS = {
    "accepted": ref("accepted", 0),
    "encrypted": ref("encrypted", 1),
    "replicate_azure": ref("replicate.azure", 2),
    "replicated_s3": ref("replicated.s3", 3),
    "replicated_azure": ref("replicated.azure", 4),
}


def test_only_pending_versions_quiet_for_the_bound_are_stalled() -> None:
    doc = {"state": "pending", "accepted_at": T0.replace(tzinfo=None)}  # naive, as stored
    assert not stalled(doc, T0 + HOUR - timedelta(seconds=1), HOUR)
    assert stalled(doc, T0 + HOUR, HOUR)
    assert not stalled({**doc, "state": "verified"}, T0 + 2 * HOUR, HOUR)
    assert not stalled({**doc, "state": "failed"}, T0 + 2 * HOUR, HOUR)
    later = {**doc, "replicas": {"s3": {"written_at": T0 + HOUR}}}
    assert last_progress(later) == T0 + HOUR and not stalled(later, T0 + HOUR, HOUR)
    redriven = {**doc, "redriven_at": T0 + HOUR}  # a re-drive waits a bound again
    assert not stalled(redriven, T0 + HOUR + timedelta(minutes=30), HOUR)


def test_nothing_encrypted_redrives_the_accepted_event() -> None:
    assert redrive({"refs": REFS, "targets": ["s3"]}) == [REFS["accepted"]]
    assert redrive({"targets": ["s3"]}) == []  # nothing recorded to send again


def test_each_unverified_target_redrives_the_event_before_its_next_step() -> None:
    doc = {
        "encrypted_at": T0,
        "targets": ["s3", "azure", "gcs"],
        "refs": REFS,
        "replicas": {
            "s3": {"written_at": T0},  # written, not verified: its replicated event
            "azure": {},  # not written: its replicate request
            # gcs: no request recorded: the encrypted event the requests come from
        },
    }
    assert redrive(doc) == [REFS["replicated_s3"], REFS["replicate_azure"], REFS["encrypted"]]
    doc["replicas"]["s3"]["verified_at"] = T0
    doc["replicas"]["gcs"] = {"written_at": T0}
    assert redrive(doc) == [REFS["replicate_azure"]]  # gcs written but no replicated ref yet
