"""The sync plan: rclone's filters, names, and new/changed/unchanged/delete from listings."""

import pytest

from schemas.events import safe_key
from workers.core.sync import (
    Action,
    Filter,
    FilterError,
    Listed,
    Names,
    Recorded,
    RuleKind,
    decide,
    deletions,
    folder_prefix,
    glob_regex,
    plan_listed,
    request_id,
)


def admitted(rules: list[tuple[RuleKind, str]], keys: list[str]) -> list[str]:
    rule_set = Filter.of(rules)
    return [key for key in keys if rule_set.admits(key)]


KEYS = ["a.txt", "a.jpg", "docs/b.txt", "docs/deep/c.txt", "docs/c.jpg", "tmp/x.txt"]


@pytest.mark.parametrize(
    ("glob", "matches", "misses"),
    [
        ("*.txt", ["a.txt", "docs/b.txt", "docs/deep/c.txt"], ["a.jpg", "a.txt.gz"]),
        ("/*.txt", ["a.txt"], ["docs/b.txt"]),
        ("docs/*", ["docs/b.txt", "x/docs/c.jpg"], ["docs/deep/c.txt"]),
        ("/docs/**", ["docs/b.txt", "docs/deep/c.txt"], ["x/docs/b.txt", "docsx/b"]),
        ("docs/", ["docs/deep/c.txt"], ["docs"]),
        ("?.txt", ["a.txt", "d/b.txt"], ["ab.txt", "/.txt"]),
        ("*.{jpg,png}", ["a.jpg", "d/b.png"], ["a.gif", "a.jpg,png"]),
        ("[ab].txt", ["a.txt", "b.txt"], ["c.txt"]),
        ("[^a].txt", ["b.txt"], ["a.txt"]),
        (r"\*.txt", ["*.txt"], ["a.txt"]),
        ("a+b(1).txt", ["a+b(1).txt"], ["aab1.txt"]),
    ],
)
def test_globs_match_as_rclone_s_do(glob: str, matches: list[str], misses: list[str]) -> None:
    pattern = glob_regex(glob)
    assert [key for key in matches if not pattern.search(key)] == []
    assert [key for key in misses if pattern.search(key)] == []


@pytest.mark.parametrize("glob", ["a***", "[ab", "{a,b", "a}", "a]", "{a,{b}}", "a\\"])
def test_a_bad_glob_is_refused(glob: str) -> None:
    with pytest.raises(FilterError):
        glob_regex(glob)


def test_no_rule_admits_everything() -> None:
    assert admitted([], KEYS) == KEYS


def test_excludes_alone_admit_the_rest() -> None:
    assert admitted([("exclude", "*.jpg"), ("exclude", "/tmp/**")], KEYS) == [
        "a.txt",
        "docs/b.txt",
        "docs/deep/c.txt",
    ]


def test_an_include_excludes_what_no_rule_matched() -> None:
    assert admitted([("include", "*.jpg")], KEYS) == ["a.jpg", "docs/c.jpg"]


def test_the_first_matching_rule_wins() -> None:
    first_exclude: list[tuple[RuleKind, str]] = [
        ("exclude", "/docs/deep/**"),
        ("include", "/docs/**"),
    ]
    assert admitted(first_exclude, KEYS) == ["docs/b.txt", "docs/c.jpg"]
    first_include: list[tuple[RuleKind, str]] = [
        ("include", "/docs/**"),
        ("exclude", "/docs/deep/**"),
    ]
    assert admitted(first_include, KEYS) == ["docs/b.txt", "docs/deep/c.txt", "docs/c.jpg"]


def test_names_are_keys_relative_to_the_source_prefix_with_the_prefix_before() -> None:
    names = Names(folder_prefix("/photos/2024/"), "archive/", safe_key)
    assert names.source_prefix == "photos/2024/"
    assert names.name(names.relative("photos/2024/jan/a.jpg")) == "archive/jan/a.jpg"
    assert names.unprefixed("archive/jan/a.jpg") == "jan/a.jpg"
    assert names.unprefixed("other/a.jpg") is None
    assert folder_prefix("") == ""
    with pytest.raises(ValueError, match="not below"):
        names.relative("photos/2025/a.jpg")


def listed(key: str, size: int = 3, fingerprint: str = "etag:1", **digests: str) -> Listed:
    return Listed(key, size, fingerprint, digests)


def test_decide_compares_size_and_the_source_fingerprint() -> None:
    item = listed("k", 3, "etag:1")
    assert decide(item, None) is Action.NEW
    assert decide(item, Recorded(3, "etag:1")) is Action.UNCHANGED
    assert decide(item, Recorded(4, "etag:1")) is Action.CHANGED
    assert decide(item, Recorded(3, "etag:2")) is Action.CHANGED
    assert decide(item, Recorded(None, "etag:1")) is Action.UNCHANGED  # size not known yet
    # A version not put by a sync recorded no fingerprint: nothing shows it is the same.
    assert decide(item, Recorded(3, None, {"sha256": "x"})) is Action.CHANGED


def test_checksum_compares_content_digests_both_sides_know() -> None:
    item = listed("k", 3, "mtime:5", md5="aa", crc32c="cc")
    same = Recorded(3, "mtime:1", {"sha256": "ff", "md5": "aa"})
    assert decide(item, same, checksum=True) is Action.UNCHANGED
    assert decide(item, same) is Action.CHANGED  # a touched file, same bytes
    other = Recorded(3, "mtime:5", {"md5": "aa", "crc32c": "dd"})
    assert decide(item, other, checksum=True) is Action.CHANGED
    unknown = Recorded(3, "mtime:5", {"sha256": "ff"})
    assert decide(item, unknown, checksum=True) is Action.CHANGED
    assert decide(item, Recorded(4, "mtime:5", {"md5": "aa"}), checksum=True) is Action.CHANGED


def test_plan_decides_each_admitted_name_and_deletes_only_what_it_may() -> None:
    names = Names("src/", "p/", safe_key)
    source = [
        listed("src/new.txt"),
        listed("src/same.txt", fingerprint="etag:same"),
        listed("src/changed.txt", fingerprint="etag:new"),
        listed("src/skip.jpg"),
        listed("src/folder/"),  # a console's folder marker
        listed("src/bad\x07name.txt"),
    ]
    recorded = {
        "p/same.txt": Recorded(3, "etag:same"),
        "p/changed.txt": Recorded(3, "etag:old"),
        "p/gone.txt": Recorded(1, "etag:g"),
        "p/gone.jpg": Recorded(1, "etag:g"),  # excluded: left alone
        "other/gone.txt": Recorded(1, "etag:g"),  # outside --prefix: not this sync's
    }
    rules = Filter.of([("exclude", "*.jpg")])
    listed_steps = list(plan_listed(source, recorded, names, rules))
    seen = [s.name for s in listed_steps]
    steps = listed_steps + list(deletions(sorted(recorded), seen, names, rules))
    assert [(s.name, s.action) for s in steps] == [
        ("p/new.txt", Action.NEW),
        ("p/same.txt", Action.UNCHANGED),
        ("p/changed.txt", Action.CHANGED),
        ("p/bad\x07name.txt", Action.REFUSED),
        ("p/gone.txt", Action.DELETE),
    ]
    assert "control" in steps[3].reason
    assert steps[0].listed == source[0]


def test_request_ids_derive_from_job_key_and_fingerprint() -> None:
    one = request_id("job1", "a.txt", "etag:1")
    assert one == request_id("job1", "a.txt", "etag:1")
    assert len({one, request_id("job2", "a.txt", "etag:1"), request_id("job1", "a.txt", "etag:2"),
                request_id("job1", "b.txt", "etag:1")}) == 4  # fmt: skip
    assert one.startswith("job1-") and len(one) <= 128
