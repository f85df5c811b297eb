"""A local key-encryption-key (KEK) provider for development and tests.

It keeps versioned 256-bit KEKs in one JSON file (mode 600) and wraps data keys with
AES-256-GCM, the key id as associated data so a wrapped key can't be passed off as wrapped by
another version. Key ids look like ``local:movingdata:v3``. The file is re-read on every call,
so a rotation by one process is seen by the others; concurrent rotations from several
processes are not coordinated (a development keyring doesn't need that). Production uses the
OpenBao transit engine behind the same methods.
"""

import base64
import json
import os
import re
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Self

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from workers.errors import Fatal, IntegrityError, NotFound, Permanent

_PROVIDER = "local"
_KEK_BYTES = 32
_NONCE_BYTES = 12
_TAG_BYTES = 16
_NAME = re.compile(r"[A-Za-z0-9_.-]+")


@dataclass
class _State:
    """The keyring file's contents."""

    current: int
    keks: dict[int, bytes] = field(repr=False)
    disabled: set[int]

    def to_json(self) -> dict[str, object]:
        return {
            "current": self.current,
            "keks": {str(v): base64.b64encode(k).decode("ascii") for v, k in self.keks.items()},
            "disabled": sorted(self.disabled),
        }

    @classmethod
    def from_json(cls, doc: Any) -> Self:
        """Parse the file's JSON; ValueError, KeyError or TypeError if it is not a keyring."""
        keks = {int(v): base64.b64decode(k, validate=True) for v, k in doc["keks"].items()}
        state = cls(int(doc["current"]), keks, {int(v) for v in doc["disabled"]})
        if state.current not in keks or any(len(k) != _KEK_BYTES for k in keks.values()):
            raise ValueError("keyring has no current KEK or a KEK of the wrong size")
        return state


class LocalKeyring:
    """Versioned KEKs in a local file: wrap, unwrap, rotate, disable and rewrap data keys.

    The methods are async to match the OpenBao provider; the file is tiny, so they do their
    blocking file I/O inline.
    """

    def __init__(self, path: Path, name: str = "movingdata") -> None:
        if not _NAME.fullmatch(name):
            raise ValueError(f"keyring name {name!r} must match {_NAME.pattern}")
        self._path = path
        self._name = name
        self._key_id_prefix = f"{_PROVIDER}:{name}:v"

    def __repr__(self) -> str:
        # Holds no key bytes, but say so explicitly: this object ends up in logs and tracebacks.
        return f"LocalKeyring(path={str(self._path)!r}, name={self._name!r})"

    async def wrap(self, data_key: bytes) -> tuple[str, bytes]:
        """Wrap `data_key` with the current KEK; return (key id, nonce | ciphertext | tag)."""
        state = self._load()
        key_id = self._key_id(state.current)
        nonce = os.urandom(_NONCE_BYTES)
        sealed = AESGCM(state.keks[state.current]).encrypt(nonce, data_key, key_id.encode())
        return key_id, nonce + sealed

    async def unwrap(self, key_id: str, wrapped: bytes) -> bytes:
        """Return the data key wrapped under `key_id`.

        NotFound for a key id this keyring doesn't hold, Permanent for a disabled version,
        IntegrityError if `wrapped` was not made by `wrap` under that key id.
        """
        state = self._load()
        version = self._version(key_id, state)
        if version in state.disabled:
            raise Permanent(f"KEK {key_id} is disabled")
        if len(wrapped) < _NONCE_BYTES + _TAG_BYTES:
            raise IntegrityError(f"wrapped key for {key_id} is too short")
        nonce, sealed = wrapped[:_NONCE_BYTES], wrapped[_NONCE_BYTES:]
        try:
            return AESGCM(state.keks[version]).decrypt(nonce, sealed, key_id.encode())
        except InvalidTag:
            raise IntegrityError(f"wrapped key does not authenticate under {key_id}") from None

    async def rotate(self) -> str:
        """Add a new KEK version and make it current; return its key id."""
        state = self._load()
        state.current = max(state.keks) + 1
        state.keks[state.current] = os.urandom(_KEK_BYTES)
        self._save(state)
        return self._key_id(state.current)

    async def disable(self, version: int) -> None:
        """Refuse further unwraps with KEK `version` (rotate first if it is the current one)."""
        state = self._load()
        if version not in state.keks:
            raise NotFound(f"KEK {self._key_id(version)} does not exist")
        if version == state.current:
            raise Permanent(f"KEK {self._key_id(version)} is current: rotate before disabling it")
        state.disabled.add(version)
        self._save(state)

    async def disable_below(self, version: int) -> None:
        """Disable every KEK version older than `version` (after a rotation)."""
        for old in sorted(v for v in self._load().keks if v < version):
            await self.disable(old)

    async def rewrap(self, key_id: str, wrapped: bytes) -> tuple[str, bytes]:
        """Re-wrap a data key under the current KEK; the key itself (and the data) is unchanged."""
        return await self.wrap(await self.unwrap(key_id, wrapped))

    def _key_id(self, version: int) -> str:
        return f"{self._key_id_prefix}{version}"

    def _version(self, key_id: str, state: _State) -> int:
        digits = key_id.removeprefix(self._key_id_prefix)
        # Compare against the canonical spelling so "v01" or "v+1" can't alias version 1.
        if digits.isascii() and digits.isdigit() and self._key_id(int(digits)) == key_id:
            version = int(digits)
            if version in state.keks:
                return version
        raise NotFound(f"KEK {key_id!r} is not in keyring {self._name!r}")

    def _load(self) -> _State:
        try:
            with open(self._path, "rb") as f:
                mode = os.fstat(f.fileno()).st_mode
                if mode & 0o077:
                    raise Fatal(f"keyring {self._path} must be mode 600, is {mode & 0o777:o}")
                raw = f.read()
        except FileNotFoundError:
            return self._create()
        try:
            return _State.from_json(json.loads(raw))
        except (ValueError, KeyError, TypeError, AttributeError):  # e.g. a list for "keks"
            raise Fatal(f"keyring {self._path} is corrupt") from None

    def _create(self) -> _State:
        state = _State(current=1, keks={1: os.urandom(_KEK_BYTES)}, disabled=set())
        self._path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        tmp = self._write_temp(state)
        try:
            # link() fails if the file exists: if another process created it first, use theirs.
            os.link(tmp, self._path)
        except FileExistsError:
            return self._load()
        finally:
            os.unlink(tmp)
        return state

    def _save(self, state: _State) -> None:
        os.replace(self._write_temp(state), self._path)

    def _write_temp(self, state: _State) -> str:
        # mkstemp creates the file with mode 600, in the same folder so link/replace are atomic.
        fd, tmp = tempfile.mkstemp(dir=self._path.parent, prefix=f".{self._path.name}.")
        with os.fdopen(fd, "w") as f:
            json.dump(state.to_json(), f)
            f.flush()
            os.fsync(f.fileno())
        return tmp
