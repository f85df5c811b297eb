"""The scheduled scrub's choice and coverage: last attempt first, a window covered."""

from datetime import UTC, datetime, timedelta
from typing import Any

from workers.core.scrub import Tally, per_round, pick, replica_keys, to_rehydrate

T0 = datetime(2025, 1, 1, tzinfo=UTC)
HOUR, DAY = timedelta(hours=1), timedelta(days=1)


def doc(n: int, replicas: dict[str, dict[str, Any]], state: str = "verified") -> dict[str, Any]:
    return {
        "_id": f"o{n}:1",
        "ciphertext_sha256": "0" * 64,
        "state": state,
        "targets": list(replicas),
        "replicas": replicas,
    }


def chosen(
    docs: list[dict[str, Any]], share: float, now: datetime = T0 + DAY
) -> list[tuple[str, str]]:
    keys = [key for d in docs for key in replica_keys(d, now)]
    return pick(keys, share, HOUR, 30 * DAY)


def test_the_replica_attempted_longest_ago_goes_first() -> None:
    docs = [
        doc(1, {"s3": {"read_back_at": T0 + 2 * HOUR}, "gcs": {"read_back_at": T0}}),
        doc(2, {"s3": {}, "azure": {"read_back_at": T0 + HOUR}}),
    ]
    assert chosen(docs, 0.5) == [("o2:1", "s3"), ("o1:1", "gcs")]


def test_an_attempt_that_proved_nothing_still_moves_the_replica_back() -> None:
    """An archived replica whose read-back fails never advances ``read_back_at``; its
    attempt does, so the hot replica gets its turn (what starved before)."""
    archived = {"read_back_at": T0, "scrub_attempted_at": T0 + 5 * HOUR}
    docs = [doc(1, {"azure": archived, "s3": {"read_back_at": T0 + HOUR}})]
    assert chosen(docs, 0.0001) == [("o1:1", "s3")]


def test_at_least_one_and_never_gone_versions() -> None:
    docs = [
        doc(1, {"s3": {"read_back_at": T0}}, state="deleted"),
        doc(2, {"s3": {"read_back_at": T0}}),
        doc(3, {"s3": {"read_back_at": T0}}),
    ]
    assert chosen(docs, 0.0001) == [("o2:1", "s3")]
    assert chosen([], 1.0) == []


def test_each_round_takes_what_the_window_needs() -> None:
    assert per_round(720_000, 0.0, HOUR, 30 * DAY) == 1000  # 720 rounds in 30 days
    assert per_round(720_000, 0.01, HOUR, 30 * DAY) == 7200  # the share is more
    assert per_round(10, 0.0, HOUR, 30 * DAY) == 1
    assert per_round(0, 0.5, HOUR, 30 * DAY) == 0


def test_repeated_rounds_read_every_replica_back_even_with_failing_ones() -> None:
    targets = ("s3", "azure", "gcs")
    docs = [doc(n, {t: {"written_at": T0} for t in targets}) for n in range(10)]
    by_id = {d["_id"]: d for d in docs}
    seen: set[tuple[str, str]] = set()
    now = T0
    for _ in range(10):  # 10% a round: ten rounds cover all thirty replicas
        now += HOUR
        for version, target in chosen(docs, 0.1, now):
            d = by_id[version]
            seen.add((version, target))
            d["replicas"][target]["scrub_attempted_at"] = now  # what the job records
            if target != "azure":  # azure's are archived: never read back
                d["replicas"][target]["read_back_at"] = now
    assert len(seen) == 30


def test_a_replica_goes_first_once_its_rehydration_should_be_done() -> None:
    """Its readable copy (S3) or readable tier (Azure) may not last until its turn would
    come: it is read back first, once, after the store's rehydration time."""
    tried = T0 + 5 * HOUR
    rehydrating = {"key": "k", "scrub_attempted_at": tried, "readable_at": tried + 12 * HOUR}
    docs = [doc(1, {"azure": rehydrating, "s3": {"read_back_at": T0}})]
    assert chosen(docs, 0.0001, now=tried + 11 * HOUR) == [("o1:1", "s3")]  # not done yet
    assert chosen(docs, 0.0001, now=tried + 12 * HOUR) == [("o1:1", "azure")]
    rehydrating["scrub_attempted_at"] = tried + 13 * HOUR  # tried since: back in the line
    assert chosen(docs, 0.0001, now=tried + 14 * HOUR) == [("o1:1", "s3")]


def archive_doc(n: int, size: int, **replica: Any) -> dict[str, Any]:
    found = doc(n, {"azure": {"key": f"k{n}", "tier": "archive", **replica}})
    return {**found, "ciphertext_size": size}


def starting(
    docs: list[dict[str, Any]], budget: int, now: datetime = T0 + DAY
) -> tuple[list[str], list[str]]:
    """The ids of the versions ``to_rehydrate`` starts and defers within ``budget``."""
    plan = to_rehydrate(
        [(d, "azure") for d in docs],
        lambda d, t: d["replicas"][t]["tier"] == "archive",
        budget,
        now,
    )
    return [d["_id"] for d, _ in plan.start], [d["_id"] for d, _ in plan.deferred]


def test_the_budget_rehydrates_whole_replicas_attempted_longest_ago_first() -> None:
    docs = [
        archive_doc(1, 600, scrub_attempted_at=T0 + 2 * HOUR),
        archive_doc(2, 500, scrub_attempted_at=T0),
        archive_doc(3, 300, scrub_attempted_at=T0 + HOUR),
    ]
    assert starting(docs, 10_000) == (["o2:1", "o3:1", "o1:1"], [])
    # o2 and o3 fit (800), o1 does not fit the 200 left: it waits for another day
    assert starting(docs, 1000) == (["o2:1", "o3:1"], ["o1:1"])
    # o2 does not fit: o3, smaller and behind it, still does
    assert starting(docs, 400) == (["o3:1"], ["o2:1", "o1:1"])
    assert starting(docs, 0) == ([], ["o2:1", "o3:1", "o1:1"])


def test_only_archived_replicas_with_nothing_to_prove_them_by_are_rehydrated() -> None:
    now = T0 + DAY
    docs = [
        archive_doc(1, 10, store_digest="md5:AAAA"),  # proven by the store's digest
        archive_doc(2, 10, tier="cold"),  # readable
        archive_doc(3, 10, scrub_attempted_at=T0, readable_at=now + HOUR),  # under way
        archive_doc(4, 10, scrub_attempted_at=T0, readable_at=now - HOUR),  # read back now
        archive_doc(5, 10, removed_at=T0),  # removed
        {**archive_doc(6, 10), "replicas": {}},  # not written yet
        # rehydrated before and tried since (S3's readable copy is gone): another one
        archive_doc(7, 10, readable_at=now - 2 * HOUR, scrub_attempted_at=now - HOUR),
    ]
    assert starting(docs, 10_000, now) == (["o7:1"], [])


def test_coverage_counts_states_oldest_proofs_and_lag() -> None:
    now = T0 + 40 * DAY
    docs = [
        doc(1, {"s3": {"proven_at": T0 + 20 * DAY, "verdict": "good", "read_back_at": T0}}),
        doc(2, {"s3": {"verified_at": T0 + 30 * DAY, "written_at": T0 + 30 * DAY}}),
        doc(3, {"s3": {"verdict": "damaged", "proven_at": T0, "read_back_at": now}}, "lost"),
        doc(4, {"s3": {"verified_at": T0}}, state="deleted"),
    ]
    tally = Tally(now)
    for d in docs:
        tally.add(d)
    found = tally.coverage(30 * DAY)
    assert found.versions == {"verified": 2, "lost": 1, "deleted": 1}
    assert found.oldest_proof_s == {"s3": (20 * DAY).total_seconds()}  # bad and gone skipped
    assert found.behind_s == (10 * DAY).total_seconds()  # doc 1 last read back 40 days ago
