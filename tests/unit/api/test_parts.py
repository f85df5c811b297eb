"""The API's pure parts: ranges, rate limits, scopes, token expiry, problem bodies."""

from datetime import UTC, datetime, timedelta

import pytest

from workers.api.objects import byte_range
from workers.api.problems import Problem
from workers.api.ratelimit import decide, window
from workers.api.tokens import (
    ROLE_SCOPES,
    Principal,
    Refused,
    TokenError,
    expiry_of,
    granted,
    parse_expiry,
    parse_scopes,
    stale,
)
from workers.dashboard.data import by_state, by_store_and_tier, per_minute


@pytest.mark.parametrize(
    ("header", "size", "span"),
    [
        (None, 100, None),
        ("bytes=0-9", 100, (0, 10)),
        ("bytes=90-", 100, (90, 100)),
        ("bytes=-10", 100, (90, 100)),
        ("bytes=50-500", 100, (50, 100)),
    ],
)
def test_ranges(header: str | None, size: int, span: tuple[int, int] | None) -> None:
    assert byte_range(header, size) == span


@pytest.mark.parametrize(
    "header", ["bytes=100-", "bytes=5-2", "bytes=0-1,5-6", "items=0-1", "bytes=-"]
)
def test_unsatisfiable_ranges_are_416(header: str) -> None:
    with pytest.raises(Problem) as refused:
        byte_range(header, 100)
    assert refused.value.status == 416
    assert refused.value.headers["Content-Range"] == "bytes */100"


def test_a_minute_allows_its_budget_and_says_when_it_ends() -> None:
    minute = 29_000_000 * 60.0
    assert window(minute) == window(minute + 59.9) == window(minute + 60) - 1
    first, last, over = (decide(n, 2, minute + 15.5) for n in (1, 2, 3))
    assert (first.allowed, first.remaining, first.reset) == (True, 1, 45)
    assert (last.allowed, last.remaining) == (True, 0)
    assert (over.allowed, over.remaining) == (False, 0)
    assert over.headers() == {
        "RateLimit-Limit": "2", "RateLimit-Remaining": "0", "RateLimit-Reset": "45"
    }  # fmt: skip
    assert decide(1, 2, minute).reset == 60


NOW = datetime(2026, 12, 8, 12, 0, tzinfo=UTC)


def test_roles_give_their_scopes_and_only_admin_forgets() -> None:
    assert ROLE_SCOPES["reader"] == {"read"}
    assert ROLE_SCOPES["writer"] == {"read", "write", "delete"}  # no forget: crypto-shredding
    assert ROLE_SCOPES["admin"] == {"read", "write", "delete", "forget", "admin"}
    reader = Principal("r", "acme", ROLE_SCOPES["reader"])
    admin = Principal("a", "ops", ROLE_SCOPES["admin"])
    assert reader.allows("read") and not reader.allows("delete")
    assert admin.allows("forget") and admin.sees("acme")
    assert reader.sees("acme") and not reader.sees("other")


def test_scopes_are_given_repeated_or_comma_separated() -> None:
    assert parse_scopes(["read", "forget,delete", " write "]) == {
        "read", "write", "delete", "forget",
    }  # fmt: skip
    with pytest.raises(TokenError, match="unknown scope shred"):
        parse_scopes(["read,shred"])
    with pytest.raises(TokenError, match="at least one"):
        parse_scopes([","])


@pytest.mark.parametrize(
    ("text", "expires"),
    [
        ("never", None),
        ("12h", NOW + timedelta(hours=12)),
        ("90d", NOW + timedelta(days=90)),
        ("2027-06-01", datetime(2027, 6, 1, tzinfo=UTC)),
        ("2027-06-01T08:00:00+02:00", datetime(2027, 6, 1, 6, tzinfo=UTC)),
    ],
)
def test_expiry_is_a_duration_a_date_or_never(text: str, expires: datetime | None) -> None:
    assert parse_expiry(text, NOW) == expires


@pytest.mark.parametrize("text", ["soon", "90", "-1d", "1y", "99999999999d", "2026-01-01", "0h"])
def test_an_expiry_that_is_none_or_past_is_refused(text: str) -> None:
    with pytest.raises(TokenError, match="expiry"):
        parse_expiry(text, NOW)


def test_a_token_is_refused_when_revoked_or_expired_and_old_ones_keep_their_role() -> None:
    doc = {"name": "ci", "tenant": "acme", "scopes": ["read", "forget"], "expires_at": None}
    assert granted(doc, NOW) == Principal("ci", "acme", frozenset({"read", "forget"}))
    naive = (NOW + timedelta(seconds=1)).replace(tzinfo=None)  # as MongoDB answers
    assert granted({**doc, "expires_at": naive}, NOW).name == "ci"
    with pytest.raises(Refused, match=r"^this token has expired$"):
        granted({**doc, "expires_at": NOW}, NOW)
    with pytest.raises(Refused, match=r"^unknown or revoked token$"):
        granted({**doc, "revoked_at": NOW - timedelta(days=1)}, NOW)
    before_scopes = {"name": "old", "tenant": "acme", "role": "writer", "revoked_at": None}
    before_scopes["created_at"] = NOW - timedelta(days=89)
    assert granted(before_scopes, NOW).scopes == ROLE_SCOPES["writer"]


def test_a_token_from_before_expiries_gets_the_default_one_from_its_creation() -> None:
    old = {"name": "old", "tenant": "acme", "scopes": ["read"], "revoked_at": None}
    assert expiry_of(old | {"created_at": NOW}) == NOW + timedelta(days=90)
    with pytest.raises(Refused, match="expired"):
        granted(old | {"created_at": NOW - timedelta(days=90)}, NOW)
    with pytest.raises(Refused, match="expired"):
        granted(old, NOW)  # no date at all
    assert expiry_of(old | {"expires_at": None}) is None  # --expires never, said explicitly


def test_last_used_is_written_at_most_once_a_minute() -> None:
    assert stale(None, NOW)
    assert not stale((NOW - timedelta(seconds=59)).replace(tzinfo=None), NOW)
    assert stale(NOW - timedelta(seconds=60), NOW)


def test_dashboard_sums() -> None:
    docs = [
        {"state": "verified", "ciphertext_size": 10,
         "replicas": {"s3": {"verified_at": 1, "tier": "cold"}, "gcs": {"verified_at": 1}}},
        {"state": "deleted", "ciphertext_size": 5,
         "replicas": {"s3": {"verified_at": 1, "removed_at": 2}}},
    ]  # fmt: skip
    assert by_state(docs) == {"verified": 1, "deleted": 1}
    assert by_store_and_tier(docs) == [
        {"store": "gcs", "tier": "hot", "replicas": 1, "bytes": 10},
        {"store": "s3", "tier": "cold", "replicas": 1, "bytes": 10},
    ]
    from datetime import datetime

    at = [datetime(2026, 1, 1, 0, 0, s) for s in (1, 59)] + [datetime(2026, 1, 1, 0, 1, 0)]
    assert [r["events"] for r in per_minute(at)] == [2, 1]
