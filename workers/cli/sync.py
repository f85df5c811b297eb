"""``sync SRC``, ``sync status|list|cancel``: move a bucket's objects into MovingData through
the scan stage, through the API (``/v1/syncs``) with a profile or ``MOVINGDATA_API_URL``,
else in direct mode. ``sync SRC`` is ``sync start SRC``."""

import asyncio
import time
from typing import Any

import click
import typer
from typer.core import TyperGroup

from workers.cli.base import (
    DATA,
    JSON,
    Code,
    api_failed,
    app,
    console,
    emit_json,
    fail,
    no_tenant,
    remote,
    run,
    said,
    settings,
)
from workers.client.remote import ApiError, Remote


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
    tenant: str | None = typer.Option(None, help="Direct mode only (default: default)."),
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

    rules = ctx.meta.get("sync_rules") or [("include", g) for g in include] + [
        ("exclude", g) for g in exclude
    ]
    api = remote()
    if api is not None:
        no_tenant(tenant)
        body = {
            "source": source,
            "targets": to.split(",") if to else None,
            "prefix": prefix,
            "rules": [{"kind": kind, "glob": glob} for kind, glob in rules],
            "delete": delete,
            "checksum": checksum,
        }
        with api:
            if dry_run:
                for line in through(api, "plan_sync", json=body):
                    show_line(line, as_json)
                return
            job = through(api, "create_sync", json=body)
            view = polled(api, job["id"], timeout) if wait else job
        ended(view, wait, as_json, timeout)
        return
    s = settings()
    try:
        first = first_page(
            source,
            to.split(",") if to else s.targets,
            tenant or "default",
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
    ended(run(waited(job["id"], timeout)) if wait else job, wait, as_json, timeout)


def ended(view: dict[str, Any], wait: bool, as_json: bool, timeout: float) -> None:
    """The job as started, or as --wait left it (exit 5 if not done, 6 with errors)."""
    if not wait:
        said(as_json, view, f"{view['id']}: syncing {view['source']}")
        return
    said(as_json, view, summary(view))
    if not view["done"]:
        fail(f"{view['id']}: not done after {timeout:.0f}s", Code.RETRY)
    if view["errors"]:
        raise typer.Exit(Code.PARTIAL)


def through(api: Remote, op: str, **parts: Any) -> Any:
    try:
        return api.json(op, **parts)
    except ApiError as exc:
        api_failed(exc)


def polled(api: Remote, job_id: str, timeout: float) -> dict[str, Any]:
    """The job through the API once done, or when ``timeout`` has passed."""
    deadline = time.monotonic() + timeout
    while True:
        view: dict[str, Any] = through(api, "sync", job_id=job_id)
        if view["done"] or time.monotonic() > deadline:
            return view
        time.sleep(0.5)  # polling the API for the fleet's progress: nothing to wake us


def show_line(line: dict[str, Any], as_json: bool) -> None:
    if as_json:
        emit_json(line)
    else:
        console.print(f"{line['action']:<9} {line['size']:>12} {line['name']}", highlight=False)


def as_view(doc: dict[str, Any]) -> dict[str, Any]:
    """A job's document as the API shows it (``id``, not ``_id``)."""
    return {"id": doc["_id"], **{k: v for k, v in doc.items() if k != "_id"}}


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
        return as_view(await start_job(s, first, book))
    finally:
        await book.close()


async def show_plan(first: Any, as_json: bool) -> None:
    from workers.sync.control import dry_run
    from workers.sync.jobs import SyncBook

    s = settings()
    book = SyncBook(s.mongo_url, s.mongo_database)
    try:
        async for name, action, size in dry_run(s, first, book):
            show_line({"name": name, "action": action.value, "size": size}, as_json)
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
        return as_view(await book.status(job))
    finally:
        await book.close()


def summary(view: dict[str, Any]) -> str:
    c = view["counts"]
    return (
        f"{view['id']} {view['state']}{' (done)' if view['done'] else ''}: {view['source']}"
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
    api = remote()
    if api is not None:
        with api:
            view = through(api, "sync", job_id=job)
    else:
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
            return [as_view(await book.status(job)) for job in await book.jobs(tenant)]
        finally:
            await book.close()

    api = remote()
    if api is not None:
        no_tenant(tenant)
        with api:
            views = through(api, "syncs")
    else:
        views = run(go())
    for view in views:
        said(as_json, view, summary(view))


@sync_app.command()
def cancel(job: str = typer.Argument(..., help="A job id."), as_json: bool = JSON) -> None:
    """Stop a job still listing: no further page is planned (puts already sent go on)."""
    from datetime import UTC, datetime

    from workers.sync.jobs import SyncBook

    async def go() -> None:
        from workers.client.state import Unknown

        s = settings()
        book = SyncBook(s.mongo_url, s.mongo_database)
        try:
            found = await book.job(job)
            if found is None:
                raise Unknown(f"no sync job {job!r}")
            if not await book.cancel(job, datetime.now(UTC)):
                fail(f"sync job {job} is {found['state']}, not listing", Code.REFUSED)
        finally:
            await book.close()

    api = remote()
    if api is not None:
        with api:
            through(api, "cancel_sync", job_id=job)
    else:
        run(go())
    said(as_json, {"id": job, "state": "cancelled"}, f"{job}: cancelled")
