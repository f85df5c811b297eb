"""Tests of the envelope format: framing, chunked AES-256-GCM, Fernet mode, purity."""

import ast
import itertools
import struct
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from hypothesis import given, settings
from hypothesis import strategies as st

import workers.core
from workers.core.envelope import (
    FERNET_MAX_BYTES,
    MAX_CHUNK_SIZE,
    MAX_HEADER_BYTES,
    TAG_BYTES,
    Algorithm,
    FramingError,
    Header,
    StreamDecryptor,
    StreamEncryptor,
    associated_data,
    ciphertext_size,
    fernet_decrypt,
    fernet_encrypt,
    new_data_key,
    open_stream,
)
from workers.errors import IntegrityError, Permanent

KEY = bytes(range(32))
OTHER_KEY = bytes(range(1, 33))
PREFIX = bytes.fromhex("a0a1a2a3a4a5a6")
AAD = associated_data("bucket/object.bin", 3)
CHUNK = 64
IV = bytes(range(16))
NOW = 1_700_000_000


def stream_header(chunk_size: int = CHUNK, key_id: str = "local:movingdata:v1") -> Header:
    return Header(Algorithm.AES256GCM_CHUNKED, key_id, b"wrapped-dek", chunk_size, PREFIX)


def fernet_header(key_id: str = "local:movingdata:v1") -> Header:
    return Header(Algorithm.FERNET, key_id, b"wrapped-dek", chunk_size=0)


def pieces(data: bytes, cuts: Sequence[int]) -> list[bytes]:
    """Split `data` at the given offsets (taken modulo its length + 1)."""
    bounds = sorted({0, len(data), *(c % (len(data) + 1) for c in cuts)})
    return [data[a:b] for a, b in itertools.pairwise(bounds)]


def encrypt(
    plaintext: bytes, header: Header | None = None, aad: bytes = AAD, cuts: Sequence[int] = ()
) -> bytes:
    enc = StreamEncryptor(KEY, header or stream_header(), aad)
    return b"".join(enc.update(p) for p in pieces(plaintext, cuts)) + enc.finalize()


def decrypt(blob: bytes, key: bytes = KEY, aad: bytes = AAD, cuts: Sequence[int] = ()) -> bytes:
    """Read an envelope the way a store reader does: header first, then the body in pieces."""
    parsed = Header.parse(blob)
    if parsed is None:
        raise FramingError("object ends inside its header")
    header, offset = parsed
    dec = open_stream(key, header, aad)
    out = b"".join(dec.update(p) for p in pieces(blob[offset:], cuts))
    return out + dec.finalize()


# --- header -------------------------------------------------------------------------------------


def test_header_wire_format_is_frozen() -> None:
    assert stream_header().encode().hex() == (
        "4d444531"  # magic "MDE1"
        "0036"  # header length: 54
        "01"  # format version
        "01"  # algorithm: AES256GCM_CHUNKED
        "00000040"  # chunk size: 64
        "07a0a1a2a3a4a5a6"  # nonce prefix
        "0013" + b"local:movingdata:v1".hex() + "000b" + b"wrapped-dek".hex()
    )


def test_header_parse_is_incremental() -> None:
    header = stream_header()
    wire = header.encode()
    for n in range(len(wire)):
        assert Header.parse(wire[:n]) is None
    assert Header.parse(wire) == (header, len(wire))
    assert Header.parse(wire + b"body bytes") == (header, len(wire))


headers = st.builds(
    Header,
    algorithm=st.just(Algorithm.AES256GCM_CHUNKED),
    key_id=st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E), min_size=1, max_size=80),
    wrapped_key=st.binary(min_size=1, max_size=600),
    chunk_size=st.integers(1, MAX_CHUNK_SIZE),
    nonce_prefix=st.binary(min_size=7, max_size=7),
) | st.builds(
    Header,
    algorithm=st.just(Algorithm.FERNET),
    key_id=st.just("openbao:movingdata:v12"),
    wrapped_key=st.binary(min_size=1, max_size=600),
    chunk_size=st.just(0),
)


@given(headers)
def test_header_round_trips(header: Header) -> None:
    wire = header.encode()
    assert Header.parse(wire) == (header, len(wire))


def parse_or_framing_error(buf: bytes) -> None:
    try:
        parsed = Header.parse(buf)
    except FramingError:
        return
    if parsed is not None:
        header, length = parsed
        assert buf[:length] == header.encode()  # anything accepted is canonical


@given(st.binary(max_size=200))
def test_arbitrary_bytes_only_frame_error_or_need_more(buf: bytes) -> None:
    parse_or_framing_error(buf)
    parse_or_framing_error(b"MDE1" + buf)


@given(headers, st.lists(st.tuples(st.integers(0, 10_000), st.integers(0, 255)), max_size=4))
def test_mutated_headers_only_frame_error_or_need_more(
    header: Header, edits: list[tuple[int, int]]
) -> None:
    wire = bytearray(header.encode())
    for pos, value in edits:
        wire[pos % len(wire)] = value
    parse_or_framing_error(bytes(wire))


def raw_header(
    *,
    magic: bytes = b"MDE1",
    length: int | None = None,
    version: int = 1,
    algorithm: int = 1,
    chunk_size: int = 64,
    nonce: bytes = PREFIX,
    key_id: bytes = b"k:v1",
    wrapped: bytes = b"w",
) -> bytes:
    """Build header bytes field by field, so tests can get any field wrong."""
    fields = (
        bytes([len(nonce)]) + nonce
        + struct.pack(">H", len(key_id)) + key_id
        + struct.pack(">H", len(wrapped)) + wrapped
    )  # fmt: skip
    total = 12 + len(fields) if length is None else length
    return struct.pack(">4sHBBI", magic, total, version, algorithm, chunk_size) + fields


def test_raw_header_matches_encode() -> None:
    assert Header.parse(raw_header()) is not None


MALFORMED_HEADERS = {
    "bad magic, first byte": (b"X", "bad magic"),
    "bad magic, third byte": (b"MDX", "bad magic"),
    "other magic": (raw_header(magic=b"MDE2"), "bad magic"),
    "future version": (raw_header(version=2), "version 2"),
    "algorithm 0": (raw_header(algorithm=0), "algorithm 0"),
    "algorithm 3": (raw_header(algorithm=3), "algorithm 3"),
    "length below minimum": (raw_header(length=16), "header length 16"),
    "length over 4 KiB": (raw_header(length=MAX_HEADER_BYTES + 1), "header length"),
    "length past fields": (raw_header(length=len(raw_header()) + 1), "fields do not add up"),
    "field past length": (raw_header(length=len(raw_header()) - 1), "runs past"),
    "short nonce prefix": (raw_header(nonce=b"123456"), "nonce prefix"),
    "chunk size 0": (raw_header(chunk_size=0), "chunk size 0"),
    "chunk size too big": (raw_header(chunk_size=MAX_CHUNK_SIZE + 1), "chunk size"),
    "Fernet with chunks": (raw_header(algorithm=2), "Fernet header"),
    "empty key id": (raw_header(key_id=b""), "key id"),
    "space in key id": (raw_header(key_id=b"k v1"), "key id"),
    "control char in key id": (raw_header(key_id=b"k\nv1"), "key id"),
    "non-ASCII key id": (raw_header(key_id="clé".encode()), "key id"),
}


@pytest.mark.parametrize(
    ("wire", "message"), list(MALFORMED_HEADERS.values()), ids=list(MALFORMED_HEADERS)
)
def test_malformed_headers_raise_framing_error(wire: bytes, message: str) -> None:
    with pytest.raises(FramingError, match=message):
        Header.parse(wire + b"trailing body")


def test_short_bytes_with_good_magic_need_more() -> None:
    for wire in (b"", b"M", b"MDE1", b"MDE1\x00"):
        assert Header.parse(wire) is None


def test_header_over_4_kib_is_refused() -> None:
    with pytest.raises(FramingError, match="over 4096"):
        Header(Algorithm.AES256GCM_CHUNKED, "k:v1", b"w" * MAX_HEADER_BYTES, 64, PREFIX)


# --- chunked stream -----------------------------------------------------------------------------


@pytest.mark.parametrize("size", [0, 1, CHUNK - 1, CHUNK, CHUNK + 1, 3 * CHUNK + 17])
def test_round_trip_at_chunk_boundaries(size: int) -> None:
    plaintext = bytes(i % 251 for i in range(size))
    blob = encrypt(plaintext)
    assert len(blob) == ciphertext_size(size, CHUNK, len(stream_header().encode()))
    assert decrypt(blob) == plaintext


@settings(max_examples=200, deadline=None)
@given(
    st.binary(max_size=700),
    st.integers(1, 100),
    st.lists(st.integers(0, 1000), max_size=12),
    st.lists(st.integers(0, 1000), max_size=12),
)
def test_round_trip_with_any_update_splits(
    plaintext: bytes, chunk_size: int, enc_cuts: list[int], dec_cuts: list[int]
) -> None:
    blob = encrypt(plaintext, stream_header(chunk_size), cuts=enc_cuts)
    assert decrypt(blob, cuts=dec_cuts) == plaintext


def test_known_answer_vector() -> None:
    # Frozen output for fixed key and nonce prefix: any change to the format must show up here.
    blob = encrypt(b"MovingData envelope test vector", stream_header(chunk_size=16))
    expected = (
        # header: magic, length 54, version 1, algorithm 1, chunk size 16, prefix, key id, DEK
        "4d4445310036010100000010"
        "07a0a1a2a3a4a5a6"
        "00136c6f63616c3a6d6f76696e67646174613a7631"
        "000b777261707065642d64656b"
        # chunk 0: 16 bytes + tag
        "47be6ac0f833015c1842e4e5f776330789d39e8173c871c9d919167c5395abe3"
        # chunk 1 (last): 15 bytes + tag
        "8676a5c9744fe84b942984d42b13db6df128c4a0eae9a6da8d00053ac0ab99"
    )
    assert blob.hex() == expected


def test_chunks_follow_the_documented_nonce_and_aad() -> None:
    # Rebuild the body with bare AES-GCM from the format description in the module docstring.
    header = stream_header(chunk_size=16)
    plaintext = b"MovingData envelope test vector"  # 31 bytes: a full chunk and a 15-byte last one
    aead, aad = AESGCM(KEY), header.encode() + AAD
    expected = (
        header.encode()
        + aead.encrypt(PREFIX + b"\x00\x00\x00\x00\x00", plaintext[:16], aad)
        + aead.encrypt(PREFIX + b"\x00\x00\x00\x01\x01", plaintext[16:], aad)
    )
    assert encrypt(plaintext, header) == expected


def test_empty_plaintext_is_one_authenticated_final_chunk() -> None:
    blob = encrypt(b"")
    header_len = len(stream_header().encode())
    assert len(blob) == header_len + TAG_BYTES
    assert decrypt(blob) == b""
    with pytest.raises(IntegrityError):
        decrypt(blob[:header_len])


def test_every_single_byte_change_is_detected() -> None:
    blob = encrypt(bytes(range(3 * 16 + 5)), stream_header(chunk_size=16))
    header_len = len(stream_header().encode())
    for pos in range(len(blob)):
        for flip in (0x01, 0x80):
            tampered = bytearray(blob)
            tampered[pos] ^= flip
            expected = (FramingError, IntegrityError) if pos < header_len else IntegrityError
            with pytest.raises(expected):
                decrypt(bytes(tampered))


def test_every_truncation_is_detected() -> None:
    blob = encrypt(bytes(200))  # 4 chunks: 3 full, 8 bytes in the last
    header_len = len(stream_header().encode())
    for end in range(header_len, len(blob)):
        with pytest.raises(IntegrityError):
            decrypt(blob[:end])


def test_dropping_the_last_full_chunk_is_detected() -> None:
    blob = encrypt(bytes(2 * CHUNK))  # both chunks full: a cut at the boundary looks plausible
    with pytest.raises(IntegrityError, match="chunk 0 failed authentication"):
        decrypt(blob[: -(CHUNK + TAG_BYTES)])


def split_chunks(blob: bytes) -> tuple[bytes, list[bytes]]:
    header, offset = Header.parse(blob) or pytest.fail("no header")
    size = header.chunk_size + TAG_BYTES
    return blob[:offset], [blob[i : i + size] for i in range(offset, len(blob), size)]


@pytest.mark.parametrize(
    "rearrange",
    [
        lambda c: [c[1], c[0], *c[2:]],  # reordered
        lambda c: [c[0], *c[2:]],  # middle chunk dropped
        lambda c: [c[0], c[0], *c[1:]],  # chunk replayed
        lambda c: [*c, c[-1]],  # last chunk appended twice
        lambda c: [*c[:-1]],  # last chunk dropped
    ],
)
def test_rearranged_chunks_are_detected(rearrange: Callable[[list[bytes]], list[bytes]]) -> None:
    header, chunks = split_chunks(encrypt(bytes(3 * CHUNK + 17)))
    with pytest.raises(IntegrityError):
        decrypt(header + b"".join(rearrange(chunks)))


@pytest.mark.parametrize("extra", [b"\x00", bytes(TAG_BYTES), bytes(CHUNK + TAG_BYTES + 5)])
@pytest.mark.parametrize("size", [0, CHUNK, CHUNK + 3])
def test_trailing_bytes_are_detected(extra: bytes, size: int) -> None:
    with pytest.raises(IntegrityError):
        decrypt(encrypt(bytes(size)) + extra)


@pytest.mark.parametrize(
    "aad", [associated_data("bucket/object.bin", 4), associated_data("bucket/other.bin", 3)]
)
def test_swapped_object_id_or_version_is_detected(aad: bytes) -> None:
    with pytest.raises(IntegrityError):
        decrypt(encrypt(b"payload"), aad=aad)


def test_associated_data_is_unambiguous() -> None:
    assert associated_data("a", 0x0100) != associated_data("a\x00", 1)
    assert associated_data("ab", 1) != associated_data("a", 1)


def test_swapped_header_is_detected() -> None:
    _, chunks = split_chunks(encrypt(b"payload"))
    other = stream_header(key_id="local:movingdata:v2").encode()
    with pytest.raises(IntegrityError):
        decrypt(other + b"".join(chunks))


def test_wrong_key_is_detected_without_echoing_it() -> None:
    with pytest.raises(IntegrityError, match="chunk 0 failed authentication") as caught:
        decrypt(encrypt(b"payload"), key=OTHER_KEY)
    message = str(caught.value)
    assert KEY.hex() not in message and OTHER_KEY.hex() not in message


def test_encryptor_holds_at_most_one_chunk() -> None:
    enc = StreamEncryptor(KEY, stream_header(), AAD)
    header_len = len(enc.header_bytes)
    emitted = 0
    for fed in range(1, 5 * CHUNK + 1):
        out = enc.update(b"x")
        # Each output is the header and/or whole sealed chunks, never a partial one.
        assert (len(out) - (header_len if fed == 1 else 0)) in (0, CHUNK + TAG_BYTES)
        emitted += len(out)
        sealed_chunks = (emitted - header_len) // (CHUNK + TAG_BYTES)
        assert 1 <= fed - sealed_chunks * CHUNK <= CHUNK
    # One big update seals every chunk but the one that might be last.
    enc = StreamEncryptor(KEY, stream_header(), AAD)
    assert len(enc.update(bytes(10 * CHUNK))) == header_len + 9 * (CHUNK + TAG_BYTES)


def test_decryptor_holds_back_only_the_possibly_last_chunk() -> None:
    blob = encrypt(bytes(4 * CHUNK))
    header, offset = Header.parse(blob) or pytest.fail("no header")
    dec = StreamDecryptor(KEY, header, AAD)
    released = 0
    for fed in range(1, len(blob) - offset + 1):
        released += len(dec.update(blob[offset + fed - 1 : offset + fed]))
        held = fed - released // CHUNK * (CHUNK + TAG_BYTES)
        assert 0 < held <= CHUNK + TAG_BYTES
    assert released == 3 * CHUNK  # the fourth chunk is only trusted at finalize
    assert len(dec.finalize()) == CHUNK


def test_finalized_streams_refuse_more_input() -> None:
    enc = StreamEncryptor(KEY, stream_header(), AAD)
    blob = enc.finalize()
    with pytest.raises(ValueError, match="finalized"):
        enc.update(b"more")
    header, offset = Header.parse(blob) or pytest.fail("no header")
    dec = StreamDecryptor(KEY, header, AAD)
    dec.update(blob[offset:])
    dec.finalize()
    with pytest.raises(ValueError, match="finalized"):
        dec.update(b"")


def test_chunk_counter_overflow_is_refused() -> None:
    enc = StreamEncryptor(KEY, stream_header(chunk_size=1), AAD)
    enc._counter = 2**32 - 1  # reaching it honestly takes 2**32 chunks
    enc.update(b"a")
    enc.update(b"b")  # seals "a" with the last counter there is
    with pytest.raises(Permanent, match="2\\*\\*32 chunks"):
        enc.finalize()


def test_algorithm_mismatch_is_refused() -> None:
    with pytest.raises(FramingError, match="FERNET, not AES256GCM_CHUNKED"):
        StreamEncryptor(KEY, fernet_header(), AAD)
    with pytest.raises(FramingError, match="AES256GCM_CHUNKED, not FERNET"):
        fernet_encrypt(KEY, stream_header(), AAD, b"", iv=IV, now=NOW)


def test_new_data_key_uses_the_injected_rng() -> None:
    assert new_data_key(lambda n: bytes([7]) * n) == bytes([7]) * 32
    with pytest.raises(ValueError, match="wanted 32"):
        new_data_key(lambda n: bytes(n - 1))


def test_wrong_size_data_key_is_refused_without_echoing_it() -> None:
    with pytest.raises(ValueError, match="must be 32 bytes, got 16") as caught:
        StreamEncryptor(KEY[:16], stream_header(), AAD)
    assert KEY[:16].hex() not in str(caught.value)


@pytest.mark.parametrize("size", [0, 1, 63, 64, 65, 10_000])
@pytest.mark.parametrize("chunk_size", [1, 64, 1000])
def test_ciphertext_size_matches_the_encryptor(size: int, chunk_size: int) -> None:
    header = stream_header(chunk_size)
    blob = encrypt(bytes(size), header)
    assert ciphertext_size(size, chunk_size, len(header.encode())) == len(blob)


# --- Fernet mode --------------------------------------------------------------------------------


def fernet_blob(plaintext: bytes, header: Header | None = None, aad: bytes = AAD) -> bytes:
    return fernet_encrypt(KEY, header or fernet_header(), aad, plaintext, iv=IV, now=NOW)


@pytest.mark.parametrize("size", [0, 1, 1000, FERNET_MAX_BYTES])
def test_fernet_round_trip(size: int) -> None:
    plaintext = bytes(i % 253 for i in range(size))
    assert decrypt(fernet_blob(plaintext), cuts=[7, 100, 5000]) == plaintext


def test_fernet_known_answer_vector() -> None:
    # Deterministic because the IV and time are injected.
    expected = (
        # header: magic, length 47, version 1, algorithm 2, chunk size 0, no prefix, key id, DEK
        "4d444531002f010200000000"
        "00"
        "00136c6f63616c3a6d6f76696e67646174613a7631"
        "000b777261707065642d64656b"
        # raw Fernet token: version, timestamp (NOW), IV
        "80" "000000006553f100" "000102030405060708090a0b0c0d0e0f"
        # AES-128-CBC of sha256(header | aad) | plaintext
        "57fc6ef85a5bd0dfe1ac13f4307db5d1fe9447cf5d83343f"
        "02178300529a7c8b1177acfa94781c99634d1b1b61b88d2f"
        # HMAC-SHA256
        "08c31c2bf81da1af10c6e2dc3e4f72c8602c6591bc8e33a0ca71ae74a051edb7"
    )  # fmt: skip
    assert fernet_blob(b"small object").hex() == expected


def test_fernet_every_single_byte_change_is_detected() -> None:
    blob = fernet_blob(b"small object")
    header_len = len(fernet_header().encode())
    for pos in range(len(blob)):
        tampered = bytearray(blob)
        tampered[pos] ^= 0x01
        expected = (FramingError, IntegrityError) if pos < header_len else IntegrityError
        with pytest.raises(expected):
            decrypt(bytes(tampered))


def test_fernet_truncation_and_trailing_bytes_are_detected() -> None:
    blob = fernet_blob(b"small object")
    for bad in (blob[:-1], blob[:-32], blob + b"\x00"):
        with pytest.raises(IntegrityError):
            decrypt(bad)


def test_fernet_binds_object_identity_and_header() -> None:
    blob = fernet_blob(b"small object")
    with pytest.raises(IntegrityError, match="different header or object"):
        decrypt(blob, aad=associated_data("bucket/object.bin", 4))
    header_len = len(fernet_header().encode())
    moved = fernet_header("local:movingdata:v2").encode() + blob[header_len:]
    with pytest.raises(IntegrityError, match="different header or object"):
        decrypt(moved)


def test_fernet_wrong_key_is_detected() -> None:
    with pytest.raises(IntegrityError, match="failed authentication"):
        decrypt(fernet_blob(b"small object"), key=OTHER_KEY)


def test_fernet_refuses_oversize_objects() -> None:
    with pytest.raises(FramingError, match="use the chunked stream"):
        fernet_blob(bytes(FERNET_MAX_BYTES + 1))
    with pytest.raises(FramingError, match="limit"):
        fernet_decrypt(KEY, fernet_header(), AAD, bytes(400 * 1024))
    dec = open_stream(KEY, fernet_header(), AAD)
    with pytest.raises(FramingError, match="limit"):
        for _ in range(400):
            dec.update(bytes(1024))


# --- purity -------------------------------------------------------------------------------------

# Standard-library modules that reach the outside world, a clock or randomness.
# datetime's types are pure; reading its clock is not (``CLOCK_CALLS`` below).
IMPURE_STDLIB = {
    "asyncio", "http", "io", "logging", "os", "pathlib", "random", "secrets",
    "select", "selectors", "shutil", "signal", "socket", "ssl", "subprocess", "sys",
    "tempfile", "threading", "time", "urllib", "uuid",
}  # fmt: skip


def imported_modules(path: Path, package: str) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = package.rsplit(".", node.level - 1)[0] if node.level else ""
            found.add(".".join(filter(None, [base, node.module])))
    return found


def test_core_imports_only_pure_modules() -> None:
    core = Path(workers.core.__file__).parent
    modules = sorted(core.rglob("*.py"))
    assert modules, "no core modules found"
    for path in modules:
        for name in imported_modules(path, "workers.core"):
            top = name.split(".")[0]
            allowed = (
                name == "workers.errors"
                or name == "workers.core"
                or name.startswith("workers.core.")
                or top == "cryptography"
                or (top in sys.stdlib_module_names and top not in IMPURE_STDLIB)
            )
            assert allowed, f"{path.name} imports {name}: the core must stay pure"
        calls = {
            node.func.attr
            for node in ast.walk(ast.parse(path.read_text(), str(path)))
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
        }
        assert not calls & CLOCK_CALLS, f"{path.name} reads a clock: {calls & CLOCK_CALLS}"


CLOCK_CALLS = {"now", "utcnow", "today", "fromtimestamp", "time", "monotonic"}


def test_import_check_resolves_relative_imports(tmp_path: Path) -> None:
    module = tmp_path / "m.py"
    module.write_text("import os.path\nfrom . import envelope\nfrom ..errors import Permanent\n")
    assert imported_modules(module, "workers.core") == {"os.path", "workers.core", "workers.errors"}


def test_header_without_wrapped_key_refers_to_the_key_registry() -> None:
    header = Header(Algorithm.AES256GCM_CHUNKED, "dek:obj-1:v1", b"", 64, b"\x01" * 7)
    parsed = Header.parse(header.encode())
    assert parsed is not None and parsed[0] == header
