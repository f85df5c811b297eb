"""Who did it: what the API sets in motion names the token (``api:<name>``) with its tenant and
the request's id, restores, deletes, forgets and scrubs included; the CLI, which has no
authenticated identity, says so and keeps what it claims apart from what is proven."""

import hashlib
from collections.abc import AsyncIterator, Iterable
from types import SimpleNamespace
from typing import Any

import pytest
from fastapi import Response

from schemas.events import AuditRecord, DeleteRequest, Event, ReplicaWritten, object_id_for
from topics import AUDIT, TopicSpec
from workers.api import objects
from workers.api.tokens import ROLE_SCOPES, Principal
from workers.client import identity, ops, restore

DATA = b"who did it" * 100
OBJECT_ID = object_id_for("acme", "a.txt")
ALICE = Principal("alice", "acme", ROLE_SCOPES["writer"] | {"forget"})


def version() -> dict[str, Any]:
    return {
        "_id": f"{OBJECT_ID}:1",
        "object_id": OBJECT_ID,
        "version": 1,
        "tenant": "acme",
        "name": "a.txt",
        "state": "verified",
        "targets": ["s3", "gcs"],
        "key": "acme/a.txt/v1",
        "key_id": "kid",
        "size": len(DATA),
        "plaintext_sha256": hashlib.sha256(DATA).hexdigest(),
        "ciphertext_size": len(DATA) + 100,
        "ciphertext_sha256": "0" * 64,
        "replicas": {t: {"key": "acme/a.txt/v1", "verified_at": 1} for t in ("s3", "gcs")},
    }


@pytest.fixture
def sent(monkeypatch: pytest.MonkeyPatch) -> list[tuple[TopicSpec, Event]]:
    """Every event the client functions would produce, instead of producing it."""
    captured: list[tuple[TopicSpec, Event]] = []

    async def produce_all(_: object, messages: Iterable[tuple[TopicSpec, Event]]) -> int:
        captured.extend(messages)
        return len(captured)

    async def produce_events(settings: object, topic: TopicSpec, events: Iterable[Event]) -> int:
        return await produce_all(settings, [(topic, e) for e in events])

    monkeypatch.setattr(ops, "produce_all", produce_all)
    monkeypatch.setattr(ops, "produce_events", produce_events)
    monkeypatch.setattr(restore, "produce_all", produce_all)
    return captured


def svc() -> Any:
    async def versions(object_id: str) -> list[dict[str, Any]]:
        return [version()] if object_id == OBJECT_ID else []

    async def insert_one(doc: dict[str, Any]) -> None:
        kept.append(doc)

    async def no_holds() -> AsyncIterator[dict[str, Any]]:
        return
        yield

    kept: list[dict[str, Any]] = []
    db = {
        "removal_requests": SimpleNamespace(insert_one=insert_one, kept=kept),
        "holds": SimpleNamespace(find=lambda *_, **__: no_holds()),  # nothing is held
    }
    state = SimpleNamespace(objects=versions, db=db)
    deps = SimpleNamespace(stores={}, data_keys=None)
    return SimpleNamespace(settings=None, state=state, deps=deps, tiering=None)


def audit_records(sent: list[tuple[TopicSpec, Event]]) -> list[AuditRecord]:
    return [e for t, e in sent if t is AUDIT and isinstance(e, AuditRecord)]


def by_alice(record: AuditRecord, request_id: str) -> bool:
    return (
        record.actor == "api:alice"
        and record.correlation_id == request_id
        and record.detail["tenant"] == "acme"
        and record.detail["request_id"] == request_id
    )


@pytest.mark.parametrize("forget", [False, True])
async def test_an_api_delete_or_forget_names_the_token_tenant_and_request(
    sent: list[tuple[TopicSpec, Event]], forget: bool
) -> None:
    service, response = svc(), Response()
    answer = await objects.delete_object(
        OBJECT_ID, ALICE, service, "req-1", response, forget=forget
    )
    assert answer.request_id == "req-1" and response.headers["Location"] == answer.status
    (kept,) = service.state.db["removal_requests"].kept
    assert kept["actor"] == "api:alice" and kept["_id"] == "req-1"
    (intent,) = audit_records(sent)
    assert intent.action == ("forget" if forget else "delete") + ".requested"
    assert by_alice(intent, "req-1")
    (request,) = [e for _, e in sent if isinstance(e, DeleteRequest)]
    assert request.actor == "api:alice"


async def test_an_api_scrub_names_the_token_tenant_and_request(
    sent: list[tuple[TopicSpec, Event]],
) -> None:
    answer = await objects.verify_object(OBJECT_ID, ALICE, svc(), "req-2")
    assert answer.replicas == 2
    (asked,) = audit_records(sent)
    assert asked.action == "scrub" and by_alice(asked, "req-2")
    scrubs = [e for _, e in sent if isinstance(e, ReplicaWritten)]
    assert {(e.target, e.actor, e.correlation_id) for e in scrubs} == {
        ("s3", "api:alice", "req-2"),
        ("gcs", "api:alice", "req-2"),
    }


async def test_an_api_restore_names_the_token_tenant_and_request(
    sent: list[tuple[TopicSpec, Event]], monkeypatch: pytest.MonkeyPatch
) -> None:
    async def plaintext() -> AsyncIterator[bytes]:
        yield DATA

    async def open_plaintext(*_: object) -> tuple[str, AsyncIterator[bytes], dict[str, str]]:
        return "s3", plaintext(), {}

    monkeypatch.setattr(objects, "open_plaintext", open_plaintext)
    reader = Principal("bob", "acme", ROLE_SCOPES["reader"])
    answer = await objects.get_content(OBJECT_ID, reader, svc(), "req-3")
    assert b"".join([c async for c in answer.body_iterator]) == DATA  # type: ignore[misc]
    (record,) = audit_records(sent)
    assert (record.action, record.outcome, record.actor) == ("restore", "ok", "api:bob")
    assert record.detail["request_id"] == record.correlation_id == "req-3"
    assert record.detail["tenant"] == "acme"
    assert {e.actor for _, e in sent} == {"api:bob"}  # the access event too


def test_the_cli_says_it_is_unauthenticated_and_keeps_the_claim_apart(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr("getpass.getuser", lambda: "root")
    monkeypatch.setattr("socket.gethostname", lambda: "box")
    actor = identity.cli_actor()
    assert actor.name == "cli:unauthenticated(claimed root@box)"
    assert actor.detail() == {}  # no tenant, no request: nothing is claimed as proven
    assert actor.run_id() != actor.run_id()  # each operation its own correlation id


def test_an_api_actor_keeps_its_request_id_for_every_record() -> None:
    actor = ALICE.actor("req-4")
    assert actor.name == "api:alice" and actor.run_id() == "req-4"
    assert actor.detail() == {"tenant": "acme", "request_id": "req-4"}
