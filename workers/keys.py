"""Key-encryption keys (KEK) behind one small interface: wrap, unwrap, rewrap, rotate.

Two providers: OpenBao's transit engine (the one the local stack runs, and what production
uses) and ``LocalKeyring`` (a file, for development and unit tests). Plaintext data keys exist
only in worker memory; what leaves the process is the wrapped key and its key id.
"""

import base64
import re
from typing import Protocol

import aiohttp

from workers.errors import Fatal, IntegrityError, NotFound, Permanent, Retryable
from workers.keyring import LocalKeyring
from workers.settings import Settings

_OPENBAO_WRAPPED = re.compile(r"^vault:v(\d+):[A-Za-z0-9+/=]+$")


class KeyEncryptionKey(Protocol):
    """What the encrypt and restore paths need from a KMS."""

    async def wrap(self, data_key: bytes) -> tuple[str, bytes]:
        """Wrap with the current KEK version; return (key id, wrapped key)."""

    async def unwrap(self, key_id: str, wrapped: bytes) -> bytes:
        """Recover the data key; ``IntegrityError`` if it was not wrapped by this KEK."""

    async def rewrap(self, key_id: str, wrapped: bytes) -> tuple[str, bytes]:
        """Re-wrap under the newest KEK version without exposing the data key."""

    async def rotate(self) -> str:
        """Add a KEK version; new wraps use it. Returns the new key id."""

    async def disable_below(self, version: int) -> None:
        """Refuse to unwrap anything wrapped by a KEK version older than ``version``."""


class OpenBaoTransit:
    """OpenBao/Vault transit engine over HTTP. Key ids look like ``openbao:NAME:v2``."""

    def __init__(self, addr: str, token: str, name: str) -> None:
        self._addr = addr.rstrip("/")
        self._token = token
        self._name = name
        self._session: aiohttp.ClientSession | None = None

    def __repr__(self) -> str:
        return f"OpenBaoTransit(addr={self._addr!r}, name={self._name!r})"

    async def _call(self, path: str, body: dict[str, object] | None = None) -> dict[str, object]:
        if self._session is None:
            self._session = aiohttp.ClientSession(
                headers={"X-Vault-Token": self._token},
                timeout=aiohttp.ClientTimeout(total=10),
            )
        method = "POST" if body is not None else "GET"
        try:
            async with self._session.request(
                method, f"{self._addr}/v1/transit/{path}", json=body
            ) as resp:
                payload = await resp.json(content_type=None) if resp.content_length != 0 else {}
                status = resp.status
        except (aiohttp.ClientConnectionError, TimeoutError) as exc:
            raise Retryable(f"openbao unreachable: {type(exc).__name__}") from None
        if status in (401, 403):
            raise Fatal("openbao refused the worker token (check MOVINGDATA_OPENBAO_TOKEN)")
        if status == 429 or status >= 500:
            raise Retryable(f"openbao answered {status}")
        if status >= 400:
            errors = "; ".join(str(e) for e in (payload or {}).get("errors", []))[:200]
            raise Permanent(f"openbao answered {status}: {errors}")
        return dict((payload or {}).get("data") or {})

    def _key_id(self, wrapped: str) -> str:
        match = _OPENBAO_WRAPPED.match(wrapped)
        if match is None:
            raise Permanent("openbao returned an unexpected ciphertext format")
        return f"openbao:{self._name}:v{match.group(1)}"

    def _check(self, key_id: str, wrapped: bytes) -> str:
        text = wrapped.decode("ascii", errors="replace")
        if not key_id.startswith(f"openbao:{self._name}:v"):
            raise NotFound(f"key id {key_id!r} is not held by this KEK")
        if self._key_id(text) != key_id:
            raise IntegrityError("wrapped key does not match its key id")
        return text

    async def wrap(self, data_key: bytes) -> tuple[str, bytes]:
        data = await self._call(
            f"encrypt/{self._name}", {"plaintext": base64.b64encode(data_key).decode()}
        )
        wrapped = str(data["ciphertext"])
        return self._key_id(wrapped), wrapped.encode("ascii")

    async def unwrap(self, key_id: str, wrapped: bytes) -> bytes:
        text = self._check(key_id, wrapped)
        try:
            data = await self._call(f"decrypt/{self._name}", {"ciphertext": text})
        except Permanent as exc:
            raise IntegrityError(f"openbao could not unwrap the data key: {exc}") from None
        return base64.b64decode(str(data["plaintext"]))

    async def rewrap(self, key_id: str, wrapped: bytes) -> tuple[str, bytes]:
        data = await self._call(
            f"rewrap/{self._name}", {"ciphertext": self._check(key_id, wrapped)}
        )
        new = str(data["ciphertext"])
        return self._key_id(new), new.encode("ascii")

    async def rotate(self) -> str:
        await self._call(f"keys/{self._name}/rotate", {})
        info = await self._call(f"keys/{self._name}")
        return f"openbao:{self._name}:v{info['latest_version']}"

    async def disable_below(self, version: int) -> None:
        """Refuse to unwrap anything wrapped by a KEK version older than ``version``."""
        await self._call(f"keys/{self._name}/config", {"min_decryption_version": version})

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()


def open_kek(settings: Settings) -> KeyEncryptionKey:
    """The configured KEK: OpenBao transit when a token is set, else the local keyring."""
    if settings.kek_provider == "local":
        return LocalKeyring(settings.home / "keyring.json", settings.kek_name)
    if settings.openbao_token is None:
        raise Fatal("MOVINGDATA_OPENBAO_TOKEN is not set (run `movingdata stack up` first)")
    return OpenBaoTransit(
        settings.openbao_addr, settings.openbao_token.get_secret_value(), settings.kek_name
    )
