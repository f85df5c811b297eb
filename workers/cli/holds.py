"""``hold``, ``release`` and ``holds list``: retention and legal hold, through the API
(``/v1/objects/{id}/hold`` and ``/v1/holds``) with a profile or ``MOVINGDATA_API_URL``, else
in direct mode. While a hold is in force, ``rm`` and ``forget`` are refused."""

from datetime import UTC, datetime
from typing import Any

import typer
from rich.table import Table

from workers.cli.base import (
    DATA,
    api_failed,
    app,
    console,
    emit_json,
    fail,
    no_tenant,
    on_state,
    remote,
    resolved,
    run,
    settings,
)
from workers.client.remote import ApiError, Remote

holds_app = typer.Typer(no_args_is_help=True, help="Retention and legal holds.")
app.add_typer(holds_app, name="holds", rich_help_panel=DATA)
Ref = typer.Argument(None, metavar="[ID|NAME]", help="An object; or --prefix instead.")
Prefix = typer.Option(None, help="Every name of the tenant under it, later puts too.")
Version = typer.Option(None, help="This version; default the newest.")
Every = typer.Option(False, "--all-versions", help="Every version the object has now.")


def target(ref: str | None, prefix: str | None) -> None:
    if (ref is None) == (prefix is None):
        raise typer.BadParameter("name an object or a --prefix, one of them")


def versions(ref: str, tenant: str, version: int | None, every: bool) -> list[dict[str, Any]]:
    """The versions a hold or a release is on (a clear error for a version there is not)."""
    from workers.client.holds import chosen
    from workers.client.state import Unknown

    try:
        return chosen(resolved(ref, tenant)[1], version, every, ref)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None
    except Unknown as exc:
        fail(str(exc))


def from_api(view: dict[str, Any]) -> dict[str, Any]:
    """An API hold view in the shape the database holds (its times as datetimes)."""
    times = ("retain_until", "placed_at")
    return {
        k: datetime.fromisoformat(v) if k in times and isinstance(v, str) else v
        for k, v in view.items()
    }


def through_api(api: Remote, op: str, ref: str | None = None, **parts: Any) -> list[dict[str, Any]]:
    """One holds operation through the API (on the object ``ref`` names, if given)."""
    with api:
        try:
            if ref is not None:
                parts["object_id"] = api.resolve(ref)["object_id"]
            answer = api.json(op, **parts)
        except ApiError as exc:
            api_failed(exc)
    return [from_api(v) for v in (answer if isinstance(answer, list) else [answer])]


def scope_of(hold: dict[str, Any]) -> str:
    return (
        f"prefix {hold['prefix']!r}"
        if hold["kind"] == "prefix"
        else f"{hold['name']} v{hold['version']}"
    )


def described(hold: dict[str, Any]) -> str:
    until = hold.get("retain_until")
    what = [f"retained until {until:%Y-%m-%d %H:%M:%S} UTC"] if until else []
    what += ["legal hold"] if hold.get("legal_hold") else []
    return f"{scope_of(hold)}: {', '.join(what)}"


@app.command(rich_help_panel=DATA)
def hold(
    ref: str | None = Ref,
    prefix: str | None = Prefix,
    version: int | None = Version,
    all_versions: bool = Every,
    until: str | None = typer.Option(
        None, help="Retain until: an ISO date (UTC) or a duration (30d); extended, never shortened."
    ),
    legal: bool = typer.Option(False, help="A legal hold, until an admin releases it."),
    reason: str = "",
    tenant: str | None = typer.Option(None, help="Direct mode only (default: default)."),
) -> None:
    """Hold versions (or a prefix): no rm or forget while held, whoever asks."""
    from workers.api.tokens import TokenError, parse_expiry
    from workers.client.holds import HoldAsked, hold_prefix, hold_versions
    from workers.client.identity import cli_actor
    from workers.client.state import State

    target(ref, prefix)
    now = datetime.now(UTC)
    try:
        retain = parse_expiry(until, now) if until else None
    except TokenError as exc:
        raise typer.BadParameter(str(exc)) from None
    if retain is None and not legal:
        raise typer.BadParameter("ask for --until DATE, --legal, or both")
    api = remote()
    if api is not None:
        no_tenant(tenant)
        body: dict[str, Any] = {"legal_hold": legal, "reason": reason}
        body["retain_until"] = retain.isoformat() if retain else None
        if prefix is not None:
            placed = through_api(api, "hold_prefix", json=body | {"prefix": prefix})
        else:
            body |= {"version": version, "all_versions": all_versions}
            placed = through_api(api, "hold", str(ref), json=body)
        for one in placed:
            console.print(f"held {described(one)}")
        return
    tenant = tenant or "default"
    asked = HoldAsked(retain, legal, reason)
    s = settings()
    docs = versions(ref, tenant, version, all_versions) if ref is not None else []

    async def go() -> list[dict[str, Any]]:
        state = State(s)
        try:
            if prefix is not None:
                return [
                    await hold_prefix(
                        s, state.db, tenant, prefix, asked, actor=cli_actor(), now=now
                    )
                ]
            return await hold_versions(s, state.db, docs, asked, actor=cli_actor(), now=now)
        finally:
            await state.close()

    for placed in run(go()):
        console.print(f"held {described(placed)}")


@app.command(rich_help_panel=DATA)
def release(
    ref: str | None = Ref,
    prefix: str | None = Prefix,
    version: int | None = Version,
    all_versions: bool = Every,
    tenant: str | None = typer.Option(None, help="Direct mode only (default: default)."),
) -> None:
    """Release a legal hold (the admin scope through the API; audited); a retention stays
    until it passes."""
    from workers.client.holds import release as release_holds
    from workers.client.identity import cli_actor
    from workers.client.state import State
    from workers.core.holds import prefix_hold_id, version_hold_id

    target(ref, prefix)
    api = remote()
    if api is not None:
        no_tenant(tenant)
        if prefix is not None:
            freed = through_api(api, "release_prefix", params={"prefix": prefix})
        else:
            asked = {"version": version, "all_versions": all_versions or None}
            freed = through_api(api, "release", str(ref), params=asked)
        for one in freed:
            console.print(f"released the legal hold of {scope_of(one)}")
        return
    tenant = tenant or "default"
    if prefix is not None:
        ids = [prefix_hold_id(tenant, prefix)]
    else:
        chosen = versions(str(ref), tenant, version, all_versions)
        ids = [version_hold_id(d["object_id"], d["version"]) for d in chosen]
    s = settings()

    async def go() -> list[dict[str, Any]]:
        state = State(s)
        try:
            return await release_holds(s, state.db, ids, actor=cli_actor(), now=datetime.now(UTC))
        finally:
            await state.close()

    for released in run(go()):
        console.print(f"released the legal hold of {scope_of(released)}")


@holds_app.command("list")
def holds_list(
    tenant: str | None = typer.Option(None, help="Direct mode only (default: default)."),
    as_json: bool = typer.Option(False, "--json", help="JSON lines."),
) -> None:
    """The tenant's holds: prefixes', then versions'."""
    from workers.client.holds import listed
    from workers.core.versions import utc

    api = remote()
    if api is not None:
        no_tenant(tenant)
        found = through_api(api, "holds")
    else:  # MongoDB's times are naive UTC: they say so, as the API's do
        found = [
            {"id": h.pop("_id")}
            | {k: utc(v) if isinstance(v, datetime) else v for k, v in h.items()}
            for h in on_state(lambda state: listed(state.db, tenant or "default"))
        ]
    if as_json:
        for h in found:
            emit_json(h)
        return
    table = Table("held", "retained until (UTC)", "legal hold", "reason", "placed by")
    for h in found:
        until = h.get("retain_until")
        table.add_row(
            scope_of(h),
            f"{until:%Y-%m-%d %H:%M:%S}" if until else "",
            "yes" if h.get("legal_hold") else "",
            h.get("reason", ""),
            h.get("placed_by", ""),
        )
    console.print(table)
