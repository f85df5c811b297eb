"""Key-encryption keys (KEK) behind one small interface: wrap, unwrap, rewrap, rotate.

Two providers: OpenBao's transit engine (the one the local stack runs, and what production
uses) and ``LocalKeyring`` (a file, for development and unit tests). Plaintext data keys exist
only in worker memory; what leaves the process is the wrapped key and its key id.
"""

import base64
import hashlib
import hmac
import os
import re
from pathlib import Path
from typing import Literal, Protocol

import aiohttp
from pydantic import SecretStr

from workers import metrics
from workers.errors import Fatal, IntegrityError, NotFound, Permanent, Retryable
from workers.kms.keyring import LocalKeyring
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


class OpenBaoClient:
    """Calls to OpenBao's transit engine with one token (each role has a token of its own)."""

    def __init__(self, addr: str, token: str) -> None:
        self._addr = addr.rstrip("/")
        self._token = token
        self._session: aiohttp.ClientSession | None = None

    async def _call(self, path: str, body: dict[str, object] | None = None) -> dict[str, object]:
        if self._session is None:
            self._session = aiohttp.ClientSession(
                headers={"X-Vault-Token": self._token},
                timeout=aiohttp.ClientTimeout(total=10),
            )
        method = "POST" if body is not None else "GET"
        metrics.KMS_REQUESTS.labels(path.split("/", 1)[0]).inc()
        try:
            async with self._session.request(
                method, f"{self._addr}/v1/transit/{path}", json=body
            ) as resp:
                payload = await resp.json(content_type=None) if resp.content_length != 0 else {}
                status = resp.status
        except (aiohttp.ClientConnectionError, TimeoutError) as exc:
            raise Retryable(f"openbao unreachable: {type(exc).__name__}") from None
        if status in (401, 403):
            operation = path.split("/", 1)[0]
            raise Fatal(f"openbao refused this token for transit {operation} (a token per role)")
        if status == 429 or status >= 500:
            raise Retryable(f"openbao answered {status}")
        if status >= 400:
            errors = "; ".join(str(e) for e in (payload or {}).get("errors", []))[:200]
            raise Permanent(f"openbao answered {status}: {errors}")
        return dict((payload or {}).get("data") or {})

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()


class OpenBaoTransit(OpenBaoClient):
    """OpenBao/Vault transit engine over HTTP. Key ids look like ``openbao:NAME:v2``."""

    def __init__(self, addr: str, token: str, name: str) -> None:
        super().__init__(addr, token)
        self._name = name

    def __repr__(self) -> str:
        return f"OpenBaoTransit(addr={self._addr!r}, name={self._name!r})"

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


class AuditSigner(Protocol):
    """Signs audit checkpoints with a key the database never holds."""

    async def sign(self, data: bytes) -> str: ...

    async def verify(self, data: bytes, signature: str) -> bool: ...

    async def close(self) -> None: ...


class OpenBaoSigner(OpenBaoClient):
    """An OpenBao transit signing key (ed25519): the sink signs, ``audit verify`` checks."""

    def __init__(self, addr: str, token: str, key: str) -> None:
        super().__init__(addr, token)
        self._key = key

    async def sign(self, data: bytes) -> str:
        body = {"input": base64.b64encode(data).decode()}
        return str((await self._call(f"sign/{self._key}", body))["signature"])

    async def verify(self, data: bytes, signature: str) -> bool:
        body = {"input": base64.b64encode(data).decode(), "signature": signature}
        try:
            return bool((await self._call(f"verify/{self._key}", body)).get("valid"))
        except Permanent:  # a signature that is not even well-formed
            return False


class LocalSigner:
    """HMAC-SHA256 under a key in a local file (mode 600), for development and unit tests."""

    def __init__(self, path: Path) -> None:
        self._path = path

    def _key(self) -> bytes:
        if not self._path.exists():
            self._path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self._path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as out:
                out.write(os.urandom(32))
        return self._path.read_bytes()

    async def sign(self, data: bytes) -> str:
        return "local:v1:" + hmac.new(self._key(), data, hashlib.sha256).hexdigest()

    async def verify(self, data: bytes, signature: str) -> bool:
        return hmac.compare_digest(await self.sign(data), signature)

    async def close(self) -> None:
        """Nothing to release."""


Role = Literal["worker", "sink", "reader", "admin"]
# The setting holding each role's OpenBao token (MOVINGDATA_OPENBAO_<...>).
TOKEN_SETTINGS: dict[Role, str] = {
    "worker": "openbao_token",
    "sink": "openbao_sink_token",
    "reader": "openbao_reader_token",
    "admin": "openbao_admin_token",
}


def openbao_token(settings: Settings, role: Role) -> str:
    """The token of a role: workers encrypt and decrypt with the KEK; the sink alone signs
    checkpoints (and verifies the latest before the next); readers (restore, audit verify)
    decrypt and verify; the admin rotates and trims."""
    # Only the role's own setting is read: a process never touches another role's token.
    token: SecretStr | None = getattr(settings, TOKEN_SETTINGS[role])
    if token is not None and not token.get_secret_value():
        token = None  # set but empty (`${VAR:-}` in Compose): not given either
    if token is None and role == "sink":
        raise Fatal(
            "MOVINGDATA_OPENBAO_SINK_TOKEN is not set: the sink signs audit checkpoints with a "
            "token of its own, which no other worker holds (locally `movingdata stack up` "
            "issues it; in a deployment, give it to the sink's service or pod only)"
        )
    if token is None:
        name = {"worker": "", "reader": "READER_", "admin": "ADMIN_"}[role]
        raise Fatal(f"MOVINGDATA_OPENBAO_{name}TOKEN is not set (run `movingdata stack up` first)")
    return token.get_secret_value()


def open_signer(settings: Settings, role: Role) -> AuditSigner:
    """The audit signing key with ``role``'s token: ``sink`` signs and verifies, ``reader``
    and ``admin`` only verify; a worker's token may do neither."""
    if settings.kek_provider == "local":
        return LocalSigner(settings.home / "audit-signing.key")
    return OpenBaoSigner(
        settings.openbao_addr, openbao_token(settings, role), settings.audit_signing_key
    )


def open_kek(settings: Settings, role: Role = "worker") -> KeyEncryptionKey:
    """The configured KEK: OpenBao transit with the role's token, else the local keyring."""
    if settings.kek_provider == "local":
        return LocalKeyring(settings.home / "keyring.json", settings.kek_name)
    return OpenBaoTransit(settings.openbao_addr, openbao_token(settings, role), settings.kek_name)
