"""``put``: files, folders or one store object as new versions."""

from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer
from rich.progress import Progress

from workers.settings import Settings

if TYPE_CHECKING:
    pass

from workers.cli.base import app, console, emit_json, errors, fail, run, settings


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
