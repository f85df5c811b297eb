"""Tests of one-pass digests."""

import base64
import hashlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from workers.core.digests import MultiDigest, sha256_hex


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
