"""The API's HTTP conventions that need no service: conditional reads, idempotency keys,
folders, problem types and the OpenAPI document (operation ids, the bearer scheme)."""

import re

import pytest
from fastapi import Response

from workers.api import problems
from workers.api.app import create_app
from workers.api.objects import IDEMPOTENCY_KEY, conditional, keyed, not_modified, readable
from workers.client.state import folder_of, past
from workers.settings import Settings

SHA = "ab" * 32
DOC = {"object_id": "o", "version": 3, "state": "verified", "size": 10, "plaintext_sha256": SHA}


@pytest.mark.parametrize(
    ("header", "matches"),
    [
        (None, False),
        (f'"{SHA}"', True),
        (f'"x", W/"{SHA}"', True),  # weak comparison for If-None-Match
        ("*", True),
        ('"other"', False),
    ],
)
def test_if_none_match(header: str | None, matches: bool) -> None:
    assert not_modified(header, f'"{SHA}"') is matches


def test_a_held_version_is_not_modified_and_if_range_needs_the_strong_etag() -> None:
    held = conditional(DOC, "bytes=0-1", f'"{SHA}"', None)
    assert isinstance(held, Response) and held.status_code == 304
    assert held.headers["etag"] == f'"{SHA}"' and held.headers["x-version"] == "3"
    assert conditional(DOC, "bytes=0-1", None, f'"{SHA}"') == "bytes=0-1"
    assert conditional(DOC, "bytes=0-1", None, f'W/"{SHA}"') is None  # the whole body
    assert conditional(DOC, "bytes=0-1", None, "Sat, 05 Dec 2026 10:00:00 GMT") is None
    assert conditional(DOC, None, '"other"', None) is None


@pytest.mark.parametrize(
    ("state", "kind"),
    [
        ("pending", problems.PENDING),
        ("deleted", problems.TOMBSTONED),
        ("shredded", problems.TOMBSTONED),
        ("lost", "about:blank"),
    ],
)
def test_an_unreadable_version_says_why_in_its_type(state: str, kind: str) -> None:
    with pytest.raises(problems.Problem) as refused:
        readable({**DOC, "state": state})
    assert (refused.value.status, refused.value.kind) == (409, kind)


def test_an_idempotency_key_is_the_tenants_own_request_id() -> None:
    assert keyed("a", "k-1") == keyed("a", '"k-1"') != keyed("b", "k-1")
    assert re.fullmatch(r"[0-9a-f]{32}", keyed("a", "k-1"))
    assert re.match(IDEMPOTENCY_KEY, '"8e03978e-40d5-43e8-bc93-6894a57f9324"')
    assert not re.match(IDEMPOTENCY_KEY, "a b") and not re.match(IDEMPOTENCY_KEY, "x" * 129)


def test_folders_under_a_prefix() -> None:
    assert folder_of("a/b/c.txt", "", "/") == "a/"
    assert folder_of("a/b/c.txt", "a/", "/") == "a/b/"
    assert folder_of("a/c.txt", "a/", "/") is None
    assert past("a/") == "a0" and past("a/") > "a/zzz"


def test_every_operation_has_an_explicit_id_and_the_bearer_scheme(settings: Settings) -> None:
    document = create_app(settings).openapi()
    assert document["components"]["securitySchemes"]["HTTPBearer"]["scheme"] == "bearer"
    ids = [op["operationId"] for path in document["paths"].values() for op in path.values()]
    assert all(re.fullmatch(r"[a-z]+(?:[A-Z][a-z]*)*", i) for i in ids), ids
    assert len(set(ids)) == len(ids)
    assert {"putObject", "getContent", "headContent", "getObjectByName"} <= set(ids)
