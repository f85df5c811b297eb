"""``ls`` and ``show``: names, versions, states and replicas."""

from typing import TYPE_CHECKING, Any

import typer
from rich.table import Table

if TYPE_CHECKING:
    pass

from workers.cli.base import app, console, emit_json, resolved, run, settings


@app.command()
def ls(
    prefix: str = typer.Argument("", help="Only names starting with this."),
    tenant: str = "default",
    state: str | None = typer.Option(
        None, help="pending, verified, degraded, lost, failed, deleted or shredded."
    ),
    store: str | None = typer.Option(None, help="Only with a verified replica in this store."),
    tier: str | None = typer.Option(None, help="Only with a replica in this tier."),
    all_versions: bool = typer.Option(False, help="Every version, not just the newest."),
    limit: int = typer.Option(100, min=1, max=10_000, help="Rows per page."),
    after: str | None = typer.Option(None, help="Continue after this name (the last page's)."),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """List objects by name: newest version, state, size, replicas."""
    from workers.client.state import State

    async def go() -> Any:
        st = State(settings())
        try:
            return await st.listing(
                tenant=tenant,
                prefix=prefix,
                state=state,
                store=store,
                tier=tier,
                all_versions=all_versions,
                limit=limit,
                after=after,
            )
        finally:
            await st.close()

    try:
        page = run(go())
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None
    if as_json:
        for doc in page.rows:
            emit_json(listed(doc))
        if page.after:
            emit_json({"next_after": page.after})
        return
    table = Table("name", "version", "state", "bytes", "replicas", "object id")
    for doc in page.rows:
        row = listed(doc)
        table.add_row(
            row["name"],
            str(row["version"]),
            row["state"],
            str(row["size"] if row["size"] is not None else "-"),
            ",".join(row["replicas"]) or "-",
            row["object_id"],
        )
    console.print(table)
    if page.after:
        console.print(f"more: movingdata ls {prefix!r} --after {page.after!r}")


def listed(doc: dict[str, Any]) -> dict[str, Any]:
    from workers.core.versions import live_replicas

    return {
        "name": doc.get("name"),
        "version": doc["version"],
        "state": doc.get("state", "pending"),
        "size": doc.get("size"),
        "replicas": list(live_replicas(doc)),
        "object_id": doc["object_id"],
        "tenant": doc.get("tenant"),
    }


@app.command()
def show(
    ref: str = typer.Argument(..., metavar="ID|NAME"),
    tenant: str = "default",
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Every version of an object: state, size, digest, replicas, tier, verification."""
    from workers.core.versions import verdict

    _, docs = resolved(ref, tenant)
    for doc in docs:
        if as_json:
            emit_json(doc)
            continue
        console.print(
            f"[bold]v{doc['version']}[/bold] {doc.get('state', 'pending')} {doc.get('name')} "
            f"{doc.get('size')} bytes sha256={doc.get('plaintext_sha256')} ({doc['_id']})"
        )
        table = Table(
            "target", "key", "verdict", "proven_at", "tier", "repaired_from", "removed_at"
        )
        for target, rep in sorted((doc.get("replicas") or {}).items()):
            table.add_row(
                target,
                str(rep.get("key")),
                str(verdict(rep) or "-"),
                str(rep.get("proven_at") or rep.get("verified_at") or "-"),
                str(rep.get("tier") or "-"),
                str(rep.get("repaired_from") or "-"),
                str(rep.get("removed_at") or "-"),
            )
        console.print(table)
