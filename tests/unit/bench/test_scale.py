"""The scale benchmark's pure logic: rows, medians per versions, merging, the table, the cap."""

import pytest

from bench.scale import (
    SEED_BUDGET_S,
    Op,
    batches,
    capped,
    failing,
    growth,
    median,
    merged_rows,
    row,
    table,
)


def test_a_row_is_the_median_of_its_runs_scaled_per_versions_when_asked() -> None:
    op = Op("ls", "page", 3)
    assert row(10_000, op, [3.0, 1.0, 2.0], 101.26)["seconds"] == 2.0
    swept = row(100_000, Op("tier sweep", "scan", 1, per=10_000), [50.0], 90.0)
    assert swept == {
        "size": 100_000,
        "op": "tier sweep",
        "kind": "scan",
        "seconds": 5.0,
        "peak_rss_mib": 90.0,
        "runs": 1,
    }
    with pytest.raises(ValueError):
        median([])


def test_rows_of_the_sizes_measured_again_replace_the_old_ones() -> None:
    old = [{"size": 10, "op": "a", "seconds": 1}, {"size": 100, "op": "a", "seconds": 9}]
    new = [{"size": 100, "op": "a", "seconds": 8}]
    assert merged_rows(old, new) == [old[0], new[0]]


def test_the_table_puts_sizes_across_and_marks_what_was_not_measured() -> None:
    rows = [
        {"size": 10_000, "op": "show", "kind": "object", "seconds": 0.01, "peak_rss_mib": 80.0},
        {"size": 100_000, "op": "show", "kind": "object", "seconds": 0.02, "peak_rss_mib": 81.0},
        {"size": 10_000, "op": "verify", "kind": "scan", "seconds": 12.5, "peak_rss_mib": 99.4},
    ]
    lines = table(rows).splitlines()
    assert lines[0].split() == ["operation", "kind", "10,000", "100,000"]
    assert "0.01 s (80 MiB)" in lines[1] and "0.02 s (81 MiB)" in lines[1]
    assert lines[2].startswith("verify") and lines[2].endswith("-")
    assert growth(rows) == {"show": 2.0}


def test_a_size_that_would_seed_too_long_is_capped_and_the_reason_given() -> None:
    fast = SEED_BUDGET_S / 2_000_000  # 2 million fit
    assert capped([100_000, 1_000_000], fast) == ([100_000, 1_000_000], None)
    slow = SEED_BUDGET_S / 86_000  # 86,000 versions fit the budget
    sizes, why = capped([100_000, 1_000_000], slow)
    assert sizes == [80_000] and why is not None and "capped at 80,000" in why
    assert capped([1_000_000], SEED_BUDGET_S / 500_000)[0] == [300_000]  # never above the cap


def test_batches_never_split_a_version() -> None:
    versions = [[1] * 11, [2] * 11, [3] * 2, [4] * 600]
    assert [len(b) for b in batches(versions, 24)] == [24, 600]  # type: ignore[arg-type]
    assert [len(b) for b in batches(versions, 22)] == [22, 2, 600]  # type: ignore[arg-type]


def test_one_version_in_a_thousand_fails() -> None:
    assert sum(failing(n) for n in range(100_000)) == 100
