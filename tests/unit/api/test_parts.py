"""The API's pure parts: ranges, rate limits, roles, problem bodies."""

import pytest

from workers.api.app import RateLimiter
from workers.api.objects import byte_range
from workers.api.problems import Problem
from workers.api.tokens import Principal
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


def test_the_rate_limit_refills_over_time() -> None:
    now = [0.0]
    limiter = RateLimiter(per_minute=2, clock=lambda: now[0])
    assert limiter.allow("a") and limiter.allow("a") and not limiter.allow("a")
    assert limiter.allow("b")  # per token
    now[0] = 30.0  # half a minute: one more
    assert limiter.allow("a") and not limiter.allow("a")


def test_roles_rank_and_tenants_separate() -> None:
    reader, admin = Principal("r", "reader", "acme"), Principal("a", "admin", "ops")
    assert reader.may("reader") and not reader.may("writer")
    assert admin.may("writer") and admin.sees("acme")
    assert reader.sees("acme") and not reader.sees("other")


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
