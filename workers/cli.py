"""The ``movingdata`` command line."""

import asyncio
import sys
from pathlib import Path
from typing import Any

import orjson
import typer
from rich.console import Console
from rich.progress import Progress
from rich.table import Table

from workers.logs import logging_config
from workers.settings import Settings, load_settings
from workers.stack import control
from workers.stack.process import ServiceError

app = typer.Typer(no_args_is_help=True, add_completion=False, help="Move data between clouds.")
stack_app = typer.Typer(no_args_is_help=True, help="The local stack of services.")
app.add_typer(stack_app, name="stack")
console = Console(soft_wrap=True)
errors = Console(stderr=True, soft_wrap=True)


def settings() -> Settings:
    return load_settings()


def fail(message: str) -> None:
    errors.print(f"[red]error:[/red] {message}")
    raise typer.Exit(1)


@stack_app.command("up")
def stack_up() -> None:
    """Install what is missing, start every service, wait until healthy."""
    try:
        timings = control.up(settings())
    except ServiceError as exc:
        fail(str(exc))
    for name, seconds in timings.items():
        console.print(f"{name:10} up in {seconds:5.1f} s")


@stack_app.command("down")
def stack_down() -> None:
    """Stop the services this stack started (by PID)."""
    for name in control.down(settings()):
        console.print(f"{name:10} stopped")


@stack_app.command("status")
def stack_status() -> None:
    """A table of services, versions, ports, PIDs, health and memory."""
    if not stack_status_table():
        raise typer.Exit(1)


def stack_status_table() -> bool:
    """Print the services table; True when every service is healthy."""
    rows = list(control.status(settings()))
    table = Table("service", "version", "port", "pid", "state", "RSS MiB")
    for row in rows:
        colour = {"healthy": "green", "unhealthy": "yellow"}.get(row.state, "red")
        table.add_row(
            row.name,
            row.version,
            str(row.port),
            str(row.pid or "-"),
            f"[{colour}]{row.state}[/{colour}]",
            f"{row.rss_mib:.0f}" if row.rss_mib else "-",
        )
    console.print(table)
    return all(row.state == "healthy" for row in rows)


@stack_app.command("logs")
def stack_logs(service: str, lines: int = typer.Option(50, "-n")) -> None:
    """Print the last lines of a service's log."""
    try:
        path = Path(control.log_path(settings(), service))
    except ServiceError as exc:
        fail(str(exc))
    if path.exists():
        sys.stdout.write("".join(path.read_text(errors="replace").splitlines(True)[-lines:]))


def run(coro: Any) -> Any:
    return asyncio.run(coro)


def emit_json(doc: Any) -> None:
    sys.stdout.write(orjson.dumps(doc, default=str).decode() + "\n")


@app.command()
def worker(
    agents: str = typer.Option("all", help="Stages to run: all, or e.g. encrypt,replicate."),
) -> None:
    """Run pipeline agents in this process (scale by starting more)."""
    import faust

    from workers.app import build_app, parse_stages
    from workers.deps import build_deps, prepare

    s = settings()
    try:
        stages = parse_stages(agents)
    except ValueError as exc:
        fail(str(exc))
    run(prepare(s))
    faust_app = build_app(s, stages, build_deps(s))
    faust.Worker(
        faust_app,
        loglevel=s.log_level,
        logging_config=logging_config(s.log_level),
        redirect_stdouts=False,
    ).execute_from_commandline()


@app.command()
def put(
    path: Path = typer.Argument(..., exists=True, help="A file or a folder (recursively)."),
    to: str = typer.Option("s3,azure,gcs", help="Targets; the first is the primary."),
    tenant: str = "default",
    tag: list[str] = typer.Option([], help="key=value, repeatable (tier=cold sets the tier)."),
    fernet: bool = typer.Option(False, help="Fernet compatibility mode (small objects)."),
    wait: bool = typer.Option(False, help="Block until every object is verified everywhere."),
    timeout: float = typer.Option(600.0, help="Seconds --wait waits."),
    as_json: bool = typer.Option(False, "--json", help="One JSON object per line."),
) -> None:
    """Produce an ingest request for each file; print each object id."""
    from workers.client import State, produce, requests_for_path, wait_verified

    s = settings()
    tags = dict(t.split("=", 1) for t in tag)
    try:
        requests = requests_for_path(
            path, to.split(","), tenant, tags, "fernet" if fernet else "stream"
        )
    except ValueError as exc:
        fail(str(exc))
    run(produce(s, requests))
    for r in requests:
        if as_json:
            emit_json({"object_id": r.object_id, "name": r.placement.name, "path": r.source.path})
        else:
            console.print(f"{r.object_id}  {r.placement.name}")
    if not wait:
        return

    async def wait_all() -> dict[str, str]:
        state = State(s)
        try:
            with Progress(console=console, transient=True) as progress:
                task = progress.add_task("verified in every target", total=len(requests))
                return await wait_verified(
                    state,
                    [r.object_id for r in requests],
                    timeout,
                    on_progress=lambda done: progress.update(task, completed=done),
                )
        finally:
            await state.close()

    failures = run(wait_all())
    for object_id, reason in failures.items():
        console.print(f"[red]failed[/red] {object_id}: {reason}")
    if failures:
        raise typer.Exit(1)
    console.print(f"{len(requests)} objects verified in {to}")


@app.command()
def show(object_id: str, as_json: bool = typer.Option(False, "--json")) -> None:
    """Replicas, digests, tier and verification state of an object."""
    from workers.client import State

    async def load() -> list[dict[str, Any]]:
        state = State(settings())
        try:
            return await state.objects(object_id)
        finally:
            await state.close()

    docs = run(load())
    if not docs:
        fail(f"no object {object_id}")
    for doc in docs:
        if as_json:
            emit_json(doc)
            continue
        console.print(
            f"[bold]{doc['_id']}[/bold] {doc.get('name')} {doc.get('size')} bytes "
            f"sha256={doc.get('plaintext_sha256')} key={doc.get('key_id')}"
        )
        table = Table("target", "key", "verified_at", "tier", "repaired_from")
        for target, rep in sorted((doc.get("replicas") or {}).items()):
            table.add_row(
                target,
                str(rep.get("key")),
                str(rep.get("verified_at") or "-"),
                str(rep.get("tier") or "-"),
                str(rep.get("repaired_from") or "-"),
            )
        console.print(table)


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
    from workers.client import tail_audit

    async def tail() -> None:
        records = tail_audit(settings(), from_beginning=from_beginning, limit=limit, idle_s=idle)
        async for record in records:
            if as_json:
                emit_json(record.model_dump(mode="json"))
            else:
                console.print(
                    f"{record.produced_at:%H:%M:%S} {record.object_id} {record.stage:9} "
                    f"{record.action:18} {record.outcome}"
                )

    run(tail())


@app.command()
def restore(
    object_id: str,
    output: Path = typer.Option(..., "-o", "--output"),
    source: str | None = typer.Option(None, "--from", help="Replica to read: s3, azure, gcs."),
    version: int | None = None,
) -> None:
    """Decrypt a verified replica into a file, checking the plaintext SHA-256."""
    from workers.client import State, record_access
    from workers.deps import build_deps
    from workers.errors import MovingDataError
    from workers.restore import pick_replica, restore_to_file

    s = settings()

    async def go() -> Any:
        state = State(s)
        doc = await state.object(object_id, version)
        await state.close()
        if doc is None:
            raise typer.BadParameter(f"no object {object_id}")
        target = pick_replica(doc, source)
        deps = build_deps(s)
        try:
            with Progress(console=console, transient=True) as progress:
                task = progress.add_task(f"restoring from {target}", total=doc.get("size"))
                restored = await restore_to_file(
                    doc,
                    deps.store(target),
                    target,
                    deps.data_keys,
                    output,
                    lambda n: progress.advance(task, n),
                )
        finally:
            await deps.close()
        await record_access(s, doc, target, restored.size)
        return restored

    try:
        restored = run(go())
    except MovingDataError as exc:
        fail(str(exc))
    console.print(
        f"restored {restored.object_id} v{restored.version} from {restored.target}: "
        f"{restored.size} bytes, sha256 {restored.sha256}"
    )


@app.command("scrub")
def scrub_cmd(
    object_id: str | None = typer.Argument(None, help="One object; all if omitted."),
) -> None:
    """Re-verify replicas (read back, compare SHA-256, repair from a good copy)."""
    from workers.client import State, scrub

    s = settings()

    async def go() -> int:
        state = State(s)
        try:
            query = {"object_id": object_id} if object_id else {}
            docs = [doc async for doc in state.db["objects"].find(query)]
        finally:
            await state.close()
        return await scrub(s, docs)

    console.print(f"{run(go())} replicas sent to verify")


@app.command()
def demo() -> None:
    """The local stack's health, then the whole chain on sample data, with a summary."""
    from workers.demo import run_demo

    stack_status_table()
    result = run(run_demo(settings()))
    mib = result.bytes / 2**20
    table = Table("pipeline on sample data", "value")
    table.add_row("objects", str(result.objects))
    table.add_row("MiB", f"{mib:.1f}")
    table.add_row("seconds, first put to last verified", f"{result.seconds:.1f}")
    table.add_row("MiB/s", f"{mib / result.seconds:.1f}")
    for target, count in result.verified.items():
        table.add_row(f"replicas verified in {target}", f"{count}/{result.objects}")
    for target, ok in result.restored.items():
        table.add_row(f"restore from {target}", "bit for bit" if ok else "[red]MISMATCH[/red]")
    console.print(table)
    for object_id, reason in result.failures.items():
        console.print(f"[red]failed[/red] {object_id}: {reason}")
    if result.failures or not all(result.restored.values()):
        raise typer.Exit(1)


keys_app = typer.Typer(no_args_is_help=True, help="Key-encryption keys and data keys.")
app.add_typer(keys_app, name="keys")


@keys_app.command("rotate")
def keys_rotate(
    disable_old: bool = typer.Option(False, help="Then refuse unwraps by older KEK versions."),
) -> None:
    """Add a KEK version and re-wrap every data key under it (no ciphertext is rewritten)."""
    from workers.client import audit_key_event
    from workers.deps import build_deps
    from workers.keyregistry import rotate_all

    s = settings()

    async def go() -> tuple[str, int]:
        deps = build_deps(s)
        try:
            newest, records = await rotate_all(deps.registry, deps.kek)
            for record in records:
                await audit_key_event(s, record.object_id, record.version, "key.rewrapped", newest)
            if disable_old:
                await deps.kek.disable_below(int(newest.rsplit(":v", 1)[1]))
            return newest, len(records)
        finally:
            await deps.close()

    newest, count = run(go())
    console.print(f"{count} data keys re-wrapped under {newest}")


@app.command()
def forget(object_id: str, version: int = 1) -> None:
    """Crypto-shred one object version: destroy its data key; every replica becomes unreadable."""
    from workers.client import audit_key_event
    from workers.keyregistry import MongoKeyRegistry

    s = settings()

    async def go() -> bool:
        registry = MongoKeyRegistry(s.mongo_url, s.mongo_database)
        try:
            destroyed = await registry.forget(object_id, version)
        finally:
            await registry.close()
        if destroyed:
            await audit_key_event(s, object_id, version, "key.destroyed", "forget")
        return destroyed

    if not run(go()):
        fail(f"no data key for {object_id} v{version}")
    console.print(f"data key of {object_id} v{version} destroyed")


@audit_app.command("verify")
def audit_verify() -> None:
    """Check every object's audit hash chain; name the first broken link."""
    from workers.client import State
    from workers.core.auditchain import first_broken_link

    async def go() -> tuple[int, dict[str, str]]:
        state = State(settings())
        try:
            chains: dict[str, list[dict[str, Any]]] = {}
            async for doc in state.db["audit"].find({}):
                chains.setdefault(doc["object_id"], []).append(doc)
        finally:
            await state.close()
        broken = {}
        for object_id, records in chains.items():
            link = first_broken_link(sorted(records, key=lambda r: r["seq"]))
            if link is not None:
                broken[object_id] = link
        return len(chains), broken

    count, broken = run(go())
    for object_id, link in broken.items():
        console.print(f"[red]broken[/red] {object_id}: first bad record {link}")
    if broken:
        raise typer.Exit(1)
    console.print(f"{count} audit chains intact")


def main() -> None:
    app()
