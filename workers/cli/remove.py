"""``rm``, ``forget`` and ``scrub``."""

from typing import TYPE_CHECKING, Any

import typer

if TYPE_CHECKING:
    pass

from workers.cli.base import app, console, fail, resolved, run, settings


def chosen_versions(
    docs: list[dict[str, Any]], ref: str, version: int | None, every: bool
) -> list[dict[str, Any]]:
    """The versions rm/forget act on: one (--version), all (--all-versions), or the newest."""
    from workers.client.state import Unknown, pick_version

    if version is not None and every:
        raise typer.BadParameter("--version and --all-versions exclude each other")
    if every:
        return docs
    if version is None:
        return [docs[-1]]
    try:
        return [pick_version(docs, version, ref)]
    except Unknown as exc:
        fail(str(exc))
        raise


def remove_versions(
    ref: str, tenant: str, version: int | None, every: bool, mode: str, wait: bool, timeout: float
) -> None:
    """rm and forget: send the removals through the chain, then (by default) wait for them."""
    from workers.client.identity import cli_actor
    from workers.client.ops import TOMBSTONE, request_removal, wait_removed
    from workers.client.state import State

    s = settings()
    _, docs = resolved(ref, tenant)
    chosen = chosen_versions(docs, ref, version, every)
    todo = [d for d in chosen if d.get("state") not in ("shredded", TOMBSTONE[mode])]
    actor = cli_actor()
    reason = f"{'forget' if mode == 'forget' else 'rm'} by {actor.name}"
    if todo:
        run(request_removal(s, todo, mode, reason, actor=actor))
    label = ", ".join(f"v{d['version']}" for d in chosen)
    if not wait:
        console.print(f"{ref} {label}: {mode} requested")
        return

    async def go() -> list[dict[str, Any]]:
        state = State(s)
        try:
            return await wait_removed(
                state, chosen, "forget" if mode == "forget" else "delete", timeout
            )
        finally:
            await state.close()

    left = run(go())
    if left:
        fail(f"{ref}: not yet removed everywhere: " + ", ".join(f"v{d['version']}" for d in left))
    kept = [d for d in docs if d not in chosen and d.get("state") not in ("deleted", "shredded")]
    done = TOMBSTONE[mode]
    console.print(
        f"{ref} {label} {done}: removed from {', '.join(chosen[0]['targets'])}"
        + (f"; {', '.join('v' + str(d['version']) for d in kept)} remain" if kept else "")
    )


@app.command()
def rm(
    ref: str = typer.Argument(..., metavar="ID|NAME"),
    version: int | None = typer.Option(None, help="This version; default the newest."),
    all_versions: bool = typer.Option(False, help="Every version."),
    tenant: str = "default",
    wait: bool = typer.Option(True, help="Wait until every store holds nothing of it."),
    timeout: float = typer.Option(300.0, help="Seconds to wait."),
) -> None:
    """Delete object versions: every store's replica removed, the data key destroyed."""
    remove_versions(ref, tenant, version, all_versions, "delete", wait, timeout)


@app.command()
def forget(
    ref: str = typer.Argument(..., metavar="ID|NAME"),
    version: int | None = typer.Option(None, help="This version; default the newest."),
    all_versions: bool = typer.Option(False, help="Every version."),
    tenant: str = "default",
    wait: bool = typer.Option(True, help="Wait until every store holds nothing of it."),
    timeout: float = typer.Option(300.0, help="Seconds to wait."),
) -> None:
    """Crypto-shred object versions: the tombstone first, then the key, then every replica."""
    remove_versions(ref, tenant, version, all_versions, "forget", wait, timeout)


@app.command("scrub")
def scrub_cmd(
    ref: str | None = typer.Argument(None, metavar="[ID|NAME]", help="One object; all if omitted."),
    tenant: str = "default",
) -> None:
    """Re-verify replicas (read back, compare SHA-256, repair from a good copy)."""
    from workers.client.identity import cli_actor
    from workers.client.ops import scrub
    from workers.client.state import State

    s = settings()
    if ref is not None:
        docs = resolved(ref, tenant)[1]
    else:

        async def everything() -> list[dict[str, Any]]:
            state = State(s)
            try:
                return [doc async for doc in state.db["objects"].find({})]
            finally:
                await state.close()

        docs = run(everything())
    console.print(f"{run(scrub(s, docs, actor=cli_actor()))} replicas sent to verify")
