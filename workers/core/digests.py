"""Digests of a byte stream computed in one pass (like rclone's MultiHasher), with no I/O."""

import base64
import hashlib
from collections.abc import Sequence


def sha256_hex(data: bytes) -> str:
    """Return the hex SHA-256 of `data`."""
    return hashlib.sha256(data).hexdigest()


class MultiDigest:
    """Feed bytes once; read their SHA-256 (always), MD5 (if asked for) and size.

    MD5 is only for stores that want it (S3 Content-MD5, ETags); SHA-256 is what we record.
    """

    def __init__(self, *, md5: bool = False) -> None:
        self._sha256 = hashlib.sha256()
        # usedforsecurity=False: MD5 is a transfer checksum here, and FIPS builds allow that.
        self._md5 = hashlib.md5(usedforsecurity=False) if md5 else None
        self._size = 0

    def update(self, data: bytes) -> None:
        """Add `data` to every digest."""
        self._sha256.update(data)
        if self._md5 is not None:
            self._md5.update(data)
        self._size += len(data)

    @property
    def size(self) -> int:
        """Number of bytes fed so far."""
        return self._size

    @property
    def sha256_hex(self) -> str:
        """Hex SHA-256 of the bytes fed so far."""
        return self._sha256.hexdigest()

    @property
    def md5_hex(self) -> str:
        """Hex MD5 of the bytes fed so far (ValueError unless created with md5=True)."""
        return self._md5_digest().hex()

    @property
    def md5_b64(self) -> str:
        """Base64 MD5 of the bytes fed so far, as S3's Content-MD5 header wants it."""
        return base64.b64encode(self._md5_digest()).decode("ascii")

    def _md5_digest(self) -> bytes:
        if self._md5 is None:
            raise ValueError("MD5 was not requested: create MultiDigest(md5=True)")
        return self._md5.digest()


# Store digests: what a store computes from the bytes it received, in the form we compute the
# same value from the bytes we sent. Written "<algorithm>:<value>" so one string field carries
# it through events and the registry.
S3_SHA256 = "s3-sha256"  # S3 ChecksumSHA256: of the object, or composite of its parts ("-N")
AZURE_BLOCKS = "azure-blocks"  # the committed block list (each block's MD5 checked on Put Block)
AZURE_MD5 = "azure-md5"  # Content-MD5 of a blob put in one Put Blob (checked by the service)
GCS_MD5 = "gcs-md5"  # GCS md5Hash of the final object


def s3_checksum_sha256(part_digests: Sequence[bytes]) -> str:
    """The ChecksumSHA256 S3 reports for an object sent as these parts' raw SHA-256 digests.

    One PutObject: base64 of the object's SHA-256. Multipart: base64 of the SHA-256 of the
    concatenated part digests, then ``-<parts>`` (a checksum of checksums, not of the object).
    """
    if len(part_digests) == 1:
        return base64.b64encode(part_digests[0]).decode("ascii")
    composite = hashlib.sha256(b"".join(part_digests)).digest()
    return f"{base64.b64encode(composite).decode('ascii')}-{len(part_digests)}"


def block_list_digest(blocks: Sequence[tuple[str, int]]) -> str:
    """A digest of an Azure block list: (block id, size) pairs in commit order."""
    text = "\n".join(f"{block_id} {size}" for block_id, size in blocks)
    return hashlib.sha256(text.encode()).hexdigest()


def store_digest(algorithm: str, value: str) -> str:
    """``<algorithm>:<value>``, the form events carry."""
    return f"{algorithm}:{value}"


def digests_match(expected: str | None, reported: str | None) -> bool:
    """True only when both are known, of the same algorithm, and equal.

    A missing digest on either side never matches: the caller reads the replica back instead.
    """
    if not expected or not reported:
        return False
    algorithm, _, value = expected.partition(":")
    other, _, reported_value = reported.partition(":")
    return bool(value) and algorithm == other and value == reported_value
