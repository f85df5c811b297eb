"""The one place that decides what happens when a handler fails (DESIGN §7).

Every agent hands each raw message to ``Dispatcher.run``. Nothing escapes it except ``Fatal``
(bad credentials, bad config), which must crash the worker so its supervisor restarts it:
- invalid input or ``Permanent`` -> dead-letter topic with the reason, stage and offset;
- ``AccessDenied`` (a store refused this one request) -> the store's own credentials are
  checked: refused too, ``Fatal``; else the event is dead-lettered and the worker runs on;
- ``Retryable`` -> a few in-process retries with capped exponential backoff and jitter, then
  the retry topic with ``attempt + 1``; past ``max_attempts``, dead-letter;
- an unexpected exception is a bug: dead-lettered as ``internal error`` (never lost).
Every outcome is also an audit record.
"""

import asyncio
import base64
import logging
import random
import socket
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Protocol

from schemas.codec import encode, redacted
from schemas.events import (
    AuditRecord,
    DeadLetter,
    Event,
    Outcome,
    RecordRef,
    RetryRequest,
    carries_inline,
    event_id,
)
from topics import AUDIT, DEADLETTER, RETRY, TopicSpec
from workers import metrics
from workers.audit.trail import Emit as Emit  # what handlers return, re-exported for them
from workers.audit.trail import derived_by_sink, step_record
from workers.errors import AccessDenied, Fatal, Permanent, Retryable

log = logging.getLogger("movingdata.dispatch")
UNKNOWN_OBJECT = "unknown"


@dataclass(frozen=True, slots=True)
class MessageRef:
    """Where a raw message came from, for dead letters and logs; its key and broker
    timestamp (seconds) when known."""

    topic: str
    partition: int
    offset: int
    key: bytes | None = None
    timestamp: float | None = None
    value: bytes | None = None  # only when a record is re-read (the retry of an inline event)

    def record(self) -> RecordRef:
        """The coordinates alone, as events carry them."""
        return RecordRef(topic=self.topic, partition=self.partition, offset=self.offset)


Message = tuple[TopicSpec, str, bytes]  # topic, key (object id), value


class Publisher(Protocol):
    """Produces bytes to a topic of the chain (Faust in workers, a list in unit tests)."""

    async def send(self, messages: Sequence[Message]) -> None:
        """Send every message and return once the broker has acknowledged them all."""


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Defaults ride out a store that is down for several minutes (about 5 min in all)."""

    in_process_attempts: int = 3
    max_attempts: int = 10
    base_s: float = 0.2
    cap_s: float = 60.0


def backoff_s(attempt: int, policy: RetryPolicy, jitter: float) -> float:
    """Capped exponential backoff with jitter in [50%, 100%] of the step (``jitter`` in [0,1))."""
    step = min(policy.cap_s, policy.base_s * 2**attempt)
    return step * (0.5 + jitter / 2)


def stamp(
    cls: type[Event], cause: Event, /, *parts: str, version: int | None = None, **fields: object
) -> Event:
    """A follow-up event of ``cause``: same object, version (unless given) and correlation,
    and a deterministic id."""
    version = cause.version if version is None else version
    return cls(
        kind=cls.KIND,
        v=cls.VERSION,
        event_id=event_id(cls.KIND, cause.object_id, version, *parts),
        object_id=cause.object_id,
        version=version,
        correlation_id=cause.correlation_id,
        produced_at=datetime.now(UTC),
        attempt=0,
        **fields,
    )


def with_audit(stage: str, outputs: Sequence[Emit]) -> list[Emit]:
    """What a successful step sends: its outputs, each but an audit record followed by its
    step's record unless the sink derives that record from the output itself (a step the
    sink cannot derive, a delete request say, still sends its record)."""
    sent = []
    for out in outputs:
        sent.append(out)
        step = out.stage or stage
        if out.topic is not AUDIT and not derived_by_sink(step, out):
            sent.append(Emit(AUDIT, step_record(step, out)))
    return sent


class Dispatcher:
    """Runs handlers for one stage and applies the failure rules."""

    def __init__(
        self,
        stage: str,
        publisher: Publisher,
        policy: RetryPolicy = RetryPolicy(),
        rng: Callable[[], float] = random.random,
        check_store: Callable[[str], Awaitable[None]] | None = None,
        actor: str = "",
    ) -> None:
        self.stage = stage
        self.actor = actor or f"worker:{stage}@{socket.gethostname()}"
        self.publisher = publisher
        self.policy = policy
        self.rng = rng
        # Checks a store's own credentials (raises Fatal if refused): an AccessDenied is then
        # the event's fault alone, or the whole worker's.
        self.check_store = check_store

    async def run(
        self,
        raw: bytes | None,
        ref: MessageRef,
        decode: Callable[[bytes | None, MessageRef], Event],
        handle: Callable[[Event], Awaitable[Sequence[Emit]]],
    ) -> None:
        """Decode ``raw`` and handle it; every failure ends in a retry or a dead letter."""
        try:
            event = decode(raw, ref)
        except Permanent as exc:
            await self.dead_letter(None, raw, ref, f"invalid input: {exc}")
            return
        await self.run_event(event, raw or b"", ref, handle)

    async def run_event(
        self,
        event: Event,
        raw: bytes,
        ref: MessageRef,
        handle: Callable[[Event], Awaitable[Sequence[Emit]]],
    ) -> None:
        """Handle an already decoded event (replicate runs one of these per target)."""
        began = time.monotonic()
        for step in range(self.policy.in_process_attempts):
            try:
                outputs = await handle(event)
            except Fatal:
                log.critical("fatal error", extra=self._ctx(event, ref), exc_info=True)
                raise
            except Retryable as exc:
                if step + 1 < self.policy.in_process_attempts:
                    await asyncio.sleep(backoff_s(step, self.policy, self.rng()))
                    continue
                await self.retry_later(event, ref, str(exc))
                return
            except AccessDenied as exc:
                if self.check_store is not None:
                    try:
                        await self.check_store(exc.scheme)  # Fatal escapes: the worker stops
                    except Retryable as down:
                        await self.retry_later(event, ref, f"{exc}; then {down}")
                        return
                await self.dead_letter(event, raw, ref, str(exc))
                return
            except Permanent as exc:
                await self.dead_letter(event, raw, ref, str(exc))
                return
            except Exception as exc:  # a bug: keep the message, keep the agent running
                log.exception("handler bug", extra=self._ctx(event, ref))
                await self.dead_letter(event, raw, ref, f"internal error: {type(exc).__name__}")
                return
            outputs = [Emit(o.topic, self.signed(o.event), o.action, o.stage) for o in outputs]
            metrics.STAGE_SECONDS.labels(self.stage).observe(time.monotonic() - began)
            metrics.EVENTS.labels(self.stage, "ok").inc()
            own = [o for o in outputs if o.stage is None]  # not steps of another stage
            metrics.BYTES.labels(self.stage).inc(sum(metrics.bytes_of(o.event) for o in own))
            # All at once: one round trip to the broker, not one per message.
            await self.emit(*with_audit(self.stage, outputs))
            return

    def signed(self, event: Event) -> Event:
        """The event with this worker as its actor, unless it names one already."""
        return event if event.actor else event.model_copy(update={"actor": self.actor})

    async def emit(self, *outs: Emit) -> None:
        events = [self.signed(out.event) for out in outs]
        await self.publisher.send(
            [(out.topic, e.object_id, encode(e)) for out, e in zip(outs, events, strict=True)]
        )

    def audit(
        self, event: Event, *, action: str, outcome: Outcome, detail: dict[str, object]
    ) -> Emit:
        """The audit record of a failure step (sent with the retry or dead letter it explains)."""
        record = stamp(
            AuditRecord,
            event,
            self.stage,
            action,
            event.event_id,
            outcome,
            str(event.attempt),
            stage=self.stage,
            action=action,
            outcome=outcome,
            detail={**detail, "attempt": event.attempt, "source_event_id": event.event_id},
        )
        return Emit(AUDIT, record)

    async def retry_later(self, event: Event, ref: MessageRef, reason: str) -> None:
        if event.attempt + 1 >= self.policy.max_attempts:
            await self.dead_letter(event, encode(event), ref, f"gave up after retries: {reason}")
            return
        delay = backoff_s(event.attempt + self.policy.in_process_attempts, self.policy, self.rng())
        again = event.model_copy(update={"attempt": event.attempt + 1})
        if carries_inline(event):  # the retry agent re-reads it from its own topic
            carried: dict[str, object] = {
                "record": ref.record(),
                "record_attempt": again.attempt,
            }
        else:
            carried = {"payload_b64": base64.b64encode(encode(again)).decode()}
        request = stamp(
            RetryRequest,
            event,
            self.stage,
            event.event_id,
            str(again.attempt),
            topic=ref.topic,
            not_before=datetime.now(UTC) + timedelta(seconds=delay),
            reason=reason[:500],
            **carried,
        )
        log.warning("retry scheduled", extra={**self._ctx(event, ref), "reason": reason})
        metrics.EVENTS.labels(self.stage, "retry").inc()
        metrics.RETRIES.labels(self.stage).inc()
        await self.emit(
            Emit(RETRY, request),
            self.audit(event, action="retry", outcome=Outcome.RETRY, detail={"reason": reason}),
        )

    async def dead_letter(
        self, event: Event | None, raw: bytes | None, ref: MessageRef, reason: str
    ) -> None:
        subject = event or _unknown_subject(raw, ref)
        letter = stamp(
            DeadLetter,
            subject,
            self.stage,
            ref.topic,
            str(ref.partition),
            str(ref.offset),
            stage=self.stage,
            reason=reason[:1000],
            topic=ref.topic,
            partition=ref.partition,
            offset=ref.offset,
            payload_b64=base64.b64encode(redacted(raw)[:65536]).decode(),
        )
        log.error("dead letter", extra={**self._ctx(subject, ref), "reason": reason})
        metrics.EVENTS.labels(self.stage, "deadletter").inc()
        metrics.DEADLETTERS.labels(self.stage).inc()
        await self.emit(
            Emit(DEADLETTER, letter),
            self.audit(
                subject,
                action="deadletter",
                outcome=Outcome.FAILED,
                detail={"reason": reason[:1000], "topic": ref.topic, "offset": ref.offset},
            ),
        )

    def _ctx(self, event: Event, ref: MessageRef) -> dict[str, object]:
        return {
            "stage": self.stage,
            "object_id": event.object_id,
            "event_id": event.event_id,
            "topic": ref.topic,
            "partition": ref.partition,
            "offset": ref.offset,
            "attempt": event.attempt,
        }


def _unknown_subject(raw: bytes | None, ref: MessageRef) -> Event:
    """An envelope for a message we could not decode, so its dead letter has ids too."""
    ident = f"{ref.topic}:{ref.partition}:{ref.offset}"
    return AuditRecord(
        kind=AuditRecord.KIND,
        v=1,
        event_id=event_id("undecodable", UNKNOWN_OBJECT, 1, ident),
        object_id=UNKNOWN_OBJECT,
        version=1,
        correlation_id=ident,
        produced_at=datetime.now(UTC),
        stage="decode",
        action="decode",
        outcome=Outcome.FAILED,
        detail={"bytes": len(raw or b"")},
    )
