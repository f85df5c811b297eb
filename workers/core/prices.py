"""Storage prices as data: one TOML document per provider (``deploy/prices/*.toml``), checked.

Operation prices may be written per request, per 1,000 or per 10,000 (``write_per_1000``, ...)
as each provider's page lists them; they come out per request. Every error is one line naming
the file and the key.
"""

import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

TIERS = ("hot", "warm", "cold", "archive")  # warmest first
KIB = 1024
GB = 1024**3  # providers bill binary gigabytes (GiB) and call them GB
EARLY_DELETION_RULES = ("none", "remaining-days")
OPERATIONS = ("write", "read", "transition")
PER = {"per_request": 1, "per_1000": 1_000, "per_10000": 10_000}


class PriceError(ValueError):
    """A prices file that can't be used; the message names the file and the key."""


@dataclass(frozen=True, slots=True)
class TierPrices:
    """What one tier of one provider costs, operations per request."""

    storage_class: str
    storage_per_gb_month: float
    retrieval_per_gb: float
    write: float
    read: float
    transition: float  # moving a replica into this tier
    min_days: int
    early_deletion: str  # "none" or "remaining-days": leaving early bills the rest of min_days
    needs_rehydration: bool
    rehydration_hours: float
    min_billable_kib: int
    overhead_kib: int

    def billable_gb(self, size: int) -> float:
        """The size this tier bills storage for: a minimum per object plus any overhead."""
        return (max(size, self.min_billable_kib * KIB) + self.overhead_kib * KIB) / GB


@dataclass(frozen=True, slots=True)
class AutoTiering:
    """An Intelligent-Tiering-like service (real on S3, emulated elsewhere)."""

    name: str
    emulated: bool
    monitoring_per_object_month: float
    min_object_kib: int
    infrequent_after_days: int
    archive_after_days: int
    frequent_per_gb_month: float
    infrequent_per_gb_month: float
    archive_instant_per_gb_month: float
    write: float
    read: float


@dataclass(frozen=True, slots=True)
class ProviderPrices:
    """One provider's price sheet for one region."""

    provider: str
    region: str
    as_of: str
    source: str
    egress_per_gb: float
    tiers: Mapping[str, TierPrices]
    auto_tiering: AutoTiering | None


class _Fields:
    """Typed reads from one table of the document, each error naming file and key."""

    def __init__(self, table: Mapping[str, Any], source: str, path: str) -> None:
        self.table, self.source, self.path = table, source, path

    def fail(self, key: str, message: str) -> PriceError:
        return PriceError(f"{self.source}: {self.path}{key}: {message}")

    def raw(self, key: str) -> Any:
        if key not in self.table:
            raise self.fail(key, "missing")
        return self.table[key]

    def text(self, key: str) -> str:
        value = self.raw(key)
        if not isinstance(value, str) or not value:
            raise self.fail(key, "must be a non-empty string")
        return value

    def flag(self, key: str) -> bool:
        value = self.raw(key)
        if not isinstance(value, bool):
            raise self.fail(key, "must be true or false")
        return value

    def price(self, key: str) -> float:
        value = self.raw(key)
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise self.fail(key, "must be a number")
        if value < 0:
            raise self.fail(key, f"negative price {value}")
        return float(value)

    def count(self, key: str) -> int:
        value = self.raw(key)
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise self.fail(key, "must be a whole number >= 0")
        return value

    def per_request(self, operation: str) -> float:
        """``operation_per_1000 = 0.005`` and the like, per request."""
        given = [f"{operation}_{unit}" for unit in PER if f"{operation}_{unit}" in self.table]
        if len(given) != 1:
            units = " or ".join(f"{operation}_{unit}" for unit in PER)
            raise self.fail(operation, f"give exactly one of {units}")
        (key,) = given
        return self.price(key) / PER[key.removeprefix(f"{operation}_")]

    def sub(self, key: str) -> "_Fields":
        value = self.raw(key)
        if not isinstance(value, dict):
            raise self.fail(key, "must be a table")
        return _Fields(value, self.source, f"{self.path}{key}.")


def _tier(fields: _Fields) -> TierPrices:
    rule = fields.text("early_deletion")
    if rule not in EARLY_DELETION_RULES:
        raise fields.fail("early_deletion", f"{rule!r} is not one of {EARLY_DELETION_RULES}")
    tier = TierPrices(
        storage_class=fields.text("class"),
        storage_per_gb_month=fields.price("storage_per_gb_month"),
        retrieval_per_gb=fields.price("retrieval_per_gb"),
        write=fields.per_request("write"),
        read=fields.per_request("read"),
        transition=fields.per_request("transition"),
        min_days=fields.count("min_days"),
        early_deletion=rule,
        needs_rehydration=fields.flag("needs_rehydration"),
        rehydration_hours=fields.price("rehydration_hours"),
        min_billable_kib=fields.count("min_billable_kib"),
        overhead_kib=fields.count("overhead_kib"),
    )
    if tier.needs_rehydration != (tier.rehydration_hours > 0):
        raise fields.fail("rehydration_hours", "must be > 0 exactly when needs_rehydration")
    return tier


def _auto_tiering(fields: _Fields) -> AutoTiering:
    return AutoTiering(
        name=fields.text("name"),
        emulated=fields.flag("emulated"),
        monitoring_per_object_month=fields.price("monitoring_per_1000_objects_month") / 1000,
        min_object_kib=fields.count("min_object_kib"),
        infrequent_after_days=fields.count("infrequent_after_days"),
        archive_after_days=fields.count("archive_after_days"),
        frequent_per_gb_month=fields.price("frequent_per_gb_month"),
        infrequent_per_gb_month=fields.price("infrequent_per_gb_month"),
        archive_instant_per_gb_month=fields.price("archive_instant_per_gb_month"),
        write=fields.per_request("write"),
        read=fields.per_request("read"),
    )


def parse_prices(text: str, source: str) -> ProviderPrices:
    """One provider's prices from TOML text; ``source`` (the file name) heads every error."""
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise PriceError(f"{source}: not valid TOML: {exc}") from None
    top = _Fields(doc, source, "")
    tiers = top.sub("tiers")
    unknown = sorted(set(tiers.table) - set(TIERS))
    if unknown:
        raise tiers.fail(unknown[0], f"unknown tier (the tiers are {', '.join(TIERS)})")
    return ProviderPrices(
        provider=top.text("provider"),
        region=top.text("region"),
        as_of=top.text("as_of"),
        source=top.text("source"),
        egress_per_gb=top.price("egress_per_gb"),
        tiers={tier: _tier(tiers.sub(tier)) for tier in TIERS},
        auto_tiering=_auto_tiering(top.sub("auto_tiering")) if "auto_tiering" in doc else None,
    )
