"""``ls`` and ``show``: names, versions, states and replicas, in the same shapes through the
API and in direct mode."""

from typing import Any, Literal

import typer
from rich.table import Table

from schemas.events import TierName
from workers.cli.base import (
    DATA,
    api_failed,
    app,
    console,
    emit_json,
    errors,
    no_tenant,
    on_state,
    remote,
    resolved,
    run,
    settings,
)
from workers.client.remote import ApiError
from workers.core.versions import StateName

Store = Literal["s3", "azure", "gcs"]


@app.command(rich_help_panel=DATA)
def ls(
    prefix: str = typer.Argument("", help="Only names starting with this."),
    tenant: str | None = typer.Option(None, help="Direct mode only (default: default)."),
    state: StateName | None = typer.Option(None, help="Only names whose newest is in it."),
    store: Store | None = typer.Option(None, help="Only with a verified replica in this store."),
    tier: TierName | None = typer.Option(None, help="Only with a replica in this tier."),
    all_versions: bool = typer.Option(False, help="Every version, not just the newest."),
    limit: int = typer.Option(100, min=1, max=1000, help="Rows per page."),
    after: str | None = typer.Option(None, help="Continue after this name (the last page's)."),
    as_json: bool = typer.Option(
        False, "--json", help="One object per line; the next page's --after on stderr."
    ),
) -> None:
    """List objects by name: newest version, state, size, replicas."""
    asked = {
        "prefix": prefix or None,
        "state": state,
        "store": store,
        "tier": tier,
        "all_versions": all_versions or None,
        "limit": limit,
        "cursor": after,
    }
    api = remote()
    if api is not None:
        no_tenant(tenant)
        with api:
            try:
                page = api.json("list", params=asked)
            except ApiError as exc:
                api_failed(exc)
        rows, following = page["items"], page.get("next_cursor")
    else:
        rows, following = listed_direct(tenant or "default", asked)
    if as_json:
        for row in rows:
            emit_json(row)
        if following:
            errors.print(f'{{"next_after": "{following}"}}', highlight=False)
        return
    table = Table("name", "version", "state", "bytes", "replicas", "object id")
    for row in rows:
        table.add_row(
            row["name"],
            str(row["version"]),
            row["state"],
            str(row["size"] if row["size"] is not None else "-"),
            ",".join(row["replicas"]) or "-",
            row["object_id"],
        )
    console.print(table)
    if following:
        console.print(f"more: movingdata ls {prefix!r} --after {following!r}")


def listed_direct(tenant: str, asked: dict[str, Any]) -> tuple[list[dict[str, Any]], str | None]:
    """A page read from the database, in the API's row shape."""
    from workers.client.state import State
    from workers.core.versions import live_replicas

    async def go() -> Any:
        st = State(settings())
        try:
            return await st.listing(
                tenant=tenant,
                prefix=asked["prefix"] or "",
                state=asked["state"],
                store=asked["store"],
                tier=asked["tier"],
                all_versions=bool(asked["all_versions"]),
                limit=asked["limit"],
                after=asked["cursor"],
            )
        finally:
            await st.close()

    try:
        page = run(go())
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None
    rows = [
        {
            "object_id": doc["object_id"],
            "tenant": doc.get("tenant"),
            "name": doc.get("name"),
            "version": doc["version"],
            "state": doc.get("state", "pending"),
            "size": doc.get("size"),
            "replicas": list(live_replicas(doc)),
        }
        for doc in page.rows
    ]
    return rows, page.after


def object_view(ref: str, tenant: str | None) -> dict[str, Any]:
    """An object and every version, as the API's object view, through either door."""
    api = remote()
    if api is not None:
        no_tenant(tenant)
        with api:
            try:
                return api.resolve(ref)
            except ApiError as exc:
                api_failed(exc)
    from workers.api.objects import version_view
    from workers.catalog import covering

    object_id, docs = resolved(ref, tenant or "default")

    held = on_state(lambda state: covering(state.db, docs))
    return {
        "object_id": object_id,
        "tenant": docs[0].get("tenant", ""),
        "name": docs[0].get("name", ""),
        "versions": [version_view(d, held).model_dump(mode="json") for d in docs],
    }


@app.command(rich_help_panel=DATA)
def show(
    ref: str = typer.Argument(..., metavar="ID|NAME"),
    tenant: str | None = typer.Option(None, help="Direct mode only (default: default)."),
    as_json: bool = typer.Option(False, "--json", help="One version per line."),
) -> None:
    """Every version of an object: state, size, digest, replicas, tier, verification."""
    view = object_view(ref, tenant)
    for version in view["versions"]:
        if as_json:
            emit_json({k: view[k] for k in ("object_id", "tenant", "name")} | version)
            continue
        console.print(
            f"[bold]v{version['version']}[/bold] {version['state']} {view['name']} "
            f"{version.get('size')} bytes sha256={version.get('plaintext_sha256')} "
            f"({view['object_id']})"
        )
        table = Table(
            "target", "key", "verdict", "proven_at", "tier", "repaired_from", "removed_at"
        )
        for target, rep in sorted((version.get("replicas") or {}).items()):
            table.add_row(
                target,
                str(rep.get("key")),
                str(rep.get("verdict") or "-"),
                str(rep.get("proven_at") or rep.get("verified_at") or "-"),
                str(rep.get("tier") or "-"),
                str(rep.get("repaired_from") or "-"),
                str(rep.get("removed_at") or "-"),
            )
        console.print(table)
