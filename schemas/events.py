"""Versioned event types: one envelope (DESIGN §2), strict validation, orjson on the wire.

Evolution rules: new fields get defaults; never rename or retype; a breaking change is a new
``v`` and readers keep accepting the previous one for a release. Frozen samples of every
version live in ``tests/unit/schemas/samples``.
"""

import base64
import hashlib
import re
import unicodedata
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

INLINE_MAX_BYTES = 256 * 1024
OBJECT_ID = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$"
TENANT = r"^[a-z0-9][a-z0-9-]{0,62}$"
TARGETS = ("s3", "azure", "gcs")
# Characters that reorder how a name is displayed (Trojan Source): refused in names.
BIDI_CONTROLS = frozenset(
    "\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"
)

ObjectId = Annotated[str, Field(pattern=OBJECT_ID)]
Sha256Hex = Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]
Target = Literal["s3", "azure", "gcs", "memory"]
Tenant = Annotated[str, Field(pattern=TENANT)]


def event_id(kind: str, object_id: str, version: int, *parts: str) -> str:
    """Deterministic id: a redelivered or replayed event gets the same id."""
    text = "\x1f".join((kind, object_id, str(version), *parts))
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def object_id_for(tenant: str, name: str) -> str:
    """The id of a named object: every version of (tenant, name) shares it."""
    return hashlib.sha256(f"{tenant}\x1f{name}".encode()).hexdigest()[:24]


class Outcome(StrEnum):
    OK = "ok"
    RETRY = "retry"
    FAILED = "failed"


class Event(BaseModel):
    """The envelope every event carries."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)
    KIND: ClassVar[str]
    VERSION: ClassVar[int] = 1

    kind: str
    v: int
    event_id: str = Field(min_length=1, max_length=64)
    object_id: ObjectId
    version: int = Field(ge=0)  # 0: a put request not given its version yet
    correlation_id: str = Field(min_length=1, max_length=128)
    produced_at: datetime
    attempt: int = Field(default=0, ge=0)
    # Who made the event: a worker ("worker:encrypt@host"), a CLI user ("alice@laptop").
    actor: str = Field(default="", max_length=200)

    def step_detail(self) -> dict[str, object]:
        """What the audit record of the step producing this event says besides its id and
        topic (nothing, unless a kind says more)."""
        return {}

    def step_outcome(self) -> "Outcome":
        """The outcome of the step producing this event (ok, unless a kind says otherwise)."""
        return Outcome.OK

    @model_validator(mode="after")
    def _kind_matches(self) -> "Event":
        if self.kind != self.KIND or self.v != self.VERSION:
            raise ValueError(f"expected kind={self.KIND} v={self.VERSION}")
        return self


def safe_key(value: str) -> str:
    """The NFC form of an object name; refuse names that could escape a prefix or confuse a
    store, a log or a reader (control and bidi characters, text that is not valid UTF-8)."""
    if any("\ud800" <= c <= "\udfff" for c in value):
        raise ValueError("name is not valid UTF-8")
    value = unicodedata.normalize("NFC", value)
    if not value or len(value) > 1024:
        raise ValueError("name must be 1-1024 characters")
    if value.startswith("/") or any(part in ("..", ".") for part in value.split("/")):
        raise ValueError("name must be relative and contain no '.' or '..' segments")
    if "" in value.split("/"):
        raise ValueError("name must not contain empty segments ('//' or a trailing '/')")
    if re.search(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]", value):  # line breaks too
        raise ValueError("name must not contain NUL or control characters")
    if BIDI_CONTROLS.intersection(value):
        raise ValueError("name must not contain bidi control characters")
    return value


class Source(BaseModel):
    """Exactly one of: a file path on the workers' filesystem, a store URL, a small inline
    payload (base64), or a key in the staging area the client uploaded to."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    path: str | None = None
    url: str | None = None
    inline_b64: str | None = None
    staged: str | None = None
    # What the source said of the object when a sync listed it (an ETag, a generation, a
    # file's mtime: ``workers.core.sync``), recorded on the version so the next sync of an
    # unchanged object decides from its listing alone.
    fingerprint: str | None = Field(default=None, min_length=1, max_length=200)
    # The content digests that listing reported (hex, by algorithm), for ``sync --checksum``.
    digests: dict[Literal["md5", "crc32c"], Annotated[str, Field(pattern=r"^[0-9a-f]{8,64}$")]] = (
        Field(default_factory=dict)
    )

    @model_validator(mode="after")
    def _exactly_one(self) -> "Source":
        given = [x for x in (self.path, self.url, self.inline_b64, self.staged) if x is not None]
        if len(given) != 1:
            raise ValueError("source needs exactly one of path, url, inline_b64, staged")
        if self.staged is not None:
            safe_key(self.staged)
        if self.url is not None and not re.match(
            r"^(s3|azure|gs)://[a-z0-9][a-z0-9.-]+/.+", self.url
        ):
            raise ValueError("source url must be s3://, azure:// or gs:// with bucket and key")
        if self.url is not None:
            safe_key(self.url.split("://", 1)[1].split("/", 1)[1])  # a key like a name
        if self.inline_b64 is not None:
            if len(self.inline_b64) > (INLINE_MAX_BYTES * 4) // 3 + 4:
                raise ValueError(f"inline payload over {INLINE_MAX_BYTES} bytes")
            try:
                decoded = base64.b64decode(self.inline_b64, validate=True)
            except ValueError as exc:
                raise ValueError("inline payload is not valid base64") from exc
            if len(decoded) > INLINE_MAX_BYTES:
                raise ValueError(f"inline payload over {INLINE_MAX_BYTES} bytes")
        if self.path is not None and "\x00" in self.path:
            raise ValueError("path must not contain NUL")
        return self

    def inline_bytes(self) -> bytes:
        return base64.b64decode(self.inline_b64 or "")


def carries_inline(event: "Event") -> bool:
    """The event holds an inline payload: plaintext that only its own topic may keep."""
    source = getattr(event, "source", None)
    return isinstance(source, Source) and source.inline_b64 is not None


TAG_KEY = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_:-]{0,62}$")
MAX_TAGS, MAX_TAG_VALUE, MAX_TAGS_BYTES = 32, 256, 4096


def safe_tags(tags: dict[str, str]) -> dict[str, str]:
    """Tags a database can store as field names, bounded in count and size."""
    if len(tags) > MAX_TAGS:
        raise ValueError(f"at most {MAX_TAGS} tags")
    for key, value in tags.items():
        if not TAG_KEY.match(key):
            raise ValueError(
                f"tag key {key[:70]!r} must be 1-63 letters, digits, '_', ':' or '-', "
                "starting with a letter or digit"
            )
        if len(value) > MAX_TAG_VALUE or re.search(r"[\x00-\x1f\x7f-\x9f]", value):
            raise ValueError(
                f"tag {key!r}: value must be at most {MAX_TAG_VALUE} printable characters"
            )
    if sum(len(k) + len(v.encode()) for k, v in tags.items()) > MAX_TAGS_BYTES:
        raise ValueError(f"tags must hold at most {MAX_TAGS_BYTES} bytes in all")
    return tags


class Placement(BaseModel):
    """Where an object goes and how it is labelled."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    name: str
    targets: tuple[Target, ...] = Field(min_length=1)
    tenant: Tenant = "default"
    tags: dict[str, str] = Field(default_factory=dict)
    mode: Literal["stream", "fernet"] = "stream"

    @field_validator("name")
    @classmethod
    def _safe_name(cls, value: str) -> str:
        return safe_key(value)

    @field_validator("tags")
    @classmethod
    def _safe_tags(cls, value: dict[str, str]) -> dict[str, str]:
        return safe_tags(value)

    @field_validator("targets")
    @classmethod
    def _distinct(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if len(set(value)) != len(value):
            raise ValueError("targets must be distinct")
        return value


class IngestRequest(Event):
    """A producer's request to put one object (topic ``ingest``).

    ``correlation_id`` is the request id: a replayed request lands on the version it got the
    first time. ``version`` is assigned by ingest; whatever a producer sends is ignored. The
    plaintext's size and SHA-256, when the producer knows them, are checked end to end. A
    request without a source carries only a digest: it is for content believed unchanged, and
    is refused if the content differs from the latest version.
    """

    KIND = "ingest.request"
    version: int = Field(default=0, ge=0)
    source: Source | None = None
    placement: Placement
    plaintext_size: int | None = Field(default=None, ge=0)
    plaintext_sha256: Sha256Hex | None = None
    force: bool = False  # a new version even when the content is unchanged

    @model_validator(mode="after")
    def _digest(self) -> "IngestRequest":
        if (self.plaintext_size is None) != (self.plaintext_sha256 is None):
            raise ValueError("plaintext_size and plaintext_sha256 go together")
        if self.source is None and self.plaintext_sha256 is None:
            raise ValueError("a request without a source needs plaintext_size and plaintext_sha256")
        return self


class ObjectAccepted(Event):
    """Ingest checked the request and gave it a new version; encrypt may read the source
    (topic ``accepted``). The digest, when known, is what encrypt must read."""

    KIND = "object.accepted"
    source: Source
    placement: Placement
    plaintext_size: int | None = Field(default=None, ge=0)
    plaintext_sha256: Sha256Hex | None = None
    requested_by: str = Field(default="", max_length=200)  # the put request's actor

    def step_detail(self) -> dict[str, object]:
        """The trail names who asked for the version (a token, a user), not only the ingest
        worker that accepted it."""
        return {"requested_by": self.requested_by} if self.requested_by else {}


class ObjectEncrypted(Event):
    """Ciphertext is in the primary store (and every one of ``written_targets``); digests of
    both sides (topic ``encrypted``)."""

    KIND = "object.encrypted"
    placement: Placement
    primary: Target
    key: str
    key_id: str
    algorithm: str
    plaintext_size: int = Field(ge=0)
    plaintext_sha256: Sha256Hex
    ciphertext_size: int = Field(ge=0)
    ciphertext_sha256: Sha256Hex
    only_targets: tuple[Target, ...] = ()  # set on a per-target retry
    # What the primary store checked or computed from the bytes it received ("<alg>:<value>",
    # workers.core.digests), equal to ours; None: it confirmed nothing (verify reads back).
    store_digest: str | None = Field(default=None, max_length=200)
    # Targets encrypt wrote in its one pass (each announced on its ``replicated`` topic by
    # encrypt itself): replicate copies only the others. Empty: replicate copies every target
    # but the primary (events from before the one pass).
    written_targets: tuple[Target, ...] = ()
    # When encrypt unwrapped the version's data key back from the key registry and found the
    # key it encrypted with: a version is not verified without it. None: an event from before
    # key checks.
    key_checked_at: datetime | None = None


class ReplicaWritten(Event):
    """One replica of the ciphertext was written to ``target`` (topic ``replicated``)."""

    KIND = "replica.written"
    placement: Placement
    target: Target
    key: str
    ciphertext_size: int = Field(ge=0)
    ciphertext_sha256: Sha256Hex
    plaintext_sha256: Sha256Hex
    key_id: str
    scrub: bool = False  # a re-verification request from `movingdata scrub`, not a copy
    # What ``target`` checked or computed from the bytes it received, equal to ours computed
    # from bytes whose SHA-256 is ``ciphertext_sha256``; None: verify reads the replica back.
    store_digest: str | None = Field(default=None, max_length=200)
    # The step that sent this event wrote the replica, so ``store_digest`` (if any) is the
    # store's answer to that write, not a digest recorded earlier and re-announced: verify
    # takes it as is.
    written_now: bool = False


# A replica's verdict: good, or what a check found wrong with it.
Verdict = Literal["good", "damaged", "missing", "unreadable"]
VerifyMode = Literal["store-digest", "read-back"]


class ReplicaVerified(Event):
    """A check of ``target``'s replica (topic ``verified``). ``verdict`` good: it holds the
    ciphertext, read back and its SHA-256 matched (``mode`` read-back), or the store's own
    digest of what it received matched ours (``mode`` store-digest). Otherwise the check found
    it damaged (other bytes), missing or unreadable, and no good copy could repair it: the
    version is then degraded or lost until a later check finds it good."""

    KIND = "replica.verified"
    placement: Placement
    target: Target
    key: str
    ciphertext_sha256: Sha256Hex
    ciphertext_size: int = Field(ge=0)
    verified_at: datetime
    repaired_from: Target | None = None
    scrub: bool = False  # a re-verification (its own step in the trail, each time)
    mode: VerifyMode = "read-back"  # how it was verified (events before modes: read back)
    verdict: Verdict = "good"  # events before verdicts were all good ones

    def step_detail(self) -> dict[str, object]:
        """What the audit record of this step says besides the event's id and topic."""
        if self.verdict != "good":
            return {"mode": self.mode, "verdict": self.verdict}
        return {"mode": self.mode}

    def step_outcome(self) -> Outcome:
        return Outcome.OK if self.verdict == "good" else Outcome.FAILED

    @property
    def step(self) -> str:
        """The trail's name for this verification."""
        if self.verdict != "good":
            return f"replica.{self.verdict}"
        if not self.scrub:
            return "replica.verified"
        return "scrub.repaired" if self.repaired_from else "scrub.verified"


TierName = Literal["hot", "warm", "cold", "archive"]


class ReplicaTiered(Event):
    """The tier agent placed the replica in a tier (topic ``tiered``): its initial one, or a
    change the tiering policy decided (``previous`` set; the expected cost of this replica per
    policy period, USD, before and after)."""

    KIND = "replica.tiered"
    target: Target
    key: str
    tier: TierName
    reason: str
    previous: TierName | None = None
    cost_before: float | None = None
    cost_after: float | None = None

    def step_detail(self) -> dict[str, object]:
        detail: dict[str, object] = {"tier": self.tier, "reason": self.reason}
        if self.previous is not None:
            detail["previous"] = self.previous
        if self.cost_before is not None and self.cost_after is not None:
            detail["cost_delta"] = round(self.cost_after - self.cost_before, 9)
        return detail


class TierChange(Event):
    """Move one replica to another tier (topic ``retier``): decided by the tiering sweep
    (``workers.tiering.live``) and applied by the tier agent, which checks the store first."""

    KIND = "tier.change"
    target: Target
    key: str
    tier: TierName
    previous: TierName
    reason: str = Field(max_length=200)
    cost_before: float = Field(ge=0)
    cost_after: float = Field(ge=0)


class DeleteRequest(Event):
    """Remove one object version from every store (topic ``delete``). ``forget`` also marks
    it shredded: either way its data key is destroyed and the version can never come back."""

    KIND = "delete.request"
    mode: Literal["delete", "forget"]
    tenant: Tenant
    targets: tuple[Target, ...] = Field(min_length=1)
    keys: tuple[str, ...] = ()  # replica keys recorded for the version, if any
    reason: str = Field(default="", max_length=200)


class ReplicaRemoval(Event):
    """Remove every byte of one version from ``target`` (topic ``remove``)."""

    KIND = "replica.removal"
    mode: Literal["delete", "forget"]
    target: Target
    prefix: str
    keys: tuple[str, ...] = ()


class ReplicaRemoved(Event):
    """``target`` holds nothing of the version any more (topic ``removed``)."""

    KIND = "replica.removed"
    mode: Literal["delete", "forget"]
    target: Target
    keys_removed: int = Field(ge=0)


class ObjectAccessed(Event):
    """A read through the API/CLI (topic ``access``), input to the tiering policy."""

    KIND = "object.accessed"
    target: Target
    bytes_read: int = Field(ge=0)


class AuditRecord(Event):
    """One step or failure of one object (topic ``audit``); the sink chains them by hash."""

    KIND = "audit"
    stage: str
    action: str
    outcome: Outcome
    detail: dict[str, Any] = Field(default_factory=dict)


class DeadLetter(Event):
    """A message a stage cannot process, with the reason and where it came from."""

    KIND = "deadletter"
    stage: str
    reason: str
    topic: str
    partition: int
    offset: int
    payload_b64: str


class RecordRef(BaseModel):
    """Where a record is on the broker."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    topic: str
    partition: int = Field(ge=0)
    offset: int = Field(ge=0)


class RetryRequest(Event):
    """An event to be re-delivered to ``topic`` after ``not_before`` (topic ``retry``).

    The event travels in ``payload_b64``, unless it carries an inline payload: then only
    ``record`` travels, and the retry agent re-reads the event from there (plaintext never
    reaches this topic), re-delivering it with ``attempt`` set to ``record_attempt``.
    """

    KIND = "retry"
    topic: str
    not_before: datetime
    reason: str
    payload_b64: str = ""
    record: RecordRef | None = None
    record_attempt: int = Field(default=0, ge=0)


SOURCE_URL = r"^(s3|azure|gs)://[a-z0-9][a-z0-9.-]{1,62}(/[^\x00-\x1f\x7f]*)?$"
SyncRule = tuple[Literal["include", "exclude"], Annotated[str, Field(min_length=1, max_length=512)]]


class SyncPage(Event):
    """One page of a sync job's listing to plan (topic ``sync``, keyed by the job id, which is
    its ``object_id`` and ``correlation_id``). Page 0 (``after`` empty) starts the job; the scan
    stage plans each page, sends its puts and removals with the next page (listed after the
    key ``after``), all acknowledged together: the topic is the job's checkpoint, and a
    scanner stopped mid-page re-plans only that page. ``actor`` is who asked for the job."""

    KIND = "sync.page"
    source: str = Field(pattern=SOURCE_URL, max_length=1024)
    targets: tuple[Target, ...] = Field(min_length=1)
    tenant: Tenant = "default"
    prefix: str = Field(default="", max_length=512)  # put before every name
    rules: tuple[SyncRule, ...] = Field(default=(), max_length=64)
    delete: bool = False  # names gone from the source are removed (never forgotten)
    checksum: bool = False  # compare content digests, not fingerprints
    page: int = Field(default=0, ge=0)
    after: str = Field(default="", max_length=1024)  # the last key of the previous page
