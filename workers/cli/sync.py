"""``sync SRC``, ``sync status|list|cancel``: move a bucket's objects into MovingData through
the scan stage, in direct mode. ``sync SRC`` is ``sync start SRC``."""

import asyncio
import time
from typing import Any

import click
import typer
from typer.core import TyperGroup

from workers.cli.base import DATA, JSON, Code, app, console, emit_json, fail, run, said, settings


class StartByDefault(TyperGroup):
    """``sync SRC ...`` runs ``sync start SRC ...``; the include and exclude rules are taken
    from the arguments in the order given (click would group each option's values)."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if args and args[0] not in self.commands and not args[0].startswith("-"):
            args = ["start", *args]
        ctx.meta["sync_rules"] = rules_in_order(args)
        return super().parse_args(ctx, args)


def rules_in_order(args: list[str]) -> list[tuple[str, str]]:
    """``--include``/``--exclude`` values as (kind, glob), in command-line order."""
    rules = []
    for i, arg in enumerate(args):
        for kind in ("include", "exclude"):
            flag = f"--{kind}"
            if arg == flag and i + 1 < len(args):
                rules.append((kind, args[i + 1]))
            elif arg.startswith(f"{flag}="):
                rules.append((kind, arg[len(flag) + 1 :]))
    return rules


sync_app = typer.Typer(
    cls=StartByDefault,
    no_args_is_help=True,
    help="Sync a bucket into MovingData: `sync SRC --to ...`, then status, list, cancel.",
)
app.add_typer(sync_app, name="sync", rich_help_panel=DATA)


@sync_app.command()
def start(
    ctx: typer.Context,
    source: str = typer.Argument(
        ..., help="s3://bucket or s3://bucket/folder; azure://, gs:// alike."
    ),
    to: str | None = typer.Option(None, help="Targets. Default: MOVINGDATA_TARGETS."),
    tenant: str = typer.Option("default", help="The tenant the names are put in."),
    prefix: str = typer.Option("", help="Put before every name (a folder: 'archive/')."),
    include: list[str] = typer.Option([], help="Sync keys matching this glob (repeatable)."),
    exclude: list[str] = typer.Option([], help="Skip keys matching this glob (repeatable)."),
    delete: bool = typer.Option(False, help="Remove names gone from the source (as rm)."),
    checksum: bool = typer.Option(False, help="Compare content digests, not fingerprints."),
    dry_run: bool = typer.Option(False, help="Print the plan; move nothing."),
    wait: bool = typer.Option(False, help="Block until every planned name is done."),
    timeout: float = typer.Option(3600.0, help="Seconds --wait waits."),
    as_json: bool = JSON,
) -> None:
    """Start a sync job: the scan stage lists SRC page by page and puts what is new or
    changed (by size and the source's fingerprint), with --delete removing what is gone.
    Filters are rclone's: tried in order, the first match wins, any --include excludes the
    rest. --include and --exclude apply to keys relative to SRC's folder."""
    from workers.client.identity import cli_actor
    from workers.sync.control import first_page

    s = settings()
    rules = ctx.meta.get("sync_rules") or [("include", g) for g in include] + [
        ("exclude", g) for g in exclude
    ]
    try:
        first = first_page(
            source,
            to.split(",") if to else s.targets,
            tenant,
            prefix=prefix,
            rules=rules,
            delete=delete,
            checksum=checksum,
            actor=cli_actor().name,
        )
    except ValueError as exc:
        fail(one_line(exc), Code.USAGE)
    if dry_run:
        run(show_plan(first, as_json))
        return
    job = run(started(first))
    if not wait:
        said(as_json, job, f"{job['_id']}: syncing {job['source']}")
        return
    view = run(waited(job["_id"], timeout))
    if as_json:
        emit_json(view)
    else:
        console.print(summary(view), highlight=False)
    if not view["done"]:
        fail(f"{view['_id']}: not done after {timeout:.0f}s", Code.RETRY)
    if view["errors"]:
        raise typer.Exit(Code.PARTIAL)


def one_line(exc: ValueError) -> str:
    """A validation error's problems on one line."""
    errors = getattr(exc, "errors", None)
    if callable(errors):
        return "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in errors())
    return str(exc).replace("\n", "; ")


async def started(first: Any) -> dict[str, Any]:
    from workers.sync.control import start as start_job
    from workers.sync.jobs import SyncBook

    s = settings()
    book = SyncBook(s.mongo_url, s.mongo_database)
    try:
        return await start_job(s, first, book)
    finally:
        await book.close()


async def show_plan(first: Any, as_json: bool) -> None:
    from workers.sync.control import dry_run
    from workers.sync.jobs import SyncBook

    s = settings()
    book = SyncBook(s.mongo_url, s.mongo_database)
    try:
        async for name, action, size in dry_run(s, first, book):
            if as_json:
                emit_json({"name": name, "action": action.value, "size": size})
            else:
                console.print(f"{action.value:<9} {size:>12} {name}", highlight=False)
    finally:
        await book.close()


async def waited(job_id: str, timeout: float) -> dict[str, Any]:
    """The job's status once it is done, or when ``timeout`` has passed."""
    deadline = time.monotonic() + timeout
    while True:
        view = await viewed(job_id)
        if view["done"] or time.monotonic() > deadline:
            return view
        await asyncio.sleep(0.5)  # polling the fleet's progress: nothing to wake us


async def viewed(job_id: str) -> dict[str, Any]:
    from workers.client.state import Unknown
    from workers.sync.jobs import SyncBook

    s = settings()
    book = SyncBook(s.mongo_url, s.mongo_database)
    try:
        job = await book.job(job_id)
        if job is None:
            raise Unknown(f"no sync job {job_id!r}")
        return await book.status(job)
    finally:
        await book.close()


def summary(view: dict[str, Any]) -> str:
    c = view["counts"]
    return (
        f"{view['_id']} {view['state']}{' (done)' if view['done'] else ''}: {view['source']}"
        f" — seen {c['seen']}, new {c['new']}, changed {c['changed']},"
        f" unchanged {c['unchanged']}, moved {view['moved']}/{view['planned']}"
        f" ({c['bytes']} bytes), removed {view['removed']}/{c['delete']},"
        f" errors {view['errors']}"
    )


@sync_app.command()
def status(
    job: str = typer.Argument(..., help="A job id (sync-...)."), as_json: bool = JSON
) -> None:
    """A job's counters: names seen, planned, moved, bytes, removed, errors."""
    view = run(viewed(job))
    said(as_json, view, summary(view))


@sync_app.command("list")
def list_jobs(
    tenant: str | None = typer.Option(None, help="Only this tenant's jobs."),
    as_json: bool = JSON,
) -> None:
    """The newest jobs first."""
    from workers.sync.jobs import SyncBook

    async def go() -> list[dict[str, Any]]:
        s = settings()
        book = SyncBook(s.mongo_url, s.mongo_database)
        try:
            return [await book.status(job) for job in await book.jobs(tenant)]
        finally:
            await book.close()

    for view in run(go()):
        said(as_json, view, summary(view))


@sync_app.command()
def cancel(job: str = typer.Argument(..., help="A job id."), as_json: bool = JSON) -> None:
    """Stop a job still listing: no further page is planned (puts already sent go on)."""
    from datetime import UTC, datetime

    from workers.sync.jobs import SyncBook

    async def go() -> bool:
        s = settings()
        book = SyncBook(s.mongo_url, s.mongo_database)
        try:
            return await book.cancel(job, datetime.now(UTC))
        finally:
            await book.close()

    if not run(go()):
        fail(f"{job}: no such job listing", Code.NOT_FOUND)
    said(as_json, {"_id": job, "state": "cancelled"}, f"{job}: cancelled")
