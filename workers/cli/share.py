"""``share``: a signed, expiring URL serving one version's plaintext with no token
(``workers.client.links``); ``share list`` and ``share revoke``. Through the API (a profile
or ``MOVINGDATA_API_URL``) the API makes the link and its URL; in direct mode the link is
made in the database and its URL built on ``MOVINGDATA_API_PUBLIC_URL``, else on the API's
host and port."""

from datetime import UTC, datetime, timedelta
from typing import Any

import typer
from typer.core import TyperGroup

from workers.cli.base import (
    DATA,
    JSON,
    Code,
    api_failed,
    app,
    console,
    emit_json,
    errors,
    fail,
    no_tenant,
    on_state,
    picked,
    remote,
    resolved,
    run,
    said,
    settings,
)
from workers.client.remote import ApiError


class ShareGroup(TyperGroup):
    """``share REF ...`` is ``share create REF ...``: a first word naming no command is a ref."""

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:  # typer's own click's
        if args and args[0] not in self.commands and args[0] != "--help":
            args = ["create", *args]
        return super().parse_args(ctx, args)


share_app = typer.Typer(
    cls=ShareGroup,
    no_args_is_help=True,
    help="Share links: `share ID|NAME --expires 1h` prints a URL serving that version's "
    "plaintext to whoever holds it, with no token, until it expires or is revoked.",
)
app.add_typer(share_app, name="share", rich_help_panel=DATA)


@share_app.command("create")
def share_create(
    ref: str = typer.Argument(..., metavar="ID|NAME"),
    expires: str = typer.Option("1h", help="A duration (30m, 1h, 7d) or an ISO time."),
    version: int | None = typer.Option(None, help="A version; default the newest verified."),
    note: str = typer.Option("", help="Why or for whom; listed with the link."),
    tenant: str | None = typer.Option(None, help="Direct mode only (default: default)."),
    as_json: bool = JSON,
) -> None:
    """Make a link to a version and print its URL (also `share ID|NAME`)."""
    api = remote()
    if api is not None:
        no_tenant(tenant)
        with api:
            try:
                object_id = api.resolve(ref)["object_id"]
                body = {"version": version, "expires": expires, "note": note}
                made = api.json("create_link", object_id=object_id, json=body)
            except ApiError as exc:
                api_failed(exc)
        shown_link(made, as_json)
        return
    shown_link(share_direct(ref, expires, version, note, tenant or "default"), as_json)


def shown_link(link: dict[str, Any], as_json: bool) -> None:
    if as_json:
        emit_json(link)
        return
    until = link["expires_at"]
    errors.print(f"link {link['link_id']} to {link['name']} v{link['version']}, until {until}")
    console.print(link["url"], highlight=False)


def share_direct(
    ref: str, expires: str, version: int | None, note: str, tenant: str
) -> dict[str, Any]:
    """The link made in the database, with its URL, in the API's shape."""
    from workers.client import links
    from workers.client.identity import cli_actor
    from workers.client.state import State
    from workers.core.versions import RESTORABLE

    s = settings()
    key = links.signing_key(s)
    if key is None:
        fail("share links are off: MOVINGDATA_LINK_KEY is not set (`stack up` makes one)")
    doc = picked(ref, version, tenant)
    if doc.get("state") not in RESTORABLE:
        status = doc.get("state", "pending")
        fail(f"v{doc['version']} of {ref} is {status}: nothing to share", Code.REFUSED)
    try:
        longest = timedelta(seconds=s.link_max_expiry_s)
        expires_at = links.expiry(expires, datetime.now(UTC), longest)
    except links.LinkError as exc:
        fail(str(exc), Code.USAGE)

    async def go() -> dict[str, Any]:
        state = State(s)
        try:
            return await links.create(s, state.db, doc, expires_at, note, cli_actor())
        finally:
            await state.close()

    link = run(go())
    url = links.url(s.api_public_url or f"http://{s.api_host}:{s.api_port}", link, key)
    return {"link_id": link.pop("_id"), **link, "url": url}


@share_app.command("list")
def share_list(
    ref: str = typer.Argument(..., metavar="ID|NAME"),
    tenant: str | None = typer.Option(None, help="Direct mode only (default: default)."),
    as_json: bool = typer.Option(False, "--json", help="One JSON object a line, a link each."),
) -> None:
    """An object's links, live or not: version, expiry, revocation, uses."""
    from rich.table import Table

    from workers.client import links

    api = remote()
    if api is not None:
        no_tenant(tenant)
        with api:
            try:
                found = api.json("list_links", object_id=api.resolve(ref)["object_id"])
            except ApiError as exc:
                api_failed(exc)
    else:
        object_id, _ = resolved(ref, tenant or "default")

        listed = on_state(lambda state: links.of_object(state.db, object_id))
        found = [{"link_id": link.pop("_id"), **link} for link in listed]
    if as_json:
        for link in found:
            emit_json(link)
        return

    def when(at: datetime | str | None) -> str:
        if isinstance(at, str):
            at = datetime.fromisoformat(at)
        return f"{at:%Y-%m-%d %H:%M:%S}" if at else "-"

    table = Table("link", "version", "expires", "revoked", "uses", "last used", "by", "note")
    for link in found:
        table.add_row(
            link["link_id"], str(link["version"]), when(link["expires_at"]),
            when(link["revoked_at"]), str(link["uses"]), when(link["last_used_at"]),
            link["created_by"], link["note"],
        )  # fmt: skip
    console.print(table)


@share_app.command("revoke")
def share_revoke(link_id: str, as_json: bool = JSON) -> None:
    """Revoke a link: its URL answers 410 Gone from now on."""
    api = remote()
    if api is not None:
        with api:
            try:
                api.request("revoke_link", link_id=link_id)
            except ApiError as exc:
                api_failed(exc)
        said(as_json, {"link_id": link_id, "revoked": True}, f"link {link_id} revoked")
        return
    from workers.client import links
    from workers.client.identity import cli_actor
    from workers.client.state import State

    s = settings()

    async def go() -> bool:
        state = State(s)
        try:
            link = await links.find(state.db, link_id)
            if link is not None:
                await links.revoke(s, state.db, link, cli_actor())
            return link is not None
        finally:
            await state.close()

    if not run(go()):
        fail(f"no link {link_id}", Code.NOT_FOUND)
    said(as_json, {"link_id": link_id, "revoked": True}, f"link {link_id} revoked")
