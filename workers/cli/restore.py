"""``restore``: a verified replica decrypted into a file."""

from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer
from rich.progress import Progress

if TYPE_CHECKING:
    pass

from workers.cli.base import app, console, errors, fail, load_tiering, picked, run, settings


@app.command()
def restore(
    ref: str = typer.Argument(..., metavar="ID|NAME"),
    output: Path = typer.Option(..., "-o", "--output"),
    source: str | None = typer.Option(None, "--from", help="Only this replica: s3, azure, gcs."),
    version: int | None = typer.Option(None, help="A version; default the newest verified."),
    tenant: str = "default",
    force: bool = typer.Option(False, help="Overwrite the output file if it exists."),
) -> None:
    """Decrypt a verified replica into a file (mode 600), checking the plaintext SHA-256; a
    replica that fails its checks is skipped for the next one."""
    from workers.client.identity import cli_actor
    from workers.client.restore import Rehydrating, RestoreFailed, record_restore, restore_best
    from workers.core.versions import RESTORABLE
    from workers.deps import build_deps

    s = settings()
    tiering = load_tiering(s)
    actor = cli_actor()
    doc = picked(ref, version, tenant)
    if doc.get("state") not in RESTORABLE:
        fail(f"v{doc['version']} of {ref} is {doc.get('state', 'pending')}: nothing to restore")

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
    console.print(
        f"restored {doc.get('name')} v{restored.version} from {restored.target}: "
        f"{restored.size} bytes, sha256 {restored.sha256}"
    )
