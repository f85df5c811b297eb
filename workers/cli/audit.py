"""The audit trail: ``audit tail`` (data) and ``audit verify`` (operator)."""

from typing import TYPE_CHECKING, Any

import typer

if TYPE_CHECKING:
    pass

from workers.cli.base import app, console, emit_json, fail, run, settings

audit_app = typer.Typer(no_args_is_help=True, help="The audit trail.")
app.add_typer(audit_app, name="audit")


@audit_app.command("tail")
def audit_tail(
    from_beginning: bool = False,
    limit: int | None = None,
    idle: float | None = typer.Option(None, help="Stop after this many quiet seconds."),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Print audit records as they arrive."""
    from workers.client.kafka import tail_audit

    async def tail() -> None:
        records = tail_audit(settings(), from_beginning=from_beginning, limit=limit, idle_s=idle)
        async for record in records:
            if as_json:
                emit_json(record.model_dump(mode="json"))
            else:
                console.print(
                    f"{record.produced_at:%H:%M:%S} {record.object_id} v{record.version} "
                    f"{record.stage:9} {record.action:18} {record.outcome}"
                )

    run(tail())


@audit_app.command("verify")
def audit_verify(
    ref: str | None = typer.Argument(None, metavar="[ID|NAME]", help="One object's chain only."),
    tenant: str = "default",
) -> None:
    """Check the signed checkpoint log (continuity, signature, the signed heads' Merkle
    root, against its copies on the audit topic and, where MOVINGDATA_AUDIT_LOCK_BUCKET is
    set, in the object-locked bucket) and every audit hash chain (or one: its signed head
    proven in the latest checkpoint by its inclusion path) against its head and its signed
    head; name what is broken, and exit 1 if anything is.
    An operator command: it reads the database, the broker and the signing key directly."""
    from workers.audit import lockcopy
    from workers.audit.checkpoints import CHAIN
    from workers.audit.verify import verify
    from workers.client.kafka import audit_records_to_end
    from workers.client.state import State, Unknown
    from workers.kms.keys import open_signer

    s = settings()

    async def go() -> Any:
        state = State(s)
        signer = open_signer(s, "reader")
        try:
            only = (await state.resolve(ref, tenant))[0] if ref else None
            published = [r.detail async for r in audit_records_to_end(s) if r.object_id == CHAIN]
            locked = [r async for r in lockcopy.records(s)] if s.audit_lock_bucket else []
            return await verify(state.db, signer, published, only, locked)
        finally:
            await state.close()
            await signer.close()

    try:
        found = run(go())
    except Unknown as exc:
        fail(str(exc))
    for object_id, problem in found.broken.items():
        console.print(f"[red]broken[/red] {object_id}: {problem}")
    if found.broken:
        raise typer.Exit(1)
    console.print(f"{found.chains} audit chains intact; {found.log}")
