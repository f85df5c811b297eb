"""Envelope encryption of object payloads: framing and streaming AEAD, with no I/O.

An encrypted object is a header followed by a body. The header names the key-encryption key
(KEK) and carries the data key (DEK) wrapped by it, so a reader parses the header, has the KMS
unwrap the DEK, then decrypts the body. Wire format, all integers big-endian::

    magic b"MDE1" | u16 header length (whole header, magic included) | u8 format version
    | u8 algorithm | u32 chunk size | u8 len + nonce prefix | u16 len + key id (printable ASCII)
    | u16 len + wrapped DEK

AES256GCM_CHUNKED body (the STREAM construction, as in Tink): the plaintext is cut into chunks
of `chunk_size` bytes, the last one holding 0..chunk_size bytes, each sealed with AES-256-GCM
(ciphertext + 16-byte tag) under

    nonce = nonce prefix (7 bytes) | u32 chunk counter | u8 last-chunk flag (0 or 1)
    AAD   = header bytes | associated_data(object id, version)

so chunks can't be reordered, dropped or appended, the stream can't be cut at a chunk
boundary, and neither the header nor the body can be moved to another object or version.

FERNET body (compatibility mode for small objects): the raw (base64-decoded) Fernet token of
``sha256(header bytes | associated data) | plaintext`` under the DEK.

Everything here is pure: randomness, time and key material are passed in by the caller.
"""

import base64
import hashlib
import hmac
import struct
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from enum import IntEnum
from typing import Protocol, Self

from cryptography.exceptions import InvalidTag
from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from workers.errors import IntegrityError, Permanent

MAGIC = b"MDE1"
FORMAT_VERSION = 1
MAX_HEADER_BYTES = 4 * 1024
DATA_KEY_BYTES = 32
NONCE_PREFIX_BYTES = 7
TAG_BYTES = 16
DEFAULT_CHUNK_SIZE = 1024 * 1024
# A reader holds one encrypted chunk in memory, so a header must not be able to ask for more.
MAX_CHUNK_SIZE = 16 * 1024 * 1024
FERNET_MAX_BYTES = 256 * 1024

_FIXED = struct.Struct(">4sHBBI")  # magic, header length, version, algorithm, chunk size
_U8 = struct.Struct(">B")
_U16 = struct.Struct(">H")
_U32 = struct.Struct(">I")
_U64 = struct.Struct(">Q")
_NONCE_TAIL = struct.Struct(">IB")  # chunk counter, last-chunk flag
_MAX_COUNTER = 2**32 - 1
_MIN_HEADER_BYTES = _FIXED.size + _U8.size + 2 * _U16.size
_FERNET_DIGEST_BYTES = 32
# Raw Fernet token: version (1) | timestamp (8) | IV (16) | PKCS7-padded CBC ciphertext | HMAC (32).
_FERNET_MAX_TOKEN = 1 + 8 + 16 + ((_FERNET_DIGEST_BYTES + FERNET_MAX_BYTES) // 16 + 1) * 16 + 32


class FramingError(Permanent):
    """An envelope header or body is malformed (as opposed to failing authentication)."""


class Algorithm(IntEnum):
    """How the body after the header is encrypted."""

    AES256GCM_CHUNKED = 1
    FERNET = 2


@dataclass(frozen=True, slots=True)
class Header:
    """The envelope header; constructing an invalid one raises FramingError."""

    algorithm: Algorithm
    key_id: str  # the KEK id with its version, or a key-registry reference ("dek:ID:v1")
    wrapped_key: bytes  # empty when the wrapped key lives only in the key registry
    chunk_size: int = DEFAULT_CHUNK_SIZE  # plaintext bytes per chunk; 0 for Fernet
    nonce_prefix: bytes = b""  # NONCE_PREFIX_BYTES random bytes; empty for Fernet

    def __post_init__(self) -> None:
        if not self.key_id or not all("!" <= c <= "~" for c in self.key_id):
            raise FramingError("key id must be non-empty printable ASCII without spaces")
        if self.algorithm == Algorithm.FERNET:
            if self.chunk_size != 0 or self.nonce_prefix:
                raise FramingError("a Fernet header has chunk size 0 and no nonce prefix")
        elif len(self.nonce_prefix) != NONCE_PREFIX_BYTES:
            raise FramingError(f"nonce prefix must be {NONCE_PREFIX_BYTES} bytes")
        elif not 1 <= self.chunk_size <= MAX_CHUNK_SIZE:
            raise FramingError(f"chunk size {self.chunk_size} is not in 1..{MAX_CHUNK_SIZE}")
        size = _MIN_HEADER_BYTES + len(self.nonce_prefix) + len(self.key_id) + len(self.wrapped_key)
        if size > MAX_HEADER_BYTES:
            raise FramingError(f"header would be {size} bytes, over {MAX_HEADER_BYTES}")

    def encode(self) -> bytes:
        """Return the header's wire bytes (the encoding is canonical: parse(encode(h)) == h)."""
        key_id = self.key_id.encode("ascii")
        fields = b"".join(
            width.pack(len(value)) + value
            for width, value in ((_U8, self.nonce_prefix), (_U16, key_id), (_U16, self.wrapped_key))
        )
        length = _FIXED.size + len(fields)
        return _FIXED.pack(MAGIC, length, FORMAT_VERSION, self.algorithm, self.chunk_size) + fields

    @classmethod
    def parse(cls, buf: bytes) -> tuple[Self, int] | None:
        """Parse a header from the start of `buf`.

        Returns the header and its length in bytes, or None if `buf` does not hold the whole
        header yet. Raises FramingError as soon as the bytes seen can't start a valid header.
        """
        if bytes(buf[: len(MAGIC)]) != MAGIC[: len(buf)]:
            raise FramingError("not a MovingData envelope (bad magic)")
        if len(buf) < len(MAGIC) + _U16.size:
            return None
        (length,) = _U16.unpack_from(buf, len(MAGIC))
        if not _MIN_HEADER_BYTES <= length <= MAX_HEADER_BYTES:
            raise FramingError(
                f"header length {length} is not in {_MIN_HEADER_BYTES}..{MAX_HEADER_BYTES}"
            )
        if len(buf) < length:
            return None
        raw = bytes(buf[:length])
        _, _, version, algorithm_code, chunk_size = _FIXED.unpack_from(raw)
        if version != FORMAT_VERSION:
            raise FramingError(f"unknown envelope format version {version}")
        try:
            algorithm = Algorithm(algorithm_code)
        except ValueError:
            raise FramingError(f"unknown envelope algorithm {algorithm_code}") from None
        nonce_prefix, pos = _length_prefixed(raw, _FIXED.size, _U8)
        key_id, pos = _length_prefixed(raw, pos, _U16)
        wrapped_key, pos = _length_prefixed(raw, pos, _U16)
        if pos != length:
            raise FramingError("header fields do not add up to the header length")
        try:
            key_id_text = key_id.decode("ascii")
        except UnicodeDecodeError:
            raise FramingError("key id is not ASCII") from None
        return cls(algorithm, key_id_text, wrapped_key, chunk_size, nonce_prefix), length


def _length_prefixed(raw: bytes, pos: int, width: struct.Struct) -> tuple[bytes, int]:
    """Read one length-prefixed header field at `pos`; return it and the position after it."""
    start = pos + width.size
    if start > len(raw):
        raise FramingError("header field runs past the header length")
    (size,) = width.unpack_from(raw, pos)
    if start + size > len(raw):
        raise FramingError("header field runs past the header length")
    return raw[start : start + size], start + size


def new_data_key(rng: Callable[[int], bytes]) -> bytes:
    """Draw a fresh DATA_KEY_BYTES data key from `rng` (e.g. os.urandom, passed in)."""
    key = rng(DATA_KEY_BYTES)
    if len(key) != DATA_KEY_BYTES:
        raise ValueError(f"rng returned {len(key)} bytes, wanted {DATA_KEY_BYTES}")
    return key


def associated_data(object_id: str, version: int) -> bytes:
    """Encode an object's identity as AEAD associated data (u32 length | UTF-8 id | u64 version)."""
    oid = object_id.encode("utf-8")
    return _U32.pack(len(oid)) + oid + _U64.pack(version)


def ciphertext_size(plaintext_size: int, chunk_size: int, header_len: int) -> int:
    """Size of a chunked envelope: header plus plaintext plus one tag per chunk (at least one)."""
    chunks = max(1, -(-plaintext_size // chunk_size))
    return header_len + plaintext_size + chunks * TAG_BYTES


def _checked_key(data_key: bytes) -> bytes:
    if len(data_key) != DATA_KEY_BYTES:
        raise ValueError(f"data key must be {DATA_KEY_BYTES} bytes, got {len(data_key)}")
    return data_key


def _require(header: Header, algorithm: Algorithm) -> None:
    if header.algorithm != algorithm:
        raise FramingError(f"header algorithm is {header.algorithm.name}, not {algorithm.name}")


def _chunk_nonce(prefix: bytes, counter: int, last: bool) -> bytes:
    if counter > _MAX_COUNTER:
        raise Permanent("stream is longer than 2**32 chunks")
    return prefix + _NONCE_TAIL.pack(counter, last)


def _full_chunks(buffer: bytearray, data: bytes, size: int) -> Iterator[bytearray]:
    """Move `data` into `buffer`, yielding it whenever it holds a chunk known not to be last.

    A full chunk is handed out only once a byte beyond it has arrived, because until then it
    may be the stream's last chunk. So `buffer` never holds more than `size` bytes, whatever
    the size of `data`. Each yielded buffer is cleared when the caller asks for the next one.
    """
    view = memoryview(data)
    while len(buffer) + len(view) > size:
        take = size - len(buffer)
        buffer += view[:take]
        view = view[take:]
        yield buffer
        buffer.clear()
    buffer += view


class StreamEncryptor:
    """Encrypt one object as a chunked AES-256-GCM envelope, holding at most one chunk.

    The concatenation of everything `update` and `finalize` return is the whole envelope,
    header first.
    """

    def __init__(self, data_key: bytes, header: Header, aad: bytes) -> None:
        _require(header, Algorithm.AES256GCM_CHUNKED)
        self._aead = AESGCM(_checked_key(data_key))
        self._header = header
        self._header_bytes = header.encode()
        self._chunk_aad = self._header_bytes + aad
        self._buffer = bytearray()
        self._counter = 0
        self._header_sent = False
        self._finished = False

    @property
    def header_bytes(self) -> bytes:
        """The header's wire bytes (already part of the first output; do not write them twice)."""
        return self._header_bytes

    def update(self, data: bytes) -> bytes:
        """Take more plaintext; return the envelope bytes that are now final (maybe none)."""
        if self._finished:
            raise ValueError("encryptor already finalized")
        chunks = _full_chunks(self._buffer, data, self._header.chunk_size)
        return self._take_header() + b"".join(self._seal(c, last=False) for c in chunks)

    def finalize(self) -> bytes:
        """Seal the buffered plaintext as the last chunk (possibly empty) and return the rest."""
        if self._finished:
            raise ValueError("encryptor already finalized")
        self._finished = True
        return self._take_header() + self._seal(self._buffer, last=True)

    def _take_header(self) -> bytes:
        if self._header_sent:
            return b""
        self._header_sent = True
        return self._header_bytes

    def _seal(self, chunk: bytearray, *, last: bool) -> bytes:
        nonce = _chunk_nonce(self._header.nonce_prefix, self._counter, last)
        self._counter += 1
        return self._aead.encrypt(nonce, chunk, self._chunk_aad)


class StreamDecryptor:
    """Decrypt the body (the bytes after the header) of a chunked envelope.

    Returns only plaintext that has been authenticated and proven not to be the end of the
    stream; `finalize` authenticates the last chunk, so a caller must not act on the object
    until `finalize` has returned.
    """

    def __init__(self, data_key: bytes, header: Header, aad: bytes) -> None:
        _require(header, Algorithm.AES256GCM_CHUNKED)
        self._aead = AESGCM(_checked_key(data_key))
        self._header = header
        self._chunk_aad = header.encode() + aad
        self._sealed_chunk_size = header.chunk_size + TAG_BYTES
        self._buffer = bytearray()
        self._counter = 0
        self._finished = False

    def update(self, ciphertext: bytes) -> bytes:
        """Take more body bytes; return the plaintext of every chunk now known not to be last."""
        if self._finished:
            raise ValueError("decryptor already finalized")
        chunks = _full_chunks(self._buffer, ciphertext, self._sealed_chunk_size)
        return b"".join(self._open(c, last=False) for c in chunks)

    def finalize(self) -> bytes:
        """Authenticate the held-back chunk as the last one and return its plaintext."""
        if self._finished:
            raise ValueError("decryptor already finalized")
        self._finished = True
        if len(self._buffer) < TAG_BYTES:
            raise IntegrityError(f"envelope is truncated: chunk {self._counter} is incomplete")
        return self._open(self._buffer, last=True)

    def _open(self, chunk: bytearray, *, last: bool) -> bytes:
        nonce = _chunk_nonce(self._header.nonce_prefix, self._counter, last)
        try:
            plaintext = self._aead.decrypt(nonce, chunk, self._chunk_aad)
        except InvalidTag:
            raise IntegrityError(
                f"chunk {self._counter} failed authentication: wrong key, wrong object id or "
                "version, or a tampered, truncated, reordered or extended envelope"
            ) from None
        self._counter += 1
        return plaintext


def _fernet(data_key: bytes) -> Fernet:
    # Fernet splits the 32 bytes into a 16-byte HMAC key and a 16-byte AES-128 key.
    return Fernet(base64.urlsafe_b64encode(_checked_key(data_key)))


def _bound_digest(header: Header, aad: bytes) -> bytes:
    return hashlib.sha256(header.encode() + aad).digest()


def fernet_encrypt(
    data_key: bytes, header: Header, aad: bytes, plaintext: bytes, *, iv: bytes, now: int
) -> bytes:
    """Encrypt a small object in Fernet mode; return the whole envelope (header first).

    `iv` must be 16 fresh random bytes and `now` the current Unix time: both are passed in so
    the core reads no clock or randomness (and tests are deterministic).
    """
    _require(header, Algorithm.FERNET)
    if len(plaintext) > FERNET_MAX_BYTES:
        raise FramingError(
            f"Fernet mode holds at most {FERNET_MAX_BYTES} bytes, got {len(plaintext)}: "
            "use the chunked stream"
        )
    # _encrypt_from_parts is Fernet's only entry point taking the IV and time from the caller.
    token = _fernet(data_key)._encrypt_from_parts(_bound_digest(header, aad) + plaintext, now, iv)
    # Stored raw: a quarter smaller, and base64's ignored padding bits can't be flipped unnoticed.
    return header.encode() + base64.urlsafe_b64decode(token)


def fernet_decrypt(data_key: bytes, header: Header, aad: bytes, token: bytes) -> bytes:
    """Decrypt a Fernet-mode body (the bytes after the header) and check its header binding."""
    _require(header, Algorithm.FERNET)
    if len(token) > _FERNET_MAX_TOKEN:
        raise FramingError(f"Fernet body is {len(token)} bytes, over the {_FERNET_MAX_TOKEN} limit")
    try:
        # No ttl: Fernet then ignores the token's timestamp and reads no clock.
        payload = _fernet(data_key).decrypt(base64.urlsafe_b64encode(token))
    except InvalidToken:
        raise IntegrityError(
            "Fernet body failed authentication: wrong key or a tampered or truncated envelope"
        ) from None
    digest, plaintext = payload[:_FERNET_DIGEST_BYTES], payload[_FERNET_DIGEST_BYTES:]
    if not hmac.compare_digest(digest, _bound_digest(header, aad)):
        raise IntegrityError("Fernet body belongs to a different header or object id/version")
    return plaintext


class Decryptor(Protocol):
    """What `open_stream` returns: feed the body with `update`, then call `finalize`."""

    def update(self, ciphertext: bytes) -> bytes: ...

    def finalize(self) -> bytes: ...


class _FernetDecryptor:
    """Buffers a (bounded) Fernet body and decrypts it on finalize."""

    def __init__(self, data_key: bytes, header: Header, aad: bytes) -> None:
        _require(header, Algorithm.FERNET)
        self._args = (data_key, header, aad)
        self._token = bytearray()

    def update(self, ciphertext: bytes) -> bytes:
        if len(self._token) + len(ciphertext) > _FERNET_MAX_TOKEN:
            raise FramingError(f"Fernet body is over the {_FERNET_MAX_TOKEN} byte limit")
        self._token += ciphertext
        return b""

    def finalize(self) -> bytes:
        return fernet_decrypt(*self._args, bytes(self._token))


def open_stream(data_key: bytes, header: Header, aad: bytes) -> Decryptor:
    """Return a decryptor for the body that follows `header`, whichever its algorithm.

    A reader buffers the object's first bytes until `Header.parse` returns a header (raising
    FramingError if the object ends first), unwraps the data key named by `header.key_id` and
    `header.wrapped_key`, then feeds everything after the header to the returned decryptor.
    """
    if header.algorithm == Algorithm.FERNET:
        return _FernetDecryptor(data_key, header, aad)
    return StreamDecryptor(data_key, header, aad)
