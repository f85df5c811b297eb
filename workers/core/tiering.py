"""Tier decisions, pure. The initial placement rule; the cost-based engine grows here."""

from collections.abc import Mapping

TIERS = ("hot", "warm", "cold", "archive")


def initial_tier(tags: Mapping[str, str], default: str) -> tuple[str, str]:
    """(tier, reason) for a freshly verified replica: a valid ``tier`` tag wins, else default."""
    wanted = tags.get("tier")
    if wanted in TIERS:
        return wanted, "tag"
    return default, "default policy"
