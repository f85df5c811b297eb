"""The pieces of a sync around the pure plan: rules in command-line order, what a version
recorded, a source URL's parts and allow-list, a page's puts and the next page."""

from datetime import UTC, datetime

import pytest

from schemas.codec import decode, encode
from schemas.events import IngestRequest, SyncPage
from workers.agents.scan import next_page, put
from workers.cli.sync import rules_in_order
from workers.core.sync import Action, Listed, Recorded, Step, request_id
from workers.errors import Permanent
from workers.settings import load_settings
from workers.sync.control import first_page
from workers.sync.jobs import job_doc, recorded_of
from workers.sync.source import check_source, source_parts


def test_include_and_exclude_keep_their_command_line_order() -> None:
    args = ["s3://b", "--exclude", "a/**", "--to", "s3", "--include=*.log", "--exclude", "*"]
    assert rules_in_order(args) == [("exclude", "a/**"), ("include", "*.log"), ("exclude", "*")]


def test_the_newest_version_that_is_a_copy_is_what_was_recorded() -> None:
    newest_first = [
        {"state": "failed", "size": 9, "source_fingerprint": "etag:new"},
        {
            "state": "verified",
            "size": 3,
            "source_fingerprint": "etag:old",
            "plaintext_sha256": "ab",
            "source_digests": {"md5": "cd"},
        },
    ]
    assert recorded_of(newest_first) == Recorded(3, "etag:old", {"sha256": "ab", "md5": "cd"})
    assert recorded_of([{"state": "deleted", "size": 3}]) is None
    assert recorded_of([{"state": "pending", "size": None}]) == Recorded(None, None, {})


def test_a_source_is_a_folder_of_an_allowed_bucket() -> None:
    assert source_parts("s3://bucket") == ("s3", "bucket", "")
    assert source_parts("gs://bucket/photos/2024") == ("gs", "bucket", "photos/2024/")
    ours = load_settings().bucket
    settings = load_settings().model_copy(update={"source_buckets": ("theirs", ours)})
    check_source("azure://theirs/some/folder", settings)
    for refused in ("s3://mine", f"s3://{ours}", "s3://theirs/a/../b"):
        with pytest.raises(Permanent):
            check_source(refused, settings)


def test_a_job_starts_with_its_page_zero_and_is_recorded_as_rclone_filters() -> None:
    first = first_page(
        "s3://theirs/photos/", ["s3", "gcs"], "acme", prefix="in/",
        rules=[("exclude", "*.tmp"), ("include", "**")], delete=True, actor="alice",
    )  # fmt: skip
    assert first.source == "s3://theirs/photos" and first.object_id == first.correlation_id
    assert decode(encode(first), SyncPage) == first
    doc = job_doc(first, datetime(2026, 12, 7, tzinfo=UTC))
    assert doc["rules"] == ["- *.tmp", "+ **"] and doc["state"] == "listing"
    with pytest.raises(ValueError, match="too many stars"):
        first_page("s3://theirs", ["s3"], "acme", rules=[("include", "***")], actor="alice")
    with pytest.raises(ValueError):
        first_page("s3://theirs", ["s3"], "acme", prefix="../", actor="alice")


def test_a_page_puts_by_url_with_the_listed_fingerprint_and_hands_on_the_job() -> None:
    first = first_page("s3://theirs/photos", ["s3"], "acme", prefix="in/", actor="alice")
    listed = Listed("photos/a.jpg", 5, 'etag:"x"', {"md5": "0123456789abcdef"})
    request = put(first, Step("in/a.jpg", Action.NEW, listed))
    assert isinstance(request, IngestRequest)
    assert request.source is not None and request.source.url == "s3://theirs/photos/a.jpg"
    assert request.source.fingerprint == 'etag:"x"' and request.actor == "alice"
    assert request.source.digests == {"md5": "0123456789abcdef"}
    assert request.correlation_id == request_id(first.correlation_id, "photos/a.jpg", 'etag:"x"')
    assert request.placement.name == "in/a.jpg" and request.placement.tenant == "acme"
    following = next_page(first, "photos/a.jpg")
    assert (following.page, following.after, following.actor) == (1, "photos/a.jpg", "alice")
    assert following.model_dump(exclude={"event_id", "produced_at", "page", "after"}) == (
        first.model_dump(exclude={"event_id", "produced_at", "page", "after"})
    )
    assert following.event_id != first.event_id
