"""Digests of a byte stream computed in one pass (like rclone's MultiHasher), with no I/O."""

import base64
import hashlib


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
