"""Prices files: the shipped ones load, per-request normalisation, one-line errors."""

from pathlib import Path

import pytest

from workers.core.prices import GB, TIERS, PriceError, parse_prices
from workers.tiering.prices import PRICES_DIR, load_prices

S3 = (PRICES_DIR / "aws-s3.toml").read_text()


def test_the_shipped_prices_load_one_provider_per_file_with_every_tier() -> None:
    prices = load_prices()
    assert sorted(prices) == ["azure", "gcs", "s3"]
    for sheet in prices.values():
        assert tuple(sheet.tiers) == TIERS
        assert sheet.source.startswith("https://") and sheet.as_of
        assert sheet.auto_tiering is not None
    assert prices["s3"].region == "us-east-1" and prices["azure"].region == "East US"
    assert prices["gcs"].region == "us-central1"


def test_operation_prices_come_out_per_request() -> None:
    prices = load_prices()
    # S3 PUT $0.005 per 1,000 = $0.000005 each; Azure hot write $0.05 per 10,000 = the same.
    assert prices["s3"].tiers["hot"].write == pytest.approx(5e-6)
    assert prices["azure"].tiers["hot"].write == pytest.approx(5e-6)
    # Azure archive read $5 per 10,000 = $0.0005 each.
    assert prices["azure"].tiers["archive"].read == pytest.approx(5e-4)
    # Intelligent-Tiering's monitoring: $0.0025 per 1,000 objects a month.
    it = prices["s3"].auto_tiering
    assert it is not None and it.monitoring_per_object_month == pytest.approx(2.5e-6)


def test_billable_size_has_the_tier_minimum_and_overhead() -> None:
    s3 = load_prices()["s3"].tiers
    # STANDARD_IA bills 1 KiB as 128 KiB: 131072 / 2**30 GB.
    assert s3["warm"].billable_gb(1024) == 131072 / GB
    # DEEP_ARCHIVE adds 40 KiB to 1 MiB: (1048576 + 40960) / 2**30.
    assert s3["archive"].billable_gb(1024**2) == (1048576 + 40960) / GB
    assert s3["hot"].billable_gb(1024) == 1024 / GB


@pytest.mark.parametrize(
    ("old", "new", "error"),
    [
        ("[tiers.warm]", "[tiers.lukewarm]", "s3.toml: tiers.lukewarm: unknown tier"),
        (
            "storage_per_gb_month = 0.023",
            "storage_per_gb_month = -0.023",
            "s3.toml: tiers.hot.storage_per_gb_month: negative price -0.023",
        ),
        ("min_days = 30\n", "", "s3.toml: tiers.warm.min_days: missing"),
        ('region = "us-east-1"\n', "", "s3.toml: region: missing"),
        (
            "read_per_1000 = 0.0004        # GET",
            "read_per_1000 = 0.0004\nread_per_10000 = 0.004 #",
            "s3.toml: tiers.hot.read: give exactly one of",
        ),
        (
            'early_deletion = "none"',
            'early_deletion = "never"',
            "s3.toml: tiers.hot.early_deletion: 'never' is not one of",
        ),
        (
            "rehydration_hours = 12",
            "rehydration_hours = 0",
            "s3.toml: tiers.archive.rehydration_hours: must be > 0 exactly when",
        ),
        ("min_days = 90", 'min_days = "90"', "s3.toml: tiers.cold.min_days: must be a whole"),
        ("[tiers.hot]", "[tiers.hot", "s3.toml: not valid TOML"),
    ],
)
def test_a_bad_prices_file_is_one_line_naming_file_and_key(old: str, new: str, error: str) -> None:
    assert old in S3
    with pytest.raises(PriceError) as caught:
        parse_prices(S3.replace(old, new, 1), "s3.toml")
    assert str(caught.value).startswith(error)
    assert "\n" not in str(caught.value)


def test_a_folder_without_prices_or_with_a_provider_twice_is_refused(tmp_path: Path) -> None:
    with pytest.raises(PriceError, match=r"no \*\.toml"):
        load_prices(tmp_path)
    (tmp_path / "a.toml").write_text(S3)
    (tmp_path / "b.toml").write_text(S3)
    with pytest.raises(PriceError, match=r"b\.toml: provider: 's3' priced twice"):
        load_prices(tmp_path)
