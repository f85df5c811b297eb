"""Which holds refuse a removal, and how a retention may change."""

from datetime import UTC, datetime, timedelta

from workers.core.holds import (
    covers,
    hold_state,
    in_force,
    prefix_hold_id,
    refusal,
    retention_refusal,
    version_hold_id,
)

NOW = datetime(2026, 12, 7, 12, tzinfo=UTC)
DAY = timedelta(days=1)
V2 = {"object_id": "o1", "version": 2, "tenant": "t", "name": "docs/a.txt"}


def version_hold(version: int, **fields: object) -> dict[str, object]:
    return {"_id": version_hold_id("o1", version), "object_id": "o1", "version": version, **fields}


def prefix_hold(tenant: str, prefix: str, **fields: object) -> dict[str, object]:
    return {"_id": prefix_hold_id(tenant, prefix), "tenant": tenant, "prefix": prefix, **fields}


def test_a_version_hold_covers_its_version_only() -> None:
    assert covers(version_hold(2), V2)
    assert not covers(version_hold(1), V2)


def test_a_prefix_hold_covers_its_tenants_names_under_it() -> None:
    assert covers(prefix_hold("t", "docs/"), V2)
    assert covers(prefix_hold("t", ""), V2)
    assert not covers(prefix_hold("t", "other/"), V2)
    assert not covers(prefix_hold("u", "docs/"), V2)


def test_a_hold_is_in_force_while_legal_or_retained() -> None:
    assert in_force(version_hold(2, legal_hold=True), NOW)
    assert in_force(version_hold(2, retain_until=NOW + DAY), NOW)
    # MongoDB gives naive UTC back
    assert in_force(version_hold(2, retain_until=(NOW + DAY).replace(tzinfo=None)), NOW)
    assert not in_force(version_hold(2, retain_until=NOW), NOW)
    assert not in_force(version_hold(2, legal_hold=False, retain_until=None), NOW)


def test_refusal_names_every_hold_in_force_and_why() -> None:
    holds = [
        version_hold(2, legal_hold=True, reason="case 12"),
        prefix_hold("t", "docs/", retain_until=NOW + DAY),
        prefix_hold("t", "docs/a", retain_until=NOW - DAY),  # passed
        version_hold(1, legal_hold=True),  # another version
    ]
    assert refusal(V2, holds, NOW) == (
        "docs/a.txt v2 is held: a legal hold on v2 (case 12); "
        "retention until 2026-12-08T12:00:00+00:00 on prefix 'docs/'"
    )
    assert refusal(V2, holds[2:], NOW) is None
    assert refusal(V2, [], NOW) is None


def test_hold_state_is_the_latest_retention_in_force_and_any_legal_hold() -> None:
    holds = [
        version_hold(2, retain_until=NOW + DAY),
        prefix_hold("t", "docs/", retain_until=NOW + 2 * DAY, legal_hold=False),
        prefix_hold("t", "other/", legal_hold=True),
    ]
    assert hold_state(V2, holds, NOW) == (NOW + 2 * DAY, False)
    assert hold_state(V2, [*holds, prefix_hold("t", "docs/a", legal_hold=True)], NOW)[1]
    assert hold_state(V2, holds, NOW + 3 * DAY) == (None, False)


def test_retention_is_set_or_extended_never_shortened_until_it_passes() -> None:
    assert retention_refusal(None, NOW + DAY, NOW) is None
    assert retention_refusal(NOW + DAY, NOW + 2 * DAY, NOW) is None
    assert "cannot be shortened" in str(retention_refusal(NOW + 2 * DAY, NOW + DAY, NOW))
    assert retention_refusal(NOW - DAY, NOW + DAY / 2, NOW) is None  # the old one has passed
    assert "passed already" in str(retention_refusal(None, NOW - DAY, NOW))
