"""Policy files: the shipped ones, errors naming the line, rule matching and pins."""

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from workers.core.policy import Match, ObjectStats, Pin, Policy, Rule
from workers.core.prices import TIERS
from workers.tiering.policy import PolicyError, load_policy, parse_policy

NOW = datetime(2025, 6, 1, tzinfo=UTC)


def stats(
    name: str = "data/a",
    size: int = 1000,
    age: float = 100,
    reads: tuple[float, ...] = (),
    tags: dict[str, str] | None = None,
    tenant: str = "default",
) -> ObjectStats:
    """An object created ``age`` days ago, read ``reads`` days ago."""
    return ObjectStats(
        name=name,
        size=size,
        created=NOW - timedelta(days=age),
        reads=tuple(NOW - timedelta(days=d) for d in reads),
        replicas=(),
        tenant=tenant,
        tags=tags or {},
    )


def test_the_shipped_policies_load() -> None:
    default = load_policy(Path("default"))
    assert default.readable_replicas == 1 and default.residency == {"archive": 180.0}
    assert [r.name for r in default.rules] == ["scratch-stays-hot", "old-and-idle-never-hot"]
    assert default.default == TIERS
    assert default.pin_for(stats(name="legal/contract.pdf")) is not None
    lifecycle = load_policy(Path("lifecycle"))
    assert all(len(r.tiers) == 1 for r in lifecycle.rules) and lifecycle.default == ("hot",)
    assert lifecycle.rules[0].match.min_size == 128 * 1024
    assert lifecycle.forecast.min_saving == 0


def test_a_full_policy_parses_with_sizes_tags_and_lines() -> None:
    policy = parse_policy(
        "readable_replicas: 0\n"
        "forecast: {half_life_days: 3, horizon_days: 90}\n"
        "providers: {gcs: [hot, warm]}\n"
        "pinned:\n"
        "  - {tags: {hold: yes}}\n"
        "rules:\n"
        "  - name: big\n"
        "    match: {min_size: 1.5MiB, tags: {team: ml}, tenant: acme, max_idle_days: 7}\n"
        "    tiers: [warm, cold]\n"
        "default: cold\n",
        "p.yaml",
    )
    assert policy.readable_replicas == 0
    assert policy.forecast.half_life_days == 3 and policy.forecast.period_days == 30
    assert policy.providers == {"gcs": ("hot", "warm")}
    assert policy.pinned == (Pin(tags={"hold": "True"}, line=5),)  # YAML 1.1: yes is True
    (rule,) = policy.rules
    assert rule.line == 7 and rule.tiers == ("warm", "cold")
    assert rule.match == Match(
        min_size=1572864, tags={"team": "ml"}, tenant="acme", max_idle_days=7
    )
    assert policy.default == ("cold",)


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ("rules:\n  - name: a\n    tier: lukewarm\n", "p.yaml:3: unknown tier 'lukewarm'"),
        ("readable_replicas: 1\ncolour: blue\n", "p.yaml:2: unknown key 'colour' in the policy"),
        (
            "rules:\n  - name: a\n    match: {age: 3}\n    tier: hot\n",
            "p.yaml:3: unknown key 'age'",
        ),
        (
            "rules:\n  - name: a\n    tiers: [hot]\n    tier: hot\n",
            "p.yaml:2: a rule needs exactly",
        ),
        ("rules:\n  - tier: hot\n", "p.yaml:2: a rule needs a name"),
        ("residency:\n  cold: -3\n", "p.yaml:2: residency of cold must be a number >= 0"),
        ("rules:\n\n  - name: a\n    match: {min_size: 3 parsecs}\n    tier: hot\n", "p.yaml:4:"),
        ("forecast:\n  half_life_days: 0\n", "p.yaml:2: half_life_days must be > 0"),
        ("rules: [\n", "p.yaml:2: not valid YAML"),
        ("pinned:\n  - {}\n", "p.yaml:2: a pin needs a prefix or tags"),
        ("readable_replicas: two\n", "p.yaml:1: readable_replicas must be a whole number"),
        ("providers:\n  dropbox: [hot]\n", "p.yaml:2: unknown key 'dropbox' in providers"),
        ("", "p.yaml:1: empty policy"),
    ],
)
def test_a_bad_policy_names_its_line(text: str, error: str) -> None:
    with pytest.raises(PolicyError) as caught:
        parse_policy(text, "p.yaml")
    assert str(caught.value).startswith(error)


def test_a_missing_policy_file_is_an_error_naming_it(tmp_path: Path) -> None:
    with pytest.raises(PolicyError, match=r"nope\.yaml"):
        load_policy(tmp_path / "nope.yaml")


@pytest.mark.parametrize(
    ("match", "hit"),
    [
        (Match(min_age_days=100), True),  # age is exactly 100 days: bounds are inclusive
        (Match(min_age_days=100.1), False),
        (Match(max_age_days=99), False),
        (Match(min_idle_days=10), True),  # last read 10 days ago
        (Match(min_idle_days=11), False),
        (Match(max_idle_days=9), False),
        (Match(min_size=1000, max_size=1000), True),
        (Match(min_size=1001), False),
        (Match(prefix="data/"), True),
        (Match(prefix="logs/"), False),
        (Match(tags={"team": "ml"}), True),
        (Match(tags={"team": "ml", "env": "prod"}), False),
        (Match(tenant="acme"), True),
        (Match(tenant="other"), False),
    ],
)
def test_rule_matching(match: Match, hit: bool) -> None:
    one = stats(reads=(50, 10), tags={"team": "ml"}, tenant="acme")
    assert match.matches(one, NOW) is hit


def test_idle_days_count_from_creation_when_never_read() -> None:
    assert stats(age=40).idle_days(NOW) == 40
    assert stats(age=40, reads=(30, 5)).idle_days(NOW) == 5


def test_the_first_matching_rule_wins_and_pins_match_prefix_and_tags() -> None:
    policy = Policy(
        rules=(
            Rule("young", Match(max_age_days=10), ("hot",)),
            Rule("any", Match(), ("cold",)),
            Rule("never-reached", Match(), ("warm",)),
        ),
        pinned=(Pin(prefix="legal/", tags={"hold": "true"}),),
    )
    assert policy.rule_for(stats(age=5), NOW) == policy.rules[0]
    assert policy.rule_for(stats(age=50), NOW) == policy.rules[1]
    assert policy.pin_for(stats(name="legal/a", tags={"hold": "true"})) is not None
    assert policy.pin_for(stats(name="legal/a")) is None  # both conditions of the pin
    assert policy.pin_for(stats(name="data/a", tags={"hold": "true"})) is None
