"""``put``: files, folders, stdin or one store object as new versions."""

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
    no_tenant,
    remote,
    run,
    settings,
)
from workers.client.remote import ApiError, Remote
from workers.settings import Settings

STDIN = Path("-")


@app.command(rich_help_panel=DATA)
def put(
    paths: list[Path] = typer.Argument(None, help="Files or folders (recursively); - for stdin."),
    url: str | None = typer.Option(
        None, help="Put an object from a store: s3://bucket/key (direct mode)."
    ),
    to: str | None = typer.Option(
        None, help="Targets, the first the primary. Default: MOVINGDATA_TARGETS (s3,azure,gcs)."
    ),
    tenant: str | None = typer.Option(None, help="Direct mode only (default: default)."),
    name: str | None = typer.Option(None, help="The object's name (one file, stdin or --url)."),
    prefix: str = typer.Option("", help="Put before every name (a folder: 'reports/')."),
    tag: list[str] = typer.Option([], help="key=value, repeatable (tier=cold sets the tier)."),
    fernet: bool = typer.Option(False, help="Fernet compatibility mode (direct mode)."),
    force: bool = typer.Option(False, help="A new version even if the content is unchanged."),
    by_path: bool = typer.Option(
        False, help="Send paths, not bytes (direct mode; workers sharing this filesystem)."
    ),
    wait: bool = typer.Option(False, help="Block until every put is verified everywhere."),
    timeout: float = typer.Option(600.0, help="Seconds --wait waits."),
    as_json: bool = typer.Option(False, "--json", help="One JSON object per line."),
) -> None:
    """Put files (or stdin, or one store object) as new versions; unchanged content moves
    nothing."""
    from workers.client.puts import BadNames, PutFile, files_to_put, parse_tags

    if bool(paths) == bool(url):
        raise typer.BadParameter("give files or folders, or --url, not both")
    stdin = paths == [STDIN]
    if stdin and not name:
        raise typer.BadParameter("stdin needs --name", param_hint="--name")
    if STDIN in (paths or []) and not stdin:
        raise typer.BadParameter("- (stdin) is the only path when given")
    for path in [] if stdin else paths or []:
        if not path.exists():
            raise typer.BadParameter(f"{path} does not exist")
    try:
        tags = parse_tags(tag)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--tag") from None
    api = remote()
    if api is not None:
        no_tenant(tenant)
        for flag, given in (("--url", url), ("--fernet", fernet), ("--by-path", by_path)):
            if given:
                fail(f"{flag} is for direct mode; the API takes the bytes", Code.USAGE)
        try:
            files = (
                [PutFile(STDIN, prefix + (name or ""))]
                if stdin
                else files_to_put(paths, name=name, prefix=prefix)
            )
        except BadNames as exc:
            fail(str(exc), Code.USAGE)
        with api:
            put_through_api(api, files, to, tag, force, wait, timeout, as_json)
        return
    if stdin:
        fail("stdin is read through the API: set a profile or MOVINGDATA_API_URL", Code.USAGE)
    put_direct(
        paths,
        url,
        to,
        tenant or "default",
        name,
        prefix,
        tags,
        fernet,
        force,
        by_path,
        wait,
        timeout,
        as_json,
    )


def put_through_api(
    api: Remote,
    files: list[Any],
    to: str | None,
    tag: list[str],
    force: bool,
    wait: bool,
    timeout: float,
    as_json: bool,
) -> None:
    """Upload each file (or stdin) to the API, then, with ``wait``, wait for each version."""
    from workers.client.puts import shown

    if not files:
        fail("nothing to put: no regular files there", Code.USAGE)
    answers: list[dict[str, Any]] = []
    failed = 0
    for one in files:
        params = {"name": one.name, "targets": to, "tag": tag or None, "force": force or None}
        try:
            if one.path == STDIN:
                answer = api.put(sys.stdin.buffer, None, params)
            else:
                with one.path.open("rb") as body:
                    answer = api.put(body, one.path.stat().st_size, params)
        except ApiError as exc:
            if len(files) == 1:
                api_failed(exc)
            failed += 1
            errors.print(f"[red]failed[/red] {shown(one.path)}: {exc.detail}", highlight=False)
            continue
        except OSError as exc:
            failed += 1
            errors.print(f"[red]failed[/red] {shown(one.path)}: {exc.strerror}", highlight=False)
            continue
        answers.append(answer)
        if not wait:
            if as_json:
                emit_json(sent(answer))
            else:
                console.print(f"{answer['object_id']}  {answer['name']}  (uploaded)")
    if wait:
        failed += report_waited(api, answers, timeout, as_json, to)
    if failed:
        raise typer.Exit(Code.PARTIAL if failed < len(files) else Code.FAILED)


def sent(answer: dict[str, Any]) -> dict[str, Any]:
    return {
        "object_id": answer["object_id"],
        "name": answer["name"],
        "request_id": answer["request_id"],
        "source": "upload",
    }


def report_waited(
    api: Remote, answers: list[dict[str, Any]], timeout: float, as_json: bool, to: str | None
) -> int:
    """Wait for each uploaded version's end (the API's object view) and print it; the
    number that did not end verified."""
    results = api.settle(answers, timeout)
    bad = 0
    for answer, (version, outcome, reason) in zip(answers, results, strict=True):
        ok = outcome in ("verified", "unchanged")
        bad += not ok
        if as_json:
            emit_json(
                sent(answer)
                | {"version": version, "outcome": outcome}
                | ({"reason": reason} if reason else {})
            )
        elif ok:
            console.print(f"{answer['name']} v{version} {outcome}")
        else:
            console.print(f"[red]{outcome}[/red] {answer['name']}: {reason}")
    if not as_json:
        unchanged = sum(r[1] == "unchanged" for r in results)
        where = to or "every target"
        console.print(f"{len(results) - bad} objects verified in {where} ({unchanged} unchanged)")
    return bad


def put_direct(
    paths: list[Path] | None,
    url: str | None,
    to: str | None,
    tenant: str,
    name: str | None,
    prefix: str,
    tags: dict[str, str],
    fernet: bool,
    force: bool,
    by_path: bool,
    wait: bool,
    timeout: float,
    as_json: bool,
) -> None:
    """Direct mode: stage, then produce the requests to the ingest topic."""
    from pydantic import ValidationError

    from schemas.events import Placement, Source
    from workers.client.identity import cli_actor
    from workers.client.kafka import produce
    from workers.client.puts import PutFile, Sent, files_to_put, put_files, put_request

    s = settings()
    targets = tuple(to.split(",")) if to else tuple(s.targets)
    files: list[PutFile] = []
    try:
        if url is not None:
            source = Source(url=url)
            object_name = prefix + (name or url.rstrip("/").rsplit("/", 1)[-1])
        else:
            files = files_to_put(paths or [], name=name, prefix=prefix)
            if not files:
                fail("nothing to put: no regular files there", Code.USAGE)
            object_name = files[0].name
        base = Placement(
            name=object_name,
            targets=targets,  # type: ignore[arg-type]
            tenant=tenant,
            tags=tags,
            mode="fernet" if fernet else "stream",
        )
    except ValidationError as exc:
        fail(
            "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors()),
            Code.USAGE,
        )
    except ValueError as exc:  # BadNames: one line per refused name
        fail(str(exc), Code.USAGE)
    if url is not None:
        request = put_request(base, source, None, actor=cli_actor())
        run(produce(s, [request]))
        sent_ = [Sent(PutFile(Path(url), base.name), request, "url")]
    else:
        # Names are checked already (files_to_put): each file's placement differs only in it.
        sent_ = run(
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
        for one in sent_:
            if as_json:
                emit_json(sent_doc(one))
            else:
                console.print(f"{one.request.object_id}  {one.file.name}  ({one.how})")
        return
    report_puts(s, sent_, timeout, as_json, ",".join(targets))


def sent_doc(one: Any) -> dict[str, Any]:
    return {
        "object_id": one.request.object_id,
        "name": one.file.name,
        "request_id": one.request.correlation_id,
        "source": one.how,
    }


def report_puts(s: Settings, sent_: list[Any], timeout: float, as_json: bool, to: str) -> None:
    """Wait for each put's end and print it; exit 1 if every one failed, 6 if some did."""
    from workers.client.puts import wait_puts
    from workers.client.state import State

    async def wait_all() -> list[Any]:
        state = State(s)
        try:
            with Progress(
                console=errors, transient=True, disable=not errors.is_terminal
            ) as progress:
                task = progress.add_task("verified in every target", total=len(sent_))
                return await wait_puts(
                    state,
                    [one.request for one in sent_],
                    timeout,
                    on_progress=lambda done: progress.update(task, completed=done),
                )
        finally:
            await state.close()

    results = run(wait_all())
    for one, result in zip(sent_, results, strict=True):
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
        raise typer.Exit(Code.PARTIAL if len(failed) < len(results) else Code.FAILED)
