"""The audit trail: ``audit tail`` (data) and ``audit verify`` (operator)."""

import time
from collections import deque
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import typer

from workers.cli.base import (
    DATA,
    OPERATOR,
    api_failed,
    app,
    console,
    emit_json,
    fail,
    remote,
    run,
    settings,
)
from workers.client.remote import ApiError, Remote

audit_app = typer.Typer(no_args_is_help=True, help="The audit trail.")
app.add_typer(audit_app, name="audit", rich_help_panel=DATA)
FIELDS: tuple[str, ...] = ("event_id", "object_id", "version", "produced_at", "actor")
FIELDS += ("correlation_id", "stage", "action", "outcome", "detail")
# A record the sink stored late may carry an earlier time than the last one seen: each poll
# looks this far back, and the ids seen (a bounded window) keep it from printing twice.
OVERLAP = timedelta(seconds=10)


@audit_app.command("tail")
def audit_tail(
    from_beginning: bool = False,
    limit: int | None = None,
    idle: float | None = typer.Option(None, help="Stop after this many quiet seconds."),
    as_json: bool = typer.Option(False, "--json", help="One record per line."),
) -> None:
    """Print audit records as they arrive: through the API, your tenant's objects' (read
    from the database the sink writes); in direct mode, every record on the audit topic."""

    def show(record: dict[str, Any]) -> None:
        if as_json:
            emit_json({k: record.get(k) for k in FIELDS})
            return
        at = datetime.fromisoformat(str(record["produced_at"]))
        console.print(
            f"{at:%H:%M:%S} {record['object_id']} v{record['version']} "
            f"{record['stage']:9} {record['action']:18} {record['outcome']}"
        )

    api = remote()
    if api is not None:
        with api:
            try:
                for n, record in enumerate(tail_through_api(api, from_beginning, idle), 1):
                    show(record)
                    if limit is not None and n >= limit:
                        break
            except ApiError as exc:
                api_failed(exc)
        return
    from workers.client.kafka import tail_audit

    async def tail() -> None:
        records = tail_audit(settings(), from_beginning=from_beginning, limit=limit, idle_s=idle)
        async for record in records:
            show(record.model_dump(mode="json"))

    run(tail())


def tail_through_api(
    api: Remote,
    from_beginning: bool,
    idle: float | None,
    clock: Callable[[], float] = time.monotonic,
    every: float = 1.0,
) -> Iterator[dict[str, Any]]:
    """Poll ``/v1/audit?since=`` and yield each record once, oldest first, until ``idle``
    seconds pass with nothing new (forever without ``idle``)."""
    since = datetime(1970, 1, 1, tzinfo=UTC) if from_beginning else datetime.now(UTC)
    seen: deque[str] = deque(maxlen=100_000)
    known: set[str] = set()
    quiet_since = clock()
    while True:
        page = api.json("audit", params={"since": since.isoformat(), "limit": 1000})
        fresh = [r for r in page["items"] if r["event_id"] not in known]
        for record in fresh:
            if len(seen) == seen.maxlen:
                known.discard(seen[0])
            seen.append(record["event_id"])
            known.add(record["event_id"])
            yield record
        if page["items"]:
            last = datetime.fromisoformat(page["items"][-1]["produced_at"])
            since = max(since, last - OVERLAP if fresh else last)
        if fresh:
            quiet_since = clock()
        elif idle is not None and clock() - quiet_since >= idle:
            return
        if len(page["items"]) < 1000:
            time.sleep(every)  # polling the API for new records; nothing to wake us


@audit_app.command("verify", rich_help_panel=OPERATOR)
def audit_verify(
    ref: str | None = typer.Argument(None, metavar="[ID|NAME]", help="One object's chain only."),
    tenant: str = "default",
    as_json: bool = typer.Option(False, "--json", help="The verdict as one object."),
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
    if as_json:
        emit_json({"chains": found.chains, "log": str(found.log), "broken": found.broken})
    for object_id, problem in found.broken.items() if not as_json else ():
        console.print(f"[red]broken[/red] {object_id}: {problem}")
    if found.broken:
        raise typer.Exit(1)
    if not as_json:
        console.print(f"{found.chains} audit chains intact; {found.log}")
