"""Which versions are re-driven, and with which recorded events."""

from datetime import UTC, datetime, timedelta

from workers.core.reconcile import (
    last_progress,
    progress_interval,
    redrive,
    redrive_removal,
    removal_done,
    stalled,
    stalled_removals,
)

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


REMOVAL_REFS = {
    "delete_request": ref("delete", 5),
    "delete_remove_s3": ref("remove", 6),
    "delete_remove_gcs": ref("remove", 7),
    "forget_request": ref("delete", 8),
}
TARGETS = ["s3", "azure", "gcs"]


def test_a_delete_request_with_no_tombstone_after_the_bound_redrives_the_request() -> None:
    doc = {"targets": TARGETS, "refs": REMOVAL_REFS, "delete_requested_at": T0}
    assert stalled_removals(doc, T0 + HOUR - timedelta(seconds=1), HOUR) == []
    assert stalled_removals(doc, T0 + HOUR, HOUR) == ["delete"]
    assert redrive_removal(doc, "delete") == ([REMOVAL_REFS["delete_request"]], False)
    redriven = {**doc, "removal_redriven_at": T0 + HOUR}  # waits a whole bound again
    assert stalled_removals(redriven, T0 + HOUR + timedelta(minutes=30), HOUR) == []
    assert stalled_removals(redriven, T0 + 2 * HOUR, HOUR) == ["delete"]
    # nothing recorded to re-read: the request is built anew
    assert redrive_removal({**doc, "refs": {}}, "delete") == ([], True)


def test_a_removal_refused_while_held_is_not_redriven() -> None:
    refused = {
        "targets": TARGETS,
        "refs": REMOVAL_REFS,
        "delete_requested_at": T0,
        "removal_refused_at": T0 + timedelta(seconds=1),  # the delete stage's dead letter
    }
    assert stalled_removals(refused, T0 + 9 * HOUR, HOUR) == []
    # a step after the refusal (asked again once released, and tombstoned): reconciled again
    tombstoned = {**refused, "deleted_at": T0 + 2 * HOUR}
    assert stalled_removals(tombstoned, T0 + 3 * HOUR, HOUR) == ["delete"]


def test_a_tombstone_with_a_replica_not_removed_redrives_that_targets_removal() -> None:
    doc = {
        "targets": TARGETS,
        "refs": REMOVAL_REFS,
        "delete_requested_at": T0,
        "deleted_at": T0,
        "replicas": {"s3": {}, "azure": {"removed_at": T0 + HOUR}, "gcs": {}},
    }
    assert stalled_removals(doc, T0 + HOUR + timedelta(minutes=59), HOUR) == []  # azure moved
    assert stalled_removals(doc, T0 + 2 * HOUR, HOUR) == ["delete"]
    wanted = [REMOVAL_REFS["delete_remove_s3"], REMOVAL_REFS["delete_remove_gcs"]]
    assert redrive_removal(doc, "delete") == (wanted, False)
    # a target whose removal was not recorded: the request asks every target again
    refs = {k: v for k, v in REMOVAL_REFS.items() if k != "delete_remove_gcs"}
    assert redrive_removal({**doc, "refs": refs}, "delete") == (
        [REMOVAL_REFS["delete_remove_s3"], REMOVAL_REFS["delete_request"]],
        False,
    )
    done = {**doc, "replicas": {t: {"removed_at": T0} for t in TARGETS}}
    assert removal_done(done, "delete") and stalled_removals(done, T0 + 9 * HOUR, HOUR) == []
    assert not removal_done(doc, "delete") and not removal_done(done, "forget")


def test_a_forget_covers_a_delete_and_is_reconciled_on_its_own() -> None:
    both = {"targets": TARGETS, "refs": REMOVAL_REFS, "delete_requested_at": T0}
    both["forget_requested_at"] = T0
    assert stalled_removals(both, T0 + HOUR, HOUR) == ["forget"]  # it does the delete's work
    assert redrive_removal(both, "forget") == ([REMOVAL_REFS["forget_request"]], False)
    shredded = {
        **both,
        "shredded_at": T0,
        "replicas": {t: {"removed_at": T0} for t in TARGETS},
    }
    assert removal_done(shredded, "delete") and removal_done(shredded, "forget")
    deleted = {**both, "deleted_at": T0, "replicas": shredded["replicas"]}
    assert stalled_removals(deleted, T0 + HOUR, HOUR) == ["forget"]  # not shredded yet


def test_a_lease_renewal_comes_well_inside_the_bound() -> None:
    assert progress_interval(HOUR) == timedelta(minutes=15)
    # an encrypt still moving is not quiet, however long ago the version was accepted
    doc = {"state": "pending", "accepted_at": T0, "encrypt_progress_at": T0 + 5 * HOUR}
    assert not stalled(doc, T0 + 5 * HOUR + progress_interval(HOUR), HOUR)
    assert stalled(doc, T0 + 6 * HOUR, HOUR)
