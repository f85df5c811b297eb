"""Sources scoped: URLs only from allowed buckets outside our own, keys like names, paths only
regular files below a root reached without a symbolic link, checked again at open."""

import os
from pathlib import Path

import pytest
from pydantic import ValidationError

from schemas.events import Source
from workers.errors import Permanent
from workers.settings import Settings
from workers.sources import check_url, open_path


def test_no_bucket_is_allowed_by_default(tmp_path: Path) -> None:
    with pytest.raises(Permanent, match="outside the allowed stores"):
        check_url("s3://movingdata/in/x.bin", Settings(home=tmp_path))


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("s3://replicas/default/abc/v1/w", "bucket of replicas and staged uploads"),
        ("gs://replicas/_staging/default/r1", "bucket of replicas and staged uploads"),
        ("s3://inbox/_staging/default/r1", "staging area"),
        ("s3://elsewhere/x", "outside the allowed stores"),
    ],
)
def test_a_url_never_reads_replicas_or_staged_uploads(
    tmp_path: Path, url: str, reason: str
) -> None:
    settings = Settings(home=tmp_path, bucket="replicas", source_buckets=("replicas", "inbox"))
    with pytest.raises(Permanent, match=reason):
        check_url(url, settings)


def test_an_allowed_bucket_is_read(tmp_path: Path) -> None:
    check_url("azure://inbox/in/x.bin", Settings(home=tmp_path, source_buckets=("inbox",)))


@pytest.mark.parametrize(
    "key", ["a/../b", "../x", "a//b", "a/", "./a", "a\x00b", "bad\x1bkey", "a\u202eb"]
)
def test_a_url_key_is_validated_like_a_name(key: str) -> None:
    with pytest.raises(ValidationError):
        Source(url=f"s3://inbox/{key}")


@pytest.fixture
def root(tmp_path: Path) -> Path:
    root = tmp_path / "root"
    (root / "sub").mkdir(parents=True)
    (root / "sub" / "file.txt").write_bytes(b"inside")
    (tmp_path / "secret.txt").write_bytes(b"outside")
    return root


def test_a_regular_file_below_a_root_is_opened(root: Path) -> None:
    with open_path(str(root / "sub" / "file.txt"), (root,)) as handle:
        assert handle.read() == b"inside"


def test_a_root_given_as_a_link_is_matched_written_or_resolved(root: Path, tmp_path: Path) -> None:
    link = tmp_path / "link-to-root"
    link.symlink_to(root)
    for path in (link / "sub" / "file.txt", root / "sub" / "file.txt"):
        with open_path(str(path), (link,)) as handle:
            assert handle.read() == b"inside"


@pytest.mark.parametrize(
    "target", ["sub/file.txt", "../secret.txt"], ids=["inside-root", "outside-root"]
)
def test_a_symbolic_link_is_not_followed(root: Path, target: str) -> None:
    (root / "link.txt").symlink_to(root / target)
    with pytest.raises(Permanent, match="a symbolic link"):
        open_path(str(root / "link.txt"), (root,))


def test_a_linked_folder_is_not_followed(root: Path) -> None:
    (root / "linked").symlink_to(root / "sub")
    with pytest.raises(Permanent, match="a symbolic link"):
        open_path(str(root / "linked" / "file.txt"), (root,))


@pytest.mark.parametrize(
    ("path", "reason"),
    [
        ("relative/file", "absolute"),
        ("{root}/sub/../../secret.txt", "normal form"),
        ("{root}/sub/./file.txt", "normal form"),
        ("{root}//sub/file.txt", "normal form"),
        ("{root}/../secret.txt", "normal form"),
        ("{root}", "outside the allowed source roots"),
        ("{root}-other/file", "outside the allowed source roots"),
        ("{root}/sub", "not a regular file"),
        ("{root}/missing", "not a regular file: no such file"),
    ],
)
def test_a_path_that_is_not_a_regular_file_below_a_root_is_refused(
    root: Path, path: str, reason: str
) -> None:
    with pytest.raises(Permanent, match=reason):
        open_path(path.format(root=root), (root,))


def test_a_fifo_is_refused_without_waiting_for_a_writer(root: Path) -> None:
    os.mkfifo(root / "fifo")
    with pytest.raises(Permanent, match="not a regular file"):
        open_path(str(root / "fifo"), (root,))
