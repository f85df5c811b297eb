"""Version states, unchanged puts and retention, computed by hand."""

from workers.core.versions import (
    Content,
    VersionView,
    latest_live,
    live_replicas,
    retention_view,
    to_retire,
    unchanged_version,
    version_state,
)

A, B = Content(3, "a" * 64), Content(3, "b" * 64)
VERIFIED = {
    "targets": ["s3", "gcs"],
    "replicas": {"s3": {"verified_at": 1}, "gcs": {"verified_at": 2}},
    "key_checked_at": 1,
}


def test_state_of_a_version_follows_from_its_document_alone() -> None:
    assert version_state({}) == "pending"
    assert (
        version_state({"targets": ["s3", "gcs"], "replicas": {"s3": {"verified_at": 1}}})
        == "pending"
    )
    assert version_state(VERIFIED) == "verified"
    assert version_state({"failed_at": 1}) == "failed"
    assert version_state({**VERIFIED, "failed_at": 1}) == "verified"  # repaired later
    assert version_state({**VERIFIED, "deleted_at": 1}) == "deleted"
    assert version_state({**VERIFIED, "deleted_at": 1, "shredded_at": 2}) == "shredded"


def test_verified_is_present_tense_degraded_and_lost_follow_the_verdicts() -> None:
    damaged = {"verified_at": 1, "verdict": "damaged", "checked_at": 3}
    good_again = {"verified_at": 1, "verdict": "good", "checked_at": 4}
    one_bad = {"targets": ["s3", "gcs"], "replicas": {"s3": damaged, "gcs": {"verified_at": 2}}}
    assert version_state(one_bad) == "degraded"
    all_bad = {"targets": ["s3", "gcs"], "replicas": {"s3": damaged, "gcs": damaged}}
    assert version_state(all_bad) == "lost"
    assert version_state({**all_bad, "failed_at": 1}) == "lost"
    missing = {"targets": ["s3", "gcs"], "replicas": {"s3": {"verdict": "missing"}}}
    assert version_state(missing) == "lost"  # none good, one found bad
    repaired = {**VERIFIED, "replicas": {"s3": good_again, "gcs": good_again}}
    assert version_state(repaired) == "verified"
    assert version_state({**all_bad, "deleted_at": 1}) == "deleted"
    assert list(live_replicas(one_bad)) == ["gcs"]  # restore skips the damaged one


def test_unchanged_means_same_content_as_the_newest_live_version() -> None:
    views = [VersionView(2, "verified", B), VersionView(1, "verified", A)]
    assert unchanged_version(views, B, force=False) == 2
    assert unchanged_version(views, A, force=False) is None  # the newest holds B
    assert unchanged_version(views, B, force=True) is None
    assert unchanged_version(views, None, force=False) is None  # content unknown
    assert unchanged_version([], A, force=False) is None


def test_failed_degraded_lost_deleted_and_shredded_versions_never_count_as_unchanged() -> None:
    for state in ("failed", "degraded", "lost", "deleted", "shredded"):
        views = [VersionView(2, state, B), VersionView(1, "verified", A)]
        assert unchanged_version(views, B, force=False) is None
        assert unchanged_version(views, A, force=False) == 1  # v1 is the newest live one
    assert latest_live([VersionView(1, "pending", A)]) == VersionView(1, "pending", A)


def views_of(*states: str) -> list[VersionView]:
    """Versions 1, 2, ... of one object in these states."""
    return [VersionView(n, state) for n, state in enumerate(states, start=1)]


def test_retention_keeps_the_newest_n_verified_and_everything_newer() -> None:
    three = views_of("verified", "verified", "verified")
    assert to_retire(three, keep=0) == []  # 0: keep all
    assert to_retire(three, keep=1) == [1, 2]
    assert to_retire(three, keep=2) == [1]
    assert to_retire(three, keep=3) == to_retire(three, keep=4) == []
    mixed = views_of("failed", "verified", "pending", "verified", "failed", "pending")
    assert to_retire(mixed, keep=1) == [1, 2, 3]  # v4 kept, and v5, v6 newer than it
    assert to_retire(mixed, keep=2) == [1]
    assert to_retire(views_of("deleted", "shredded", "verified", "verified"), keep=1) == [3]


def test_retention_retires_nothing_until_a_newer_version_is_verified() -> None:
    for newest in ("pending", "failed", "degraded", "lost"):
        assert to_retire(views_of("verified", newest), keep=1) == []
        assert to_retire(views_of("verified", "verified", newest), keep=2) == []
        assert to_retire(views_of("verified", "verified", newest), keep=1) == [1]
    # a degraded or lost version is itself retired once a newer one is verified
    assert to_retire(views_of("degraded", "lost", "verified"), keep=1) == [1, 2]
    assert to_retire([], keep=1) == []


def test_retention_counts_a_version_whose_removal_was_asked_as_deleted() -> None:
    doc = {"object_id": "o", "version": 2, "state": "verified"}
    assert retention_view(doc) == VersionView(2, "verified")
    assert retention_view({**doc, "state": None}) == VersionView(2, "pending")
    for asked in ("delete_requested_at", "forget_requested_at"):
        gone = retention_view({**doc, asked: 1})
        assert gone == VersionView(2, "deleted")
        # being removed, v2 neither lets v1 go nor is asked again
        assert to_retire([VersionView(1, "verified"), gone], keep=1) == []
