"""Share links decided without a database: expiry, signature, what a request gets."""

from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs, urlsplit

import pytest

from workers.client.links import LinkError, actor, check, epoch, expiry, signature, url

NOW = datetime(2026, 12, 7, 12, 0, 0, 500_000, tzinfo=UTC)
WEEK = timedelta(days=7)
KEY = b"k" * 32
LINK = {
    "_id": "abc",
    "object_id": "o1",
    "version": 2,
    "tenant": "default",
    "created_by": "api:w",
    "expires_at": datetime(2026, 12, 7, 13, 0, tzinfo=UTC),
    "revoked_at": None,
}
EXP = epoch(LINK["expires_at"])  # type: ignore[arg-type]


def test_an_expiry_is_a_duration_or_a_time_to_the_second_within_the_longest() -> None:
    assert expiry("1h", NOW, WEEK) == datetime(2026, 12, 7, 13, 0, tzinfo=UTC)
    assert expiry("7d", NOW, WEEK) == datetime(2026, 12, 14, 12, 0, tzinfo=UTC)
    assert expiry("2026-12-08", NOW, WEEK) == datetime(2026, 12, 8, tzinfo=UTC)
    with pytest.raises(LinkError, match="at most 168 hours"):
        expiry("8d", NOW, WEEK)
    for bad in ("never", "soon", "2026-12-01", "0h"):
        with pytest.raises(LinkError, match="not a duration"):
            expiry(bad, NOW, WEEK)


def test_the_url_carries_the_expiry_and_a_signature_over_id_object_version_and_expiry() -> None:
    made = urlsplit(url("https://data.example.com/", LINK, KEY))
    assert (made.netloc, made.path) == ("data.example.com", "/v1/links/abc")
    query = {k: v[0] for k, v in parse_qs(made.query).items()}
    assert query == {"exp": str(EXP), "sig": signature(KEY, "abc", "o1", 2, EXP)}
    others = {
        signature(b"x" * 32, "abc", "o1", 2, EXP),
        signature(KEY, "abd", "o1", 2, EXP),
        signature(KEY, "abc", "o2", 2, EXP),
        signature(KEY, "abc", "o1", 3, EXP),
        signature(KEY, "abc", "o1", 2, EXP + 1),
    }
    assert query["sig"] not in others and len(others) == 5


def test_a_request_is_valid_only_with_the_links_signature_until_expiry_or_revocation() -> None:
    sig = signature(KEY, "abc", "o1", 2, EXP)
    assert check(LINK, EXP, sig, KEY, NOW) == "valid"
    assert check(None, EXP, sig, KEY, NOW) == "unknown"
    assert check(LINK, EXP, sig[:-1] + "0", KEY, NOW) == "unknown"
    assert check(LINK, EXP, "é", KEY, NOW) == "unknown"  # not hex: refused, not an error
    assert check(LINK, EXP + 3600, signature(KEY, "abc", "o1", 2, EXP + 3600), KEY, NOW) == (
        "unknown"  # signed, but not the expiry the link has
    )
    assert check(LINK, EXP, sig, b"other", NOW) == "unknown"  # the key changed
    assert check(LINK, EXP, sig, KEY, LINK["expires_at"]) == "expired"  # type: ignore[arg-type]
    assert check({**LINK, "revoked_at": NOW}, EXP, sig, KEY, NOW) == "revoked"
    naive = {**LINK, "expires_at": datetime(2026, 12, 7, 13, 0)}  # as MongoDB hands it back
    assert check(naive, EXP, sig, KEY, NOW) == "valid"


def test_a_use_is_recorded_as_the_link_naming_who_made_it() -> None:
    who = actor(LINK, "r1")
    assert who.name == "link:abc"
    assert who.detail() == {"tenant": "default", "request_id": "r1", "shared_by": "api:w"}
