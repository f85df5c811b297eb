"""The dispatcher's failure rules: dead-letter, retry, crash, never lose a message."""

import base64
from typing import cast

import orjson
import pytest

from schemas.codec import decode, encode, redacted
from schemas.events import (
    AuditRecord,
    DeadLetter,
    DeleteRequest,
    Event,
    IngestRequest,
    ObjectAccepted,
    ObjectEncrypted,
    Placement,
    RetryRequest,
    Source,
)
from tests.unit.agents.conftest import ListPublisher, inline_request
from topics import ACCEPTED, DELETE
from workers.audit.trail import STEP_TOPICS, derived_by_sink, step_of, step_record
from workers.client.identity import cli_actor
from workers.client.puts import put_request
from workers.dispatch import (
    Dispatcher,
    Emit,
    MessageRef,
    RetryPolicy,
    backoff_s,
    stamp,
    with_audit,
)
from workers.errors import AccessDenied, Fatal, Permanent, Retryable

REF = MessageRef("movingdata.ingest", 2, 41)
FAST = RetryPolicy(in_process_attempts=2, max_attempts=3, base_s=0.0, cap_s=0.0)


def ingest_decode(raw: bytes | None, ref: MessageRef) -> Event:
    return decode(raw, IngestRequest)


def dispatcher(pub: ListPublisher) -> Dispatcher:
    return Dispatcher("ingest", pub, FAST, rng=lambda: 0.0)


async def test_success_emits_outputs_and_audits() -> None:
    pub = ListPublisher()
    request = inline_request(b"x")

    async def handle(event: Event) -> list[Emit]:
        return [Emit(ACCEPTED, event)]

    await dispatcher(pub).run(encode(request), REF, ingest_decode, handle)
    assert [topic for topic, _, _ in pub.sent] == ["accepted", "audit"]
    audit = decode(pub.on("audit")[0], AuditRecord)
    assert audit.outcome == "ok" and audit.stage == "ingest"


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b"{not json", "malformed JSON"),
        (b'{"kind":"ingest.request","v":9}', "unknown event kind/version"),
        (b'{"kind":"ingest.request","v":1}', "Field required"),
        (b"", "empty message"),
    ],
)
async def test_bad_input_is_dead_lettered_with_reason(raw: bytes, reason: str) -> None:
    pub = ListPublisher()

    async def handle(event: Event) -> list[Emit]:
        raise AssertionError("never called")

    await dispatcher(pub).run(raw, REF, ingest_decode, handle)
    (letter_raw,) = pub.on("deadletter")
    letter = decode(letter_raw, DeadLetter)
    assert reason in letter.reason
    assert (letter.topic, letter.partition, letter.offset) == (REF.topic, 2, 41)
    assert base64.b64decode(letter.payload_b64) == redacted(raw)
    assert pub.sends == [["deadletter", "audit"]]  # together: no letter without its record


async def test_permanent_error_and_bug_are_dead_lettered() -> None:
    for error, reason in (
        (Permanent("no such file"), "no such file"),
        (KeyError("x"), "internal error: KeyError"),
    ):
        pub = ListPublisher()

        async def handle(event: Event, error: Exception = error) -> list[Emit]:
            raise error

        await dispatcher(pub).run(encode(inline_request(b"x")), REF, ingest_decode, handle)
        assert reason in decode(pub.on("deadletter")[0], DeadLetter).reason


async def test_transient_error_retries_in_process_then_via_retry_topic() -> None:
    pub = ListPublisher()
    calls = 0

    async def handle(event: Event) -> list[Emit]:
        nonlocal calls
        calls += 1
        raise Retryable("store down")

    by_path = put_request(
        Placement(name="p", targets=("s3",)), Source(path="/data/p"), None, actor=cli_actor()
    )
    await dispatcher(pub).run(encode(by_path), REF, ingest_decode, handle)
    assert calls == FAST.in_process_attempts
    request = decode(pub.on("retry")[0], RetryRequest)
    again = decode(base64.b64decode(request.payload_b64), IngestRequest)
    assert again.attempt == 1 and request.topic == REF.topic
    assert pub.sends == [["retry", "audit"]]


async def test_an_inline_payload_never_reaches_the_retry_or_dead_letter_topic() -> None:
    """A retry names the record to re-read; a dead letter keeps the payload's size and digest."""
    secret = b"PLAINTEXT-never-in-a-retry"
    pub = ListPublisher()

    async def down(event: Event) -> list[Emit]:
        raise Retryable("store down")

    async def refused(event: Event) -> list[Emit]:
        raise Permanent("no")

    raw = encode(inline_request(secret))
    await dispatcher(pub).run(raw, REF, ingest_decode, down)
    await dispatcher(pub).run(raw, REF, ingest_decode, refused)
    request = decode(pub.on("retry")[0], RetryRequest)
    assert request.payload_b64 == "" and request.record_attempt == 1
    assert request.record is not None
    assert (request.record.topic, request.record.offset) == (REF.topic, REF.offset)
    letter = decode(pub.on("deadletter")[0], DeadLetter)
    kept = orjson.loads(base64.b64decode(letter.payload_b64))
    assert kept["source"]["inline_redacted"]["size"] == len(secret)
    for _, _, value in pub.sent:
        assert secret not in value and base64.b64encode(secret) not in value


SECRET = b"PLAINTEXT-of-a-malformed-request"
SECRET_B64 = base64.b64encode(SECRET)
HEAD = b'{"kind":"ingest.request","v":1,'


@pytest.mark.parametrize(
    "raw",
    [
        HEAD + b'"source":{"inline_b64":"' + SECRET_B64 + b'"}',  # cut short: not JSON
        HEAD + b'"source":{"inline_b64":"' + SECRET_B64 + b'"},"source":{"path":"/p"}}',
        HEAD + b'"source":{"inline_b64":["' + SECRET_B64 + b'"]}}',  # not a string
        HEAD + b'"source":[{"inline_b64":"' + SECRET_B64 + b'"}]}',  # not an object
    ],
    ids=["not-json", "source-twice", "inline-not-a-string", "source-not-an-object"],
)
async def test_a_malformed_inline_request_leaves_no_plaintext_in_its_dead_letter(
    raw: bytes,
) -> None:
    pub = ListPublisher()

    async def handle(event: Event) -> list[Emit]:
        raise AssertionError("never called")

    await dispatcher(pub).run(raw, REF, ingest_decode, handle)
    (letter_raw,) = pub.on("deadletter")
    kept = base64.b64decode(decode(letter_raw, DeadLetter).payload_b64)
    assert kept and SECRET not in kept and SECRET_B64 not in kept
    for _, _, value in pub.sent:
        assert SECRET not in value and SECRET_B64 not in value


async def test_transient_error_past_max_attempts_is_dead_lettered() -> None:
    pub = ListPublisher()

    async def handle(event: Event) -> list[Emit]:
        raise Retryable("still down")

    tired = inline_request(b"x").model_copy(update={"attempt": FAST.max_attempts - 1})
    await dispatcher(pub).run(encode(tired), REF, ingest_decode, handle)
    assert "gave up after retries" in decode(pub.on("deadletter")[0], DeadLetter).reason
    assert not pub.on("retry")


async def test_fatal_error_propagates() -> None:
    async def handle(event: Event) -> list[Emit]:
        raise Fatal("bad credentials")

    with pytest.raises(Fatal):
        await dispatcher(ListPublisher()).run(
            encode(inline_request(b"x")), REF, ingest_decode, handle
        )


def test_backoff_is_capped_exponential_with_jitter() -> None:
    policy = RetryPolicy(base_s=1.0, cap_s=8.0)
    assert [backoff_s(n, policy, 0.999999) for n in range(5)] == pytest.approx([1, 2, 4, 8, 8])
    assert backoff_s(3, policy, 0.0) == 4.0


@pytest.mark.parametrize(
    ("check", "outcome"),
    [
        (None, "deadletter"),
        (Fatal("refused for our own bucket"), Fatal),
        (Retryable("down"), "retry"),
    ],
)
async def test_a_refused_request_is_the_events_fault_unless_the_store_refuses_us(
    check: Exception | None, outcome: object
) -> None:
    """AccessDenied: the store's own credentials are checked; only a failed check stops the
    worker, a store that cannot be asked is retried, otherwise the event is dead-lettered."""
    checked: list[str] = []

    async def check_store(scheme: str) -> None:
        checked.append(scheme)
        if check is not None:
            raise check

    async def handle(event: Event) -> list[Emit]:
        raise AccessDenied("s3", "s3 read k: AccessDenied")

    pub = ListPublisher()
    run = Dispatcher("encrypt", pub, FAST, rng=lambda: 0.0, check_store=check_store).run(
        encode(inline_request(b"x")), REF, ingest_decode, handle
    )
    if outcome is Fatal:
        with pytest.raises(Fatal):
            await run
    else:
        await run
        assert pub.sent[0][0] == outcome
    assert checked == ["s3"]


def accepted_of(request: IngestRequest) -> ObjectAccepted:
    return cast(
        ObjectAccepted,
        stamp(
            ObjectAccepted,
            request,
            "1",
            version=1,
            source=request.source,
            placement=request.placement,
        ),
    )


async def test_a_step_the_sink_derives_sends_no_audit_copy_others_do() -> None:
    """The sink builds a chain event's step record itself (``step_of``): the dispatcher sends
    no copy of it. A step the sink cannot derive (a delete request) keeps its record."""
    pub = ListPublisher()
    request = inline_request(b"x")
    accepted = accepted_of(request)
    delete = stamp(
        DeleteRequest,
        request,
        "delete",
        version=1,
        mode="delete",
        tenant="default",
        targets=("s3",),
        reason="retention",
    )

    async def handle(event: Event) -> list[Emit]:
        return [Emit(ACCEPTED, accepted), Emit(DELETE, delete, action="delete.requested")]

    await dispatcher(pub).run(encode(request), REF, ingest_decode, handle)
    assert pub.sends == [["accepted", "delete", "audit"]]
    record = decode(pub.on("audit")[0], AuditRecord)
    assert record.action == "delete.requested" and record.detail["topic"] == "delete"
    # What the sink derives from the stored accepted event is the record no longer sent.
    stored = decode(pub.on("accepted")[0], ObjectAccepted)
    step = step_of(stored)
    assert step is not None
    assert step_record(*step) == step_record("ingest", Emit(ACCEPTED, stored))
    assert stored.actor.startswith("worker:ingest@")  # signed before it was sent


def test_an_accepted_step_names_who_asked_for_the_version() -> None:
    """The ingest worker accepts; the record also names the request's actor (a token)."""
    accepted = accepted_of(inline_request(b"x")).model_copy(update={"requested_by": "api:ci"})
    assert step_record("ingest", Emit(ACCEPTED, accepted)).detail["requested_by"] == "api:ci"
    anonymous = accepted.model_copy(update={"requested_by": ""})
    assert "requested_by" not in step_record("ingest", Emit(ACCEPTED, anonymous)).detail


def test_an_output_the_sink_would_derive_differently_keeps_its_record() -> None:
    """Another stage or action than the sink would name: the copy is the only true record."""
    accepted = accepted_of(inline_request(b"x")).model_copy(update={"actor": "worker:x"})
    assert derived_by_sink("ingest", Emit(ACCEPTED, accepted))
    assert not derived_by_sink("replay", Emit(ACCEPTED, accepted))
    assert not derived_by_sink("ingest", Emit(ACCEPTED, accepted, action="other"))
    sent = with_audit("replay", [Emit(ACCEPTED, accepted)])
    assert [out.topic.suffix for out in sent] == ["accepted", "audit"]


def test_every_derived_step_is_on_a_topic_the_sink_consumes() -> None:
    """Else its record would be nowhere: neither on the audit topic nor derived."""
    from workers.app import SINK_TOPICS

    request = inline_request(b"x")
    accepted = accepted_of(request)
    encrypted = stamp(
        ObjectEncrypted,
        request,
        "e",
        version=1,
        placement=request.placement,
        primary="s3",
        key="k",
        key_id="local:k:v1",
        algorithm="aes256gcm-chunked",
        plaintext_size=1,
        plaintext_sha256="0" * 64,
        ciphertext_size=1,
        ciphertext_sha256="0" * 64,
    )
    one = encrypted.model_copy(update={"only_targets": ("gcs",)})
    for event in (accepted, encrypted, one):
        step = step_of(event)
        assert step is not None and step[1].topic in STEP_TOPICS
    assert set(STEP_TOPICS) <= set(SINK_TOPICS)
