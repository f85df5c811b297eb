"""Tests of one-pass digests."""

import base64
import hashlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from workers.core.digests import (
    AZURE_BLOCKS,
    GCS_MD5,
    S3_SHA256,
    MultiDigest,
    block_list_digest,
    digests_match,
    s3_checksum_sha256,
    sha256_hex,
    store_digest,
)


def test_sha256_hex_known_answer() -> None:
    assert sha256_hex(b"abc") == (
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    )


def test_empty_input_known_answers() -> None:
    digest = MultiDigest(md5=True)
    assert digest.size == 0
    assert digest.sha256_hex == sha256_hex(b"")
    assert digest.md5_hex == "d41d8cd98f00b204e9800998ecf8427e"
    assert digest.md5_b64 == "1B2M2Y8AsgTpgAmY7PhCfg=="


@given(st.lists(st.binary(max_size=300), max_size=10))
def test_pieces_digest_like_the_whole(parts: list[bytes]) -> None:
    digest = MultiDigest(md5=True)
    for part in parts:
        digest.update(part)
    whole = b"".join(parts)
    assert digest.size == len(whole)
    assert digest.sha256_hex == hashlib.sha256(whole).hexdigest()
    assert digest.md5_hex == hashlib.md5(whole).hexdigest()
    assert base64.b64decode(digest.md5_b64) == hashlib.md5(whole).digest()


def test_reading_does_not_end_the_stream() -> None:
    digest = MultiDigest()
    digest.update(b"ab")
    assert digest.sha256_hex == sha256_hex(b"ab")
    digest.update(b"c")
    assert digest.sha256_hex == sha256_hex(b"abc")


def test_md5_only_when_asked_for() -> None:
    digest = MultiDigest()
    digest.update(b"data")
    for read in (lambda: digest.md5_hex, lambda: digest.md5_b64):
        with pytest.raises(ValueError, match="md5=True"):
            read()


def test_s3_checksum_of_one_part_is_the_objects_sha256() -> None:
    raw = hashlib.sha256(b"abc").digest()
    assert s3_checksum_sha256([raw]) == base64.b64encode(raw).decode()


def test_s3_multipart_checksum_is_a_checksum_of_the_part_checksums() -> None:
    parts = [b"a" * 10, b"b" * 3]
    raw = [hashlib.sha256(p).digest() for p in parts]
    # Known answer, worked out once: SHA-256 over the two raw 32-byte part digests.
    expected = base64.b64encode(hashlib.sha256(raw[0] + raw[1]).digest()).decode() + "-2"
    assert s3_checksum_sha256(raw) == expected
    # Not the SHA-256 of the object: a composite only proves the parts.
    assert not s3_checksum_sha256(raw).startswith(
        base64.b64encode(hashlib.sha256(b"".join(parts)).digest()).decode()
    )


def test_block_list_digest_depends_on_ids_sizes_and_order() -> None:
    one = block_list_digest([("a-000000", 4), ("a-000001", 2)])
    assert one == block_list_digest([("a-000000", 4), ("a-000001", 2)])
    assert one != block_list_digest([("a-000001", 2), ("a-000000", 4)])
    assert one != block_list_digest([("a-000000", 4), ("a-000001", 3)])
    assert one != block_list_digest([("a-000000", 4)])


@pytest.mark.parametrize(
    ("expected", "reported", "match"),
    [
        (store_digest(S3_SHA256, "x-2"), "s3-sha256:x-2", True),
        (store_digest(S3_SHA256, "x-2"), "s3-sha256:y-2", False),
        (store_digest(GCS_MD5, "x"), store_digest(AZURE_BLOCKS, "x"), False),
        (None, "gcs-md5:x", False),
        ("gcs-md5:x", None, False),
        ("gcs-md5:", "gcs-md5:", False),
    ],
)
def test_digests_match_only_when_both_known_and_equal(
    expected: str | None, reported: str | None, match: bool
) -> None:
    assert digests_match(expected, reported) is match
