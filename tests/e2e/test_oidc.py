"""Real identity end to end: a ``movingdata api`` process, real workers, and an identity token
the local stack's OpenBao mints. A version the token's user puts names them as its requester
(``api:oidc:<sub>``), in the tenant their claims name; the audit trail records what they read
and scrub as theirs."""

from typing import Any

import httpx

from tests.e2e.conftest import bearer, put_verified
from tests.identity import Identities, identities
from tests.pipeline import Pipeline
from tests.waiting import wait_for

__all__ = ["identities"]


async def test_what_an_identity_puts_and_reads_is_recorded_as_its_subject(
    pipeline: Pipeline, api: str, identities: Identities, unique: str
) -> None:
    alice = identities.mint({"tenant": unique, "scopes": "writer"})
    actor = f"api:oidc:{alice.subject}"
    headers = bearer(alice.token)
    async with httpx.AsyncClient(base_url=api, timeout=300) as http:
        object_id = await put_verified(http, "hers.txt", b"alice's data" * 100, headers)
        read = await http.get(f"/v1/objects/{object_id}/content", headers=headers)
        assert read.status_code == 200 and read.content == b"alice's data" * 100
        scrubbed = await http.post(f"/v1/objects/{object_id}/verify", headers=headers)
        assert scrubbed.status_code == 202, scrubbed.text
        shown = (await http.get(f"/v1/objects/{object_id}", headers=headers)).json()
        assert shown["tenant"] == unique
        assert shown["versions"][0]["requested_by"] == actor  # the put's requester

        async def trail() -> list[dict[str, Any]]:
            answer = await http.get(f"/v1/objects/{object_id}/audit", headers=headers)
            return answer.json()  # type: ignore[no-any-return]

        async def recorded() -> bool:
            return {"restore", "scrub"} <= {r["action"] for r in await trail()}

        await wait_for(recorded, timeout_s=120)
        records = await trail()
    assert {r["action"] for r in records if r["actor"] == actor} >= {"restore", "scrub"}
    (restore,) = [r for r in records if r["action"] == "restore"]
    assert (restore["detail"]["tenant"], restore["correlation_id"]) == (
        unique,
        read.headers["x-request-id"],
    )
