"""orjson on the wire, strict pydantic validation on the way in.

``decode`` is the only way bytes from a topic become an event: anything malformed raises
``InvalidEvent`` (a ``Permanent`` error), which the dispatcher dead-letters with the reason.
"""

import base64
import binascii
import hashlib
from typing import TypeVar

import orjson
from pydantic import ValidationError

from schemas.events import (
    AuditRecord,
    DeadLetter,
    DeleteRequest,
    Event,
    IngestRequest,
    ObjectAccepted,
    ObjectAccessed,
    ObjectEncrypted,
    ReplicaRemoval,
    ReplicaRemoved,
    ReplicaTiered,
    ReplicaVerified,
    ReplicaWritten,
    RetryRequest,
    SyncPage,
    TierChange,
)
from workers.errors import Permanent

E = TypeVar("E", bound=Event)

REGISTRY: dict[tuple[str, int], type[Event]] = {
    (cls.KIND, cls.VERSION): cls
    for cls in (
        IngestRequest,
        ObjectAccepted,
        ObjectEncrypted,
        ReplicaWritten,
        ReplicaVerified,
        ReplicaTiered,
        TierChange,
        ObjectAccessed,
        DeleteRequest,
        ReplicaRemoval,
        ReplicaRemoved,
        AuditRecord,
        DeadLetter,
        RetryRequest,
        SyncPage,
    )
}
MAX_EVENT_BYTES = 1024 * 1024


class InvalidEvent(Permanent):
    """Bytes that are not a valid event of an expected kind."""


def encode(event: Event) -> bytes:
    return orjson.dumps(event.model_dump(mode="json"))


def decode(raw: bytes | None, *expected: type[E]) -> E:
    """Parse and validate ``raw``; it must be one of ``expected`` (any registered if empty)."""
    if not raw:
        raise InvalidEvent("empty message")
    if len(raw) > MAX_EVENT_BYTES:
        raise InvalidEvent(f"message of {len(raw)} bytes is over {MAX_EVENT_BYTES}")
    try:
        head = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise InvalidEvent(f"malformed JSON: {exc}") from None
    if not isinstance(head, dict):
        raise InvalidEvent("event must be a JSON object")
    kind, v = head.get("kind"), head.get("v")
    cls = REGISTRY.get((kind, v)) if isinstance(kind, str) and isinstance(v, int) else None
    if cls is None:
        raise InvalidEvent(f"unknown event kind/version: {str(kind)[:40]!r} v{str(v)[:10]}")
    if expected and cls not in expected:
        names = ", ".join(e.KIND for e in expected)
        raise InvalidEvent(f"event kind {kind!r} not accepted here (expected {names})")
    try:
        return cls.model_validate_json(raw)  # type: ignore[return-value]
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(map(str, e['loc'])) or 'event'}: {e['msg']}" for e in exc.errors()[:5]
        )
        raise InvalidEvent(f"invalid {kind} v{v}: {problems}") from None


def redacted(raw: bytes | None) -> bytes:
    """What a dead letter, the database or a log may keep of a message: ``raw`` with every
    inline payload in it (an ``inline_b64`` at any depth, of any type) replaced by its size
    and SHA-256 (``inline_redacted``). Re-encoded, so a key given twice keeps one value; bytes
    that are not JSON are kept as their size and SHA-256 alone, since nothing shows they hold
    no plaintext (the record's coordinates find them on their own topic)."""
    if not raw:
        return b""
    try:
        doc = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return orjson.dumps({"unparsed": summary(raw)})
    return orjson.dumps(without_inline(doc))


def summary(data: bytes) -> dict[str, object]:
    return {"size": len(data), "sha256": hashlib.sha256(data).hexdigest()}


def without_inline(value: object) -> object:
    """``value`` (decoded JSON) with each ``inline_b64`` replaced by ``inline_redacted``."""
    if isinstance(value, list):
        return [without_inline(item) for item in value]
    if not isinstance(value, dict):
        return value
    kept = {k: without_inline(v) for k, v in value.items() if k != "inline_b64"}
    if "inline_b64" in value:
        kept["inline_redacted"] = summary(inline_bytes(value["inline_b64"]))
    return kept


def inline_bytes(value: object) -> bytes:
    """The bytes an inline payload stands for: decoded base64, else its JSON text."""
    if isinstance(value, str):
        try:
            return base64.b64decode(value)
        except (binascii.Error, ValueError):
            return value.encode()
    return orjson.dumps(value)
