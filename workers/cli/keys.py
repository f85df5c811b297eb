"""Operator commands: key-encryption keys and the key registry."""

from pathlib import Path

import typer

from workers.cli.base import JSON, OPERATOR, app, fail, run, said, settings

keys_app = typer.Typer(no_args_is_help=True, help="Key-encryption keys and data keys.")
app.add_typer(keys_app, name="keys", rich_help_panel=OPERATOR)


@keys_app.command("rotate")
def keys_rotate(
    disable_old: bool = typer.Option(False, help="Then refuse unwraps by older KEK versions."),
    as_json: bool = JSON,
) -> None:
    """Add a KEK version and re-wrap every data key under it (no ciphertext is rewritten)."""
    from workers.client.identity import cli_actor
    from workers.client.ops import audit_key_event
    from workers.deps import build_deps
    from workers.kms.keyregistry import rotate_all

    s = settings()
    actor = cli_actor()

    async def go() -> tuple[str, int]:
        deps = build_deps(s, "admin")
        try:
            newest, records = await rotate_all(deps.registry, deps.kek, disable_old=disable_old)
            for record in records:
                await audit_key_event(
                    s, record.object_id, record.version, "key.rewrapped", newest, actor=actor
                )
            return newest, len(records)
        finally:
            await deps.close()

    newest, count = run(go())
    said(
        as_json, {"rewrapped": count, "kek": newest}, f"{count} data keys re-wrapped under {newest}"
    )


@keys_app.command("backup")
def keys_backup(path: Path, as_json: bool = JSON) -> None:
    """Write the key registry (every wrapped data key and tombstone) to PATH, mode 600."""
    from workers.kms.keyregistry import MongoKeyRegistry

    s = settings()
    if path.exists():
        fail(f"{path} exists; a backup never overwrites a file")

    async def go() -> int:
        registry = MongoKeyRegistry(s.mongo_url, s.mongo_database)
        try:
            return await registry.backup(path)
        finally:
            await registry.close()

    written = run(go())
    said(
        as_json, {"records": written, "path": str(path)}, f"{written} key records written to {path}"
    )


@keys_app.command("restore")
def keys_restore(path: Path, as_json: bool = JSON) -> None:
    """Put back the records of a backup that the registry lacks (present ones are kept)."""
    from workers.kms.keyregistry import MongoKeyRegistry

    s = settings()
    if not path.is_file():
        fail(f"no backup file {path}")

    async def go() -> tuple[int, int]:
        registry = MongoKeyRegistry(s.mongo_url, s.mongo_database)
        try:
            return await registry.restore(path)
        finally:
            await registry.close()

    restored, present = run(go())
    said(
        as_json,
        {"restored": restored, "present": present},
        f"{restored} key records restored, {present} already present",
    )
