"""``restore``: a verified replica decrypted into a file (or stdout, through the API)."""

import sys
from pathlib import Path
from typing import Any

import typer
from rich.progress import Progress

from workers.cli.base import (
    DATA,
    Code,
    api_failed,
    app,
    console,
    emit_json,
    errors,
    fail,
    load_tiering,
    no_tenant,
    picked,
    remote,
    run,
    settings,
)
from workers.cli.browse import Store
from workers.client.remote import ApiError, Remote

STDOUT = Path("-")


@app.command(rich_help_panel=DATA)
def restore(
    ref: str = typer.Argument(..., metavar="ID|NAME"),
    output: Path = typer.Option(..., "-o", "--output", help="A file; - for stdout (the API)."),
    source: Store | None = typer.Option(None, "--from", help="Only this replica."),
    version: int | None = typer.Option(None, help="A version; default the newest verified."),
    tenant: str | None = typer.Option(None, help="Direct mode only (default: default)."),
    force: bool = typer.Option(False, help="Overwrite the output file if it exists."),
    as_json: bool = typer.Option(False, "--json", help="What was restored, as one object."),
) -> None:
    """Decrypt a verified replica into a file (mode 600), checking the plaintext SHA-256; a
    replica that fails its checks is skipped for the next one."""
    api = remote()
    if api is not None:
        no_tenant(tenant)
        with api:
            done = restore_through_api(api, ref, output, source, version, force)
    elif output == STDOUT:
        fail("-o - (stdout) is read through the API: set a profile or MOVINGDATA_API_URL", 2)
    else:
        done = restore_direct(ref, output, source, version, tenant or "default", force)
    if as_json:
        emit_json(done)
    elif output != STDOUT:
        console.print(
            f"restored {done['name']} v{done['version']} from {done['replica']}: "
            f"{done['size']} bytes, sha256 {done['sha256']}"
        )


def restore_through_api(
    api: Remote, ref: str, output: Path, source: str | None, version: int | None, force: bool
) -> dict[str, Any]:
    """The API decrypts and checks the digest; this side checks it again against the strong
    ETag before the file takes its name (stdout cannot be taken back: the exit code says)."""
    from workers.client.restore import OutputExists, restored_file

    params = {"version": version, "replica": source}
    try:
        view = api.resolve(ref)
        if output == STDOUT:
            headers, sha256 = api.download(view["object_id"], params, sys.stdout.buffer)
            sys.stdout.buffer.flush()
            checked(headers.get("etag", ""), sha256)
        else:
            with restored_file(output, force) as fh:
                headers, sha256 = api.download(view["object_id"], params, fh)
                checked(headers.get("etag", ""), sha256)
    except ApiError as exc:
        api_failed(exc)
    except OutputExists as exc:
        fail(str(exc), Code.USAGE)
    return {
        "object_id": view["object_id"],
        "name": view["name"],
        "version": int(headers["x-version"]),
        "replica": headers.get("x-replica", ""),
        "size": int(headers["content-length"]),
        "sha256": sha256,
    }


def checked(etag: str, sha256: str) -> None:
    if etag.strip('"') != sha256:
        fail(f"the plaintext's SHA-256 {sha256} is not the version's {etag}: not restored")


def restore_direct(
    ref: str, output: Path, source: str | None, version: int | None, tenant: str, force: bool
) -> dict[str, Any]:
    """Read the replica from the store and decrypt it here (the fleet's reader credentials)."""
    from workers.client.identity import cli_actor
    from workers.client.restore import Rehydrating, RestoreFailed, record_restore, restore_best
    from workers.core.versions import RESTORABLE
    from workers.deps import build_deps

    s = settings()
    tiering = load_tiering(s)
    actor = cli_actor()
    doc = picked(ref, version, tenant)
    if doc.get("state") not in RESTORABLE:
        state = doc.get("state", "pending")
        fail(f"v{doc['version']} of {ref} is {state}: nothing to restore", Code.REFUSED)

    async def go() -> Any:
        deps = build_deps(s, "reader")
        try:
            with Progress(
                console=errors, transient=True, disable=not errors.is_terminal
            ) as progress:
                task = progress.add_task("restoring", total=doc.get("size"))
                restored, failed = await restore_best(
                    doc,
                    deps.stores,
                    deps.data_keys,
                    output,
                    tiering=tiering,
                    wanted=source,
                    force=force,
                    on_progress=lambda n: progress.advance(task, n),
                )
        except RestoreFailed as exc:
            await record_restore(s, doc, None, exc.failed, actor=actor)
            raise
        except Rehydrating as exc:
            await record_restore(s, doc, None, exc.failed, exc, actor=actor)
            raise
        finally:
            await deps.close()
        await record_restore(s, doc, restored, failed, actor=actor)
        return restored, failed

    restored, failed = run(go())
    for target, reason in failed.items():
        errors.print(f"[yellow]skipped[/yellow] the {target} replica: {reason}")
    return {
        "object_id": doc["object_id"],
        "name": doc.get("name"),
        "version": restored.version,
        "replica": restored.target,
        "size": restored.size,
        "sha256": restored.sha256,
    }
