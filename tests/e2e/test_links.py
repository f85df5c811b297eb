"""Share links against a real ``movingdata api``, real workers and services: a link serves one
version's bytes bit for bit to a client with no bearer token, each use is in the object's
audit trail under the link's id naming who made it, a tampered signature is 404, and a
revoked or expired link is 410."""

import json
import os
from datetime import UTC, datetime
from typing import Any

import httpx

from tests.e2e.conftest import bearer, is_problem, put_verified, token
from tests.pipeline import Pipeline
from tests.waiting import wait_for
from workers.client import links
from workers.client.identity import Actor
from workers.client.state import State


async def test_a_link_serves_one_version_without_a_token_until_revoked_or_expired(
    pipeline: Pipeline, api: str, state: State
) -> None:
    writer = bearer(token(pipeline, "sharer", "writer"))
    reader = bearer(token(pipeline, "looker", "reader"))
    stranger = bearer(token(pipeline, "stranger", "writer", tenant="acme"))
    first, second = os.urandom(300_000), os.urandom(1_000)
    async with httpx.AsyncClient(base_url=api, timeout=300) as http, httpx.AsyncClient() as anyone:
        object_id = await put_verified(http, "reports/q4 résumé.pdf", first, writer)
        await put_verified(http, "reports/q4 résumé.pdf", second, writer)
        asked = {"version": 1, "expires": "1h", "note": "for the auditors"}
        refused = await http.post(f"/v1/objects/{object_id}/links", json=asked, headers=reader)
        assert is_problem(refused, 403), refused.text
        made = await http.post(f"/v1/objects/{object_id}/links", json=asked, headers=writer)
        assert made.status_code == 201, made.text
        link = made.json()
        url, link_id = link["url"], link["link_id"]
        assert url.startswith(f"{api}/v1/links/{link_id}?") and link["version"] == 1

        whole = await anyone.get(url, timeout=300)
        assert whole.status_code == 200, whole.text
        assert whole.content == first
        disposition = "attachment; filename*=UTF-8''q4%20r%C3%A9sum%C3%A9.pdf"
        assert whole.headers["content-disposition"] == disposition
        part = await anyone.get(url, headers={"Range": "bytes=10-19"})
        assert part.status_code == 206 and part.content == first[10:20]

        async def trail() -> list[dict[str, Any]]:
            answer = await http.get(f"/v1/objects/{object_id}/audit", headers=writer)
            return answer.json()  # type: ignore[no-any-return]

        async def both_uses_audited() -> bool:
            uses = [r for r in await trail() if r["actor"] == f"link:{link_id}"]
            return len(uses) == 2

        await wait_for(both_uses_audited, timeout_s=60)
        uses = [r for r in await trail() if r["actor"] == f"link:{link_id}"]
        assert {(r["action"], r["outcome"], r["version"]) for r in uses} == {("restore", "ok", 1)}
        assert {r["detail"]["shared_by"] for r in uses} == {"api:sharer"}
        assert sorted(r["detail"]["bytes"] for r in uses) == [10, len(first)]
        made_by = [r for r in await trail() if r["action"] == "link.created"]
        assert [(r["actor"], r["detail"]["link"]) for r in made_by] == [("api:sharer", link_id)]

        listed = await http.get(f"/v1/objects/{object_id}/links", headers=reader)
        assert [(k["link_id"], k["uses"], k["note"]) for k in listed.json()] == [
            (link_id, 2, "for the auditors")
        ]

        signed = url.rsplit("sig=", 1)[1]
        tampered = url[: -len(signed)] + signed[::-1]
        assert is_problem(await anyone.get(tampered), 404)
        assert is_problem(await anyone.get(f"{api}/v1/links/nope?exp=1&sig=00"), 404)

        assert is_problem(await http.delete(f"/v1/links/{link_id}", headers=stranger), 404)
        revoked = await http.delete(f"/v1/links/{link_id}", headers=writer)
        assert revoked.status_code == 204, revoked.text
        gone = await anyone.get(url)
        assert is_problem(gone, 410) and "revoked" in gone.json()["detail"]

        # A link whose expiry has passed, made through the client function the API uses.
        past = datetime.fromtimestamp(int(datetime.now(UTC).timestamp()) - 1, UTC)
        doc = await state.object(object_id, 2)
        assert doc is not None
        key = links.signing_key(pipeline.settings)
        assert key is not None
        old = await links.create(pipeline.settings, state.db, doc, past, "", Actor("test"))
        expired = await anyone.get(links.url(api, old, key))
        assert is_problem(expired, 410) and "expired" in expired.json()["detail"]
        too_long = await http.post(
            f"/v1/objects/{object_id}/links", json={"expires": "30d"}, headers=writer
        )
        assert is_problem(too_long, 422) and "at most 168 hours" in too_long.json()["detail"]


async def test_the_cli_shares_lists_and_revokes_a_link_in_direct_mode(
    pipeline: Pipeline, api: str
) -> None:
    writer = bearer(token(pipeline, "putter", "writer"))
    data = os.urandom(5_000)
    async with httpx.AsyncClient(base_url=api, timeout=300) as http:
        object_id = await put_verified(http, "shared/a.bin", data, writer)
    made = pipeline.cli("share", "shared/a.bin", "--expires", "2h", "--json")
    assert made.returncode == 0, made.stderr
    link = json.loads(made.stdout)
    settings = pipeline.settings
    base = f"http://{settings.api_host}:{settings.api_port}"
    assert link["url"].startswith(f"{base}/v1/links/{link['link_id']}?")
    assert (link["object_id"], link["version"]) == (object_id, 1)
    assert link["created_by"].startswith("cli:unauthenticated(claimed ")
    url = api + link["url"].removeprefix(base)  # this test's API, not the default port
    async with httpx.AsyncClient(timeout=300) as anyone:
        got = await anyone.get(url)
        assert got.status_code == 200 and got.content == data

        listed = pipeline.cli("share", "list", object_id, "--json")
        assert listed.returncode == 0, listed.stderr
        assert [json.loads(line)["link_id"] for line in listed.stdout.splitlines()] == [
            link["link_id"]
        ]
        revoked = pipeline.cli("share", "revoke", link["link_id"])
        assert revoked.returncode == 0, revoked.stderr
        assert is_problem(await anyone.get(url), 410)
    unknown = pipeline.cli("share", "revoke", "nope")
    assert unknown.returncode != 0 and "no link nope" in unknown.stderr
    too_long = pipeline.cli("share", "shared/a.bin", "--expires", "8d")
    assert too_long.returncode != 0 and "at most 168 hours" in too_long.stderr
