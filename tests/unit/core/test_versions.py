"""Version states, unchanged puts and retention, computed by hand."""

from workers.core.versions import (
    Content,
    VersionView,
    latest_live,
    live_replicas,
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


def test_retention_keeps_the_last_n_and_the_newest_verified() -> None:
    views = [VersionView(v, "verified") for v in (1, 2, 3)]
    assert to_retire(views, newest=4, keep=0) == []
    assert to_retire(views, newest=4, keep=2) == [1, 2]  # 3 stays: newest verified
    assert to_retire(views, newest=4, keep=1) == [1, 2]
    assert to_retire([VersionView(1, "pending"), VersionView(2, "failed")], 3, 1) == [1, 2]
    assert to_retire([VersionView(1, "deleted"), VersionView(2, "verified")], 3, 1) == []
