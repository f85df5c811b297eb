"""What a put sends, decided before anything is sent: names, tags, digests."""

import hashlib
import os
from pathlib import Path

import pytest

from workers.client.puts import BadNames, file_content, files_to_put, parse_tags


def tree(root: Path, files: dict[str, bytes]) -> Path:
    for name, data in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    return root


def test_a_folder_is_named_relative_to_itself_a_file_by_its_name(tmp_path: Path) -> None:
    root = tree(tmp_path / "reports", {"a.csv": b"1", "2026/b.csv": b"2"})
    assert [f.name for f in files_to_put([root])] == ["2026/b.csv", "a.csv"]
    assert [f.name for f in files_to_put([root / "a.csv"])] == ["a.csv"]
    assert [f.name for f in files_to_put([root], prefix="q4/")] == ["q4/2026/b.csv", "q4/a.csv"]
    assert [f.name for f in files_to_put([root / "a.csv"], name="x/y.csv")] == ["x/y.csv"]
    with pytest.raises(BadNames, match="--name names one file"):
        files_to_put([root], name="x")


def test_two_paths_naming_the_same_object_are_refused(tmp_path: Path) -> None:
    a = tree(tmp_path / "a", {"report.csv": b"1"})
    b = tree(tmp_path / "b", {"report.csv": b"2"})
    with pytest.raises(BadNames, match=r"same name: report\.csv"):
        files_to_put([a / "report.csv", b / "report.csv"])


def test_every_bad_name_is_listed_before_anything_is_sent(tmp_path: Path) -> None:
    root = tmp_path / "src"
    root.mkdir()
    (root / "ok.txt").write_bytes(b"fine")
    (root / "evil\u202etxt.exe").write_bytes(b"x")
    (Path(os.fsdecode(bytes(root) + b"/latin1-\xe9.txt"))).write_bytes(b"x")
    with pytest.raises(BadNames) as caught:
        files_to_put([root])
    lines = str(caught.value).splitlines()
    assert len(lines) == 2
    assert any("bidi control" in line and "evil\\u202etxt" in line for line in lines)
    assert any("not valid UTF-8" in line and "latin1-\\xe9" in line for line in lines)


def test_tags_must_be_key_value() -> None:
    assert parse_tags(["tier=cold", "team=a=b"]) == {"tier": "cold", "team": "a=b"}
    with pytest.raises(ValueError, match="'foo' is not key=value"):
        parse_tags(["foo"])


def test_file_content_is_size_and_sha256(tmp_path: Path) -> None:
    data = os.urandom(3 * 1024 * 1024 + 5)
    (tmp_path / "f").write_bytes(data)
    measured = file_content(tmp_path / "f")
    assert (measured.size, measured.sha256) == (len(data), hashlib.sha256(data).hexdigest())
