"""``rm``, ``forget`` and ``scrub``, through the API or in direct mode."""

import sys
import time
from typing import Any

import typer

from workers.cli.base import (
    DATA,
    Code,
    api_failed,
    app,
    console,
    emit_json,
    fail,
    no_tenant,
    remote,
    resolved,
    run,
    settings,
)
from workers.client.remote import ApiError, Remote


def chosen_versions(
    docs: list[dict[str, Any]], ref: str, version: int | None, every: bool
) -> list[dict[str, Any]]:
    """The versions rm/forget act on: one (--version), all (--all-versions), or the newest."""
    from workers.client.state import Unknown, pick_version

    if every:
        return docs
    if version is None:
        return [docs[-1]]
    try:
        return [pick_version(docs, version, ref)]
    except Unknown as exc:
        fail(str(exc), Code.NOT_FOUND)


def remove_versions(
    ref: str,
    tenant: str | None,
    version: int | None,
    every: bool,
    mode: str,
    wait: bool,
    timeout: float,
    as_json: bool,
) -> None:
    """rm and forget: send the removals through the chain, then (by default) wait for them."""
    if version is not None and every:
        raise typer.BadParameter("--version and --all-versions exclude each other")
    api = remote()
    if api is not None:
        no_tenant(tenant)
        with api:
            try:
                outcome = remove_through_api(api, ref, version, every, mode, wait, timeout)
            except ApiError as exc:
                api_failed(exc)
    else:
        outcome = remove_direct(ref, tenant or "default", version, every, mode, wait, timeout)
    left = outcome.pop("left")
    if as_json:
        emit_json(outcome | {"left": left})
    label = ", ".join(f"v{n}" for n in outcome["versions"])
    if left:
        fail(f"{ref}: not yet removed everywhere: " + ", ".join(f"v{n}" for n in left), Code.RETRY)
    if as_json:
        return
    if not wait:
        console.print(f"{ref} {label}: {mode} requested")
        return
    kept = outcome["remain"]
    console.print(
        f"{ref} {label} {outcome['done']}: removed from {', '.join(outcome['targets'])}"
        + (f"; {', '.join('v' + str(n) for n in kept)} remain" if kept else "")
    )


def remove_through_api(
    api: Remote, ref: str, version: int | None, every: bool, mode: str, wait: bool, timeout: float
) -> dict[str, Any]:
    """DELETE, then poll the removal's status (its ``Location``) until done or ``timeout``."""
    view = api.resolve(ref)
    params = {"version": version, "all_versions": every or None, "forget": mode == "forget" or None}
    removal = api.json("delete", object_id=view["object_id"], params=params)
    status: dict[str, Any] = {"versions": []}
    deadline = time.monotonic() + timeout
    while wait:
        status = api.json("removal", object_id=view["object_id"], request_id=removal["request_id"])
        if status["status"] == "done" or time.monotonic() > deadline:
            break
        time.sleep(0.5)  # polling the API for a remote state; nothing to wake us
    chosen = set(removal["versions"])
    gone = ("deleted", "shredded")
    return {
        "object_id": view["object_id"],
        "name": view["name"],
        "mode": mode,
        "versions": removal["versions"],
        "done": "shredded" if mode == "forget" else "deleted",
        "targets": list(dict.fromkeys(t for v in status["versions"] for t in v["replicas"])),
        "left": [
            v["version"]
            for v in status["versions"]
            if not v["tombstoned"] or "pending" in v["replicas"].values()
        ],
        "remain": [
            v["version"]
            for v in view["versions"]
            if v["version"] not in chosen and v["state"] not in gone
        ],
        "request_id": removal["request_id"],
    }


def remove_direct(
    ref: str, tenant: str, version: int | None, every: bool, mode: str, wait: bool, timeout: float
) -> dict[str, Any]:
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

    async def go() -> list[dict[str, Any]]:
        state = State(s)
        try:
            return await wait_removed(
                state, chosen, "forget" if mode == "forget" else "delete", timeout
            )
        finally:
            await state.close()

    left = run(go()) if wait else []
    return {
        "object_id": docs[0]["object_id"],
        "name": docs[0].get("name"),
        "mode": mode,
        "versions": [d["version"] for d in chosen],
        "done": TOMBSTONE[mode],
        "targets": list(chosen[0]["targets"]),
        "left": [d["version"] for d in left],
        "remain": [
            d["version"]
            for d in docs
            if d not in chosen and d.get("state") not in ("deleted", "shredded")
        ],
    }


@app.command(rich_help_panel=DATA)
def rm(
    ref: str = typer.Argument(..., metavar="ID|NAME"),
    version: int | None = typer.Option(None, help="This version; default the newest."),
    all_versions: bool = typer.Option(False, help="Every version."),
    tenant: str | None = typer.Option(None, help="Direct mode only (default: default)."),
    wait: bool = typer.Option(True, help="Wait until every store holds nothing of it."),
    timeout: float = typer.Option(300.0, help="Seconds to wait."),
    as_json: bool = typer.Option(False, "--json", help="What was removed, as one object."),
) -> None:
    """Delete object versions: every store's replica removed, the data key destroyed."""
    remove_versions(ref, tenant, version, all_versions, "delete", wait, timeout, as_json)


@app.command(rich_help_panel=DATA)
def forget(
    ref: str = typer.Argument(..., metavar="ID|NAME"),
    version: int | None = typer.Option(None, help="This version; default the newest."),
    all_versions: bool = typer.Option(False, help="Every version."),
    tenant: str | None = typer.Option(None, help="Direct mode only (default: default)."),
    wait: bool = typer.Option(True, help="Wait until every store holds nothing of it."),
    timeout: float = typer.Option(300.0, help="Seconds to wait."),
    yes: bool = typer.Option(False, "--yes", help="Confirm: the data key is destroyed for good."),
    as_json: bool = typer.Option(False, "--json", help="What was shredded, as one object."),
) -> None:
    """Crypto-shred object versions: the tombstone first, then the key, then every replica.
    Nothing brings them back: it asks first, or takes --yes (the forget scope through the API)."""
    if not yes:
        if not sys.stdin.isatty():
            fail("forget destroys the data key for good: add --yes to confirm", Code.USAGE)
        typer.confirm(f"Crypto-shred {ref}? Nothing can bring it back", abort=True)
    remove_versions(ref, tenant, version, all_versions, "forget", wait, timeout, as_json)


@app.command("scrub", rich_help_panel=DATA)
def scrub_cmd(
    ref: str | None = typer.Argument(None, metavar="[ID|NAME]", help="One object; all if omitted."),
    tenant: str | None = typer.Option(None, help="Direct mode only (default: default)."),
    as_json: bool = typer.Option(False, "--json", help="The count, as one object."),
) -> None:
    """Re-verify replicas (read back, compare SHA-256, repair from a good copy)."""
    api = remote()
    if api is not None:
        no_tenant(tenant)
        with api:
            try:
                ids = (
                    [api.resolve(ref)["object_id"]]
                    if ref
                    else list(dict.fromkeys(row["object_id"] for row in api.pages({"limit": 1000})))
                )
                sent = sum(api.json("verify", object_id=i)["replicas"] for i in ids)
            except ApiError as exc:
                api_failed(exc)
    else:
        sent = scrub_direct(ref, tenant or "default")
    if as_json:
        emit_json({"replicas": sent})
    else:
        console.print(f"{sent} replicas sent to verify")


def scrub_direct(ref: str | None, tenant: str) -> int:
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
    return int(run(scrub(s, docs, actor=cli_actor())))
