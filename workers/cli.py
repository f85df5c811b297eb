"""The ``movingdata`` command line."""

import asyncio
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import orjson
import typer
from rich.console import Console
from rich.progress import Progress
from rich.table import Table

from workers.logs import logging_config
from workers.settings import KafkaRole, Settings, load_settings
from workers.stack import control
from workers.stack.process import ServiceError

if TYPE_CHECKING:
    from workers.tiering.live import Tiering

app = typer.Typer(no_args_is_help=True, add_completion=False, help="Move data between clouds.")
stack_app = typer.Typer(no_args_is_help=True, help="The local stack of services.")
app.add_typer(stack_app, name="stack")
console = Console(soft_wrap=True)
errors = Console(stderr=True, soft_wrap=True)


def settings(kafka_role: KafkaRole = "operator") -> Settings:
    """An operator's settings (with the reader's and admin's tokens); workers load their own.
    On the local broker's SASL listener the CLI is its operator user, the API its own."""
    return load_settings(operator=True, kafka_role=kafka_role)


def fail(message: str) -> NoReturn:
    errors.print(f"[red]error:[/red] {message}")
    raise typer.Exit(1)


def load_tiering(s: Settings) -> "Tiering":
    """The settings' tiering policy and prices, or one line saying what is wrong."""
    from workers.core.prices import PriceError
    from workers.tiering.live import Tiering
    from workers.tiering.policy import PolicyError

    try:
        return Tiering.load(s)
    except (PolicyError, PriceError) as exc:
        fail(str(exc))


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
    """Stop what the demo left running, then the services this stack started (by PID)."""
    from workers.demo import stop_surface

    for name in [*stop_surface(settings()), *control.down(settings())]:
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
    """Run a coroutine; a refusal or an unreachable service becomes one clear line."""
    from aiokafka.errors import KafkaError
    from pymongo.errors import PyMongoError

    from workers.client.puts import BadNames
    from workers.client.state import Unknown
    from workers.errors import MovingDataError

    try:
        return asyncio.run(coro)
    except (MovingDataError, Unknown, BadNames) as exc:
        fail(str(exc))
    except KafkaError as exc:
        fail(f"the broker is unreachable ({type(exc).__name__}): is the stack up?")
    except PyMongoError as exc:
        fail(f"the database is unreachable ({type(exc).__name__}): is the stack up?")


def emit_json(doc: Any) -> None:
    sys.stdout.write(orjson.dumps(doc, default=str).decode() + "\n")


@app.command("settings")
def settings_doc() -> None:
    """Print every MOVINGDATA_* variable as a Markdown table: name, meaning, default."""
    from workers.settings import settings_table

    sys.stdout.write(settings_table())


@app.command()
def worker(
    agents: str = typer.Option("all", help="Stages to run: all, or e.g. encrypt,replicate."),
) -> None:
    """Run pipeline agents in this process (scale by starting more)."""
    import faust

    from workers.app import build_app, parse_stages
    from workers.deps import build_deps, prepare
    from workers.errors import Fatal

    s = load_settings(kafka_role="worker")  # never the operators' tokens
    try:
        stages = parse_stages(agents)
    except ValueError as exc:
        fail(str(exc))
    run(prepare(s))
    try:  # a missing token (the sink's own, for one) stops it here, in one line
        faust_app = build_app(s, stages, build_deps(s))
    except Fatal as exc:
        fail(str(exc))
    faust.Worker(
        faust_app,
        loglevel=s.log_level,
        logging_config=logging_config(s.log_level),
        redirect_stdouts=False,
    ).execute_from_commandline()


@app.command()
def put(
    paths: list[Path] = typer.Argument(None, help="Files or folders (recursively)."),
    url: str | None = typer.Option(None, help="Put an object from a store: s3://bucket/key."),
    to: str = typer.Option("s3,azure,gcs", help="Targets; the first is the primary."),
    tenant: str = "default",
    name: str | None = typer.Option(None, help="The object's name (one file or --url)."),
    prefix: str = typer.Option("", help="Put before every name (a folder: 'reports/')."),
    tag: list[str] = typer.Option([], help="key=value, repeatable (tier=cold sets the tier)."),
    fernet: bool = typer.Option(False, help="Fernet compatibility mode (small objects)."),
    force: bool = typer.Option(False, help="A new version even if the content is unchanged."),
    by_path: bool = typer.Option(
        False, help="Send paths, not bytes (workers that share this filesystem)."
    ),
    wait: bool = typer.Option(False, help="Block until every put is verified everywhere."),
    timeout: float = typer.Option(600.0, help="Seconds --wait waits."),
    as_json: bool = typer.Option(False, "--json", help="One JSON object per line."),
) -> None:
    """Put files (or one store object) as new versions; unchanged content moves nothing."""
    from pydantic import ValidationError

    from schemas.events import Placement, Source
    from workers.client.identity import cli_actor
    from workers.client.kafka import produce
    from workers.client.puts import PutFile, Sent, files_to_put, parse_tags, put_files, put_request

    s = settings()
    if bool(paths) == bool(url):
        raise typer.BadParameter("give files or folders, or --url, not both")
    for path in paths or []:
        if not path.exists():
            raise typer.BadParameter(f"{path} does not exist")
    try:
        tags = parse_tags(tag)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--tag") from None

    files: list[PutFile] = []
    try:
        if url is not None:
            source = Source(url=url)
            object_name = prefix + (name or url.rstrip("/").rsplit("/", 1)[-1])
        else:
            files = files_to_put(paths, name=name, prefix=prefix)
            if not files:
                fail("nothing to put: no regular files there")
            object_name = files[0].name
        base = Placement(
            name=object_name,
            targets=tuple(to.split(",")),  # type: ignore[arg-type]
            tenant=tenant,
            tags=tags,
            mode="fernet" if fernet else "stream",
        )
    except ValidationError as exc:
        fail("; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors()))
    except ValueError as exc:  # BadNames: one line per refused name
        fail(str(exc))
    if url is not None:
        request = put_request(base, source, None, actor=cli_actor())
        run(produce(s, [request]))
        sent = [Sent(PutFile(Path(url), base.name), request, "url")]
    else:
        # Names are checked already (files_to_put): each file's placement differs only in it.
        sent = run(
            put_files(
                s,
                files,
                lambda n: base.model_copy(update={"name": n}),
                by_path=by_path,
                force=force,
                actor=cli_actor(),
            )
        )
    if not wait:
        for one in sent:
            if as_json:
                emit_json(sent_doc(one))
            else:
                console.print(f"{one.request.object_id}  {one.file.name}  ({one.how})")
        return
    report_puts(s, sent, timeout, as_json, to)


def sent_doc(one: Any) -> dict[str, Any]:
    return {
        "object_id": one.request.object_id,
        "name": one.file.name,
        "request_id": one.request.correlation_id,
        "source": one.how,
    }


def report_puts(s: Settings, sent: list[Any], timeout: float, as_json: bool, to: str) -> None:
    """Wait for each put's end and print it; exit 1 if any failed."""
    from workers.client.puts import wait_puts
    from workers.client.state import State

    async def wait_all() -> list[Any]:
        state = State(s)
        try:
            with Progress(
                console=errors, transient=True, disable=not errors.is_terminal
            ) as progress:
                task = progress.add_task("verified in every target", total=len(sent))
                return await wait_puts(
                    state,
                    [one.request for one in sent],
                    timeout,
                    on_progress=lambda done: progress.update(task, completed=done),
                )
        finally:
            await state.close()

    results = run(wait_all())
    for one, result in zip(sent, results, strict=True):
        if as_json:
            emit_json(
                {**sent_doc(one), "version": result.version, "outcome": result.outcome}
                | ({"reason": result.reason} if result.reason else {})
            )
        elif result.ok:
            console.print(f"{one.file.name} v{result.version} {result.outcome}")
        else:
            console.print(f"[red]{result.outcome}[/red] {one.file.name}: {result.reason}")
    failed = [r for r in results if not r.ok]
    if not as_json:
        unchanged = sum(r.outcome == "unchanged" for r in results)
        ok = len(results) - len(failed)
        console.print(f"{ok} objects verified in {to} ({unchanged} unchanged)")
    if failed:
        raise typer.Exit(1)


def resolved(ref: str, tenant: str) -> tuple[str, list[dict[str, Any]]]:
    """The object an id or name refers to, and its versions (a clear error if none)."""
    from workers.client.state import State

    async def go() -> tuple[str, list[dict[str, Any]]]:
        state = State(settings())
        try:
            return await state.resolve(ref, tenant)
        finally:
            await state.close()

    return run(go())


def picked(ref: str, version: int | None, tenant: str) -> dict[str, Any]:
    """The version of an object asked for, else its newest verified one (a clear error)."""
    from workers.client.state import Unknown, pick_version

    _, docs = resolved(ref, tenant)
    try:
        return pick_version(docs, version, ref)
    except Unknown as exc:
        fail(str(exc))


@app.command()
def ls(
    prefix: str = typer.Argument("", help="Only names starting with this."),
    tenant: str = "default",
    state: str | None = typer.Option(
        None, help="pending, verified, degraded, lost, failed, deleted or shredded."
    ),
    store: str | None = typer.Option(None, help="Only with a verified replica in this store."),
    tier: str | None = typer.Option(None, help="Only with a replica in this tier."),
    all_versions: bool = typer.Option(False, help="Every version, not just the newest."),
    limit: int = typer.Option(100, min=1, max=10_000, help="Rows per page."),
    after: str | None = typer.Option(None, help="Continue after this name (the last page's)."),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """List objects by name: newest version, state, size, replicas."""
    from workers.client.state import State

    async def go() -> Any:
        st = State(settings())
        try:
            return await st.listing(
                tenant=tenant,
                prefix=prefix,
                state=state,
                store=store,
                tier=tier,
                all_versions=all_versions,
                limit=limit,
                after=after,
            )
        finally:
            await st.close()

    try:
        page = run(go())
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None
    if as_json:
        for doc in page.rows:
            emit_json(listed(doc))
        if page.after:
            emit_json({"next_after": page.after})
        return
    table = Table("name", "version", "state", "bytes", "replicas", "object id")
    for doc in page.rows:
        row = listed(doc)
        table.add_row(
            row["name"],
            str(row["version"]),
            row["state"],
            str(row["size"] if row["size"] is not None else "-"),
            ",".join(row["replicas"]) or "-",
            row["object_id"],
        )
    console.print(table)
    if page.after:
        console.print(f"more: movingdata ls {prefix!r} --after {page.after!r}")


def listed(doc: dict[str, Any]) -> dict[str, Any]:
    from workers.core.versions import live_replicas

    return {
        "name": doc.get("name"),
        "version": doc["version"],
        "state": doc.get("state", "pending"),
        "size": doc.get("size"),
        "replicas": list(live_replicas(doc)),
        "object_id": doc["object_id"],
        "tenant": doc.get("tenant"),
    }


@app.command()
def show(
    ref: str = typer.Argument(..., metavar="ID|NAME"),
    tenant: str = "default",
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Every version of an object: state, size, digest, replicas, tier, verification."""
    from workers.core.versions import verdict

    _, docs = resolved(ref, tenant)
    for doc in docs:
        if as_json:
            emit_json(doc)
            continue
        console.print(
            f"[bold]v{doc['version']}[/bold] {doc.get('state', 'pending')} {doc.get('name')} "
            f"{doc.get('size')} bytes sha256={doc.get('plaintext_sha256')} ({doc['_id']})"
        )
        table = Table(
            "target", "key", "verdict", "proven_at", "tier", "repaired_from", "removed_at"
        )
        for target, rep in sorted((doc.get("replicas") or {}).items()):
            table.add_row(
                target,
                str(rep.get("key")),
                str(verdict(rep) or "-"),
                str(rep.get("proven_at") or rep.get("verified_at") or "-"),
                str(rep.get("tier") or "-"),
                str(rep.get("repaired_from") or "-"),
                str(rep.get("removed_at") or "-"),
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


staging_app = typer.Typer(no_args_is_help=True, help="The staging area of uploads.")
app.add_typer(staging_app, name="staging")


@staging_app.command("sweep")
def staging_sweep(
    older_than: float = typer.Option(None, help="Seconds; default the staging TTL setting."),
) -> None:
    """Remove staged uploads older than the TTL that nothing needs: settled requests' and
    those no request references (workers also do this on a timer)."""
    from datetime import UTC, datetime

    from workers import staging
    from workers.catalog import MongoCatalog
    from workers.deps import target_url
    from workers.kms.keyregistry import MongoKeyRegistry
    from workers.stores import open_store

    s = settings()

    async def go() -> int:
        store = open_store(target_url(s.staging_target, s), s)
        catalog = MongoCatalog(s.mongo_url, s.mongo_database)
        registry = MongoKeyRegistry(s.mongo_url, s.mongo_database)
        try:
            ttl = s.staging_ttl_s if older_than is None else older_than
            cutoff = staging.cutoff(datetime.now(UTC), ttl)
            return await staging.sweep(store, s.staging_prefix, cutoff, catalog, registry)
        finally:
            await store.close()
            await catalog.close()
            await registry.close()

    console.print(f"{run(go())} staged uploads removed")


@app.command()
def api(
    host: str | None = typer.Option(None, help="Default: MOVINGDATA_API_HOST (127.0.0.1)."),
    port: int | None = typer.Option(None, help="Default: MOVINGDATA_API_PORT (8001)."),
) -> None:
    """Serve the HTTP API (docs at /docs, the OpenAPI document at /openapi.json)."""
    import uvicorn

    from workers.api.app import create_app

    s = settings(kafka_role="api")
    uvicorn.run(
        create_app(s),
        host=host or s.api_host,
        port=port or s.api_port,
        log_config=logging_config(s.log_level),
        access_log=False,
    )


@app.command()
def dashboard(
    port: int | None = typer.Option(None, help="Default: MOVINGDATA_DASHBOARD_PORT (8501)."),
) -> None:
    """Serve the dashboard (Streamlit); it needs a reader token."""
    import subprocess

    from workers.dashboard import PAGE

    s = settings()
    argv = [
        sys.executable, "-m", "streamlit", "run", str(PAGE),
        "--server.address", s.dashboard_host, "--server.port", str(port or s.dashboard_port),
        "--server.headless", "true", "--browser.gatherUsageStats", "false",
    ]  # fmt: skip
    raise typer.Exit(subprocess.call(argv))


tokens_app = typer.Typer(
    no_args_is_help=True, help="API tokens: a tenant, scopes and an expiry each."
)
app.add_typer(tokens_app, name="tokens")


@tokens_app.command("create")
def tokens_create(
    name: str,
    role: str | None = typer.Option(
        None,
        help="A preset of scopes: reader (read), writer (read, write, delete) or admin "
        "(every scope). Default: reader, unless --scope is given.",
    ),
    scope: list[str] = typer.Option(
        [],
        "--scope",
        help="read, write, delete, forget (crypto-shredding) or admin (every tenant); "
        "repeat it or separate with commas. Instead of --role.",
    ),
    tenant: str = "default",
    expires: str = typer.Option(
        "90d",
        help="A duration (12h, 90d), an ISO date (2027-06-01, UTC) or never. The default "
        "makes a token nobody remembers stop working on its own.",
    ),
    output: Path | None = typer.Option(
        None, "-o", "--output", help="Write the token to this file (mode 600), not stdout."
    ),
) -> None:
    """Create a token; it is shown once (the database keeps its hash only)."""
    from workers.api import tokens
    from workers.client.state import State
    from workers.stack.localenv import write_secret

    if role is not None and scope:
        fail("give --role or --scope, not both")
    try:
        scopes = tokens.parse_scopes(scope) if scope else tokens.role_scopes(role or "reader")
        expires_at = tokens.parse_expiry(expires, datetime.now(UTC))
    except tokens.TokenError as exc:
        fail(str(exc))

    async def go() -> str:
        state = State(settings())
        try:
            return await tokens.create(state.db, name, tenant, scopes, expires_at)
        finally:
            await state.close()

    try:
        token = run(go())
    except tokens.TokenError as exc:
        fail(str(exc))
    if output is None:
        console.print(token)
        return
    write_secret(output, token + "\n")
    until = f"until {expires_at:%Y-%m-%d %H:%M} UTC" if expires_at else "never expiring"
    held = ", ".join(tokens.ordered(scopes))
    console.print(f"token {name!r} ({held}) for tenant {tenant}, {until}, written to {output}")


@tokens_app.command("list")
def tokens_list(as_json: bool = typer.Option(False, "--json")) -> None:
    """Every token: name, tenant, scopes, when created, expiring, last used and revoked
    (never the token)."""
    from workers.api import tokens
    from workers.client.state import State

    async def go() -> list[dict[str, Any]]:
        state = State(settings())
        try:
            return await tokens.listing(state.db)
        finally:
            await state.close()

    docs = run(go())
    if as_json:
        for doc in docs:
            emit_json(doc)
        return

    def when(at: datetime | None, none: str = "-") -> str:
        return f"{at:%Y-%m-%d %H:%M}" if at else none

    table = Table("name", "tenant", "scopes", "created", "expires", "last used", "revoked")
    for doc in docs:
        table.add_row(
            doc["name"], doc["tenant"], ", ".join(doc["scopes"]), when(doc["created_at"]),
            when(doc["expires_at"], "never"), when(doc["last_used_at"]), when(doc["revoked_at"]),
        )  # fmt: skip
    console.print(table)


@tokens_app.command("revoke")
def tokens_revoke(name: str) -> None:
    """Revoke a token: the API refuses it from now on."""
    from workers.api import tokens
    from workers.client.state import State

    async def go() -> None:
        state = State(settings())
        try:
            await tokens.revoke(state.db, name)
        finally:
            await state.close()

    try:
        run(go())
    except tokens.TokenError as exc:
        fail(str(exc))
    console.print(f"token {name!r} revoked")


@app.command()
def demo() -> None:
    """The local stack's health, then the whole chain on sample data, with a summary."""
    from workers.demo import run_demo, start_surface

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
    for what, where in run(start_surface(settings())).items():
        console.print(f"{what}: {where}")
    console.print("running until `make down` (a worker, the API, the dashboard)")


keys_app = typer.Typer(no_args_is_help=True, help="Key-encryption keys and data keys.")
app.add_typer(keys_app, name="keys")


@keys_app.command("rotate")
def keys_rotate(
    disable_old: bool = typer.Option(False, help="Then refuse unwraps by older KEK versions."),
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
    console.print(f"{count} data keys re-wrapped under {newest}")


@keys_app.command("backup")
def keys_backup(path: Path) -> None:
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

    console.print(f"{run(go())} key records written to {path}")


@keys_app.command("restore")
def keys_restore(path: Path) -> None:
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
    console.print(f"{restored} key records restored, {present} already present")


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


tier_app = typer.Typer(
    no_args_is_help=True, help="Tiering: sweeps, explanations, synthetic logs and backtests."
)
app.add_typer(tier_app, name="tier")


def moment(value: str | None) -> datetime:
    """``--now``: an ISO 8601 time (UTC unless it says otherwise), or now."""
    if value is None:
        return datetime.now(UTC)
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        fail(f"--now {value!r}: not an ISO 8601 time (e.g. 2027-06-01 or 2027-06-01T12:00Z)")
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


NOW_HELP = "Decide as at this time (ISO 8601; default now): what-ifs and tests."


@tier_app.command("sweep")
def tier_sweep(
    now: str | None = typer.Option(None, help=NOW_HELP),
    dry_run: bool = typer.Option(False, help="Decide and show, change nothing."),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Decide every verified version's tiers with the settings' policy; the tier agent
    applies the changes (what the tier worker's leader does every MOVINGDATA_TIER_SWEEP_S)."""
    from workers.client.identity import cli_actor
    from workers.tiering.live import sweep

    s = settings()
    result = run(sweep(s, load_tiering(s), moment(now), cli_actor().name, dry_run=dry_run))
    rows = [
        {
            "object_id": c.object_id,
            "version": c.version,
            "replica": c.target,
            "from": c.previous,
            "to": c.tier,
            "reason": c.reason,
            "cost_delta": round(c.cost_after - c.cost_before, 9),
        }
        for c in result.changes
    ]
    if as_json:
        emit_json({"versions": result.versions, "dry_run": dry_run, "changes": rows})
        return
    for row in rows:
        console.print(
            f"{row['object_id']} v{row['version']} {row['replica']}: {row['from']} -> {row['to']}"
            f" ({row['reason']}; {row['cost_delta']:+.6f} USD per period)",
            highlight=False,
        )
    verb = "would change" if dry_run else "changes sent to the tier agent:"
    console.print(f"{result.versions} verified versions decided; {verb} {len(rows)} replicas")


@tier_app.command("explain")
def tier_explain(
    ref: str = typer.Argument(..., metavar="ID|NAME"),
    version: int | None = typer.Option(None, help="A version; default the newest verified."),
    tenant: str = "default",
    now: str | None = typer.Option(None, help=NOW_HELP),
) -> None:
    """Why each replica of a version sits where it is, with the costs of every tier."""
    from workers.core.tiering import explain
    from workers.tiering.live import stats_of

    s = settings()
    tiering = load_tiering(s)
    doc = picked(ref, version, tenant)
    stats = stats_of(doc)
    if stats is None:
        fail(f"v{doc['version']} of {ref} is {doc.get('state', 'pending')}: nothing is tiered")
    replicas = doc.get("replicas") or {}
    for target, replica in sorted(replicas.items()):
        if replica.get("tier_reason"):
            console.print(
                f"{target}: {replica.get('tier')} since the last change: {replica['tier_reason']}",
                highlight=False,
            )
    sys.stdout.write(explain(stats, tiering.policy, tiering.prices, moment(now)) + "\n")


@tier_app.command("synth")
def tier_synth(
    output: Path = typer.Option(..., "-o", "--output", help="The log to write (.jsonl or .csv)."),
    seed: int = typer.Option(1, help="The same seed gives the same log."),
    objects: int = typer.Option(500, min=1),
    days: int = typer.Option(365, min=1),
) -> None:
    """Write a synthetic access log: Zipf popularity, a daily cycle, ageing, re-read bursts."""
    from workers.tiering.accesslog import write_log
    from workers.tiering.synth import synthesise

    log = synthesise(seed, objects, days)
    write_log(output, log)
    console.print(f"{len(log)} accesses to {objects} objects over {days} days: {output}")


@tier_app.command("backtest")
def tier_backtest(
    policy: list[Path] = typer.Option(
        ..., help="A policy file (or default, lifecycle); repeat to compare several."
    ),
    access_log: Path = typer.Option(..., help="JSON Lines or CSV: time, object, size, operation."),
    rules: Path = typer.Option(Path("lifecycle"), help="The rule-only baseline policy."),
    prices: Path | None = typer.Option(None, help="The prices folder (default deploy/prices)."),
    plots: Path | None = typer.Option(None, help="Write PNG charts into this folder."),
    review_days: int = typer.Option(7, min=1, help="Review every object this often."),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Replay an access log against policies, everything-hot and Intelligent-Tiering."""
    from workers.core.prices import PriceError
    from workers.tiering.accesslog import AccessLogError, read_log
    from workers.tiering.backtest import compare
    from workers.tiering.policy import PolicyError, load_policy
    from workers.tiering.prices import PRICES_DIR, load_prices

    try:
        sheets = load_prices(prices or PRICES_DIR)
        policies = {"rules": load_policy(rules)}
        policies |= {path.stem: load_policy(path) for path in policy}
        log = read_log(access_log)
    except (PriceError, PolicyError, AccessLogError) as exc:
        fail(str(exc))
    except OSError as exc:
        fail(f"{exc.filename}: {exc.strerror}")
    reports = compare(log, policies, sheets, review_days)
    if plots is not None:
        from workers.tiering.plots import write_plots

        written = write_plots(reports, policy[-1].stem, plots)
        errors.print("plots: " + ", ".join(str(p) for p in written))
    baseline = reports[-1].total
    rows = [
        r.summary() | {"vs_intelligent_tiering": (r.total / baseline - 1) if baseline else 0.0}
        for r in reports
    ]
    if as_json:
        emit_json(rows)
        return
    # plain columns: a wide table still reads when piped (Rich would squeeze it to 80)
    head = f"{'policy':22} {'total $':>9} " + " ".join(f"{c:>11}" for c in COST_COLUMNS)
    lines = [head + f" {'moves':>6} {'early':>6} {'cold rd':>7} {'instant/min/h':>15} {'vs IT':>7}"]
    for row in rows:
        lines.append(
            f"{row['policy']:22} {row['total']:9.4f} "
            + " ".join(f"{row['costs'][part]:11.4f}" for part in COST_PARTS)
            + f" {row['transitions']:6d} {row['early_deletions']:6d}"
            f" {row['reads_from_cold_tiers']:7d}"
            f" {'/'.join(str(n) for n in row['latency'].values()):>15}"
            f" {row['vs_intelligent_tiering']:+7.1%}"
        )
    sys.stdout.write("\n".join(lines) + "\n")


COST_PARTS = ("storage", "retrieval", "operations", "transitions", "early_deletion", "monitoring")
COST_COLUMNS = ("storage", "retrieval", "operations", "transitions", "early del.", "monitoring")


def main() -> None:
    app()
