"""What every command shares: the app, the consoles, settings, one-line failures, exit
codes and the choice between the API (a profile or ``MOVINGDATA_API_URL``) and direct mode."""

import asyncio
import os
import sys
from collections.abc import Awaitable, Callable
from enum import IntEnum
from typing import TYPE_CHECKING, Any, NoReturn, TypeVar

import orjson
import typer
from rich.console import Console

from workers.settings import KafkaRole, Settings, load_settings

if TYPE_CHECKING:
    from workers.client.remote import ApiError, Remote
    from workers.client.state import State
    from workers.tiering.live import Tiering

app = typer.Typer(no_args_is_help=True, help="Move data between clouds.")
console = Console(soft_wrap=True)
errors = Console(stderr=True, soft_wrap=True)
T = TypeVar("T")
DATA = "Data: through the API when logged in or MOVINGDATA_API_URL is set, else direct"
OPERATOR = "Operator: direct access to the fleet's services"


class Code(IntEnum):
    """Exit codes (the README's "Exit codes"): a script tells these apart."""

    OK = 0
    FAILED = 1  # the operation failed (a put that failed, a broken audit chain)
    USAGE = 2  # the command line itself is wrong (click's own code)
    NOT_FOUND = 3  # no such object, version, token or profile
    REFUSED = 4  # not allowed: no credential, a scope missing, held, tombstoned
    RETRY = 5  # a service is down, busy or rehydrating: the same command may work later
    PARTIAL = 6  # some of several items failed, the others are done


class Chosen:
    """The root options: the profile asked for with ``--profile``."""

    profile: str | None = None


def show_version(value: bool) -> None:
    if value:
        from importlib.metadata import version

        console.print(f"movingdata {version('movingdata')}")
        raise typer.Exit()


@app.callback()
def root(
    profile: str | None = typer.Option(
        None, "--profile", help="The API profile to use (see `login`); MOVINGDATA_PROFILE."
    ),
    _version: bool = typer.Option(
        False, "--version", callback=show_version, is_eager=True, help="Print the version."
    ),
) -> None:
    """Move data between clouds securely and verifiably."""
    Chosen.profile = profile


def remote() -> "Remote | None":
    """The API client when a profile or MOVINGDATA_API_URL is set, else None (direct mode)."""
    from workers.client.profiles import ProfileError, active
    from workers.client.remote import Remote

    try:
        profile = active(os.environ, Chosen.profile)
    except ProfileError as exc:
        fail(str(exc), Code.USAGE)
    return None if profile is None else Remote(profile)


def api_failed(exc: "ApiError") -> NoReturn:
    """An error answer as one line, with the exit code of its kind."""
    if exc.transient:
        code = Code.RETRY
    elif exc.status in (404, 410):
        code = Code.NOT_FOUND
    elif exc.status in (401, 403, 409):
        code = Code.REFUSED
    elif exc.status in (400, 413, 416, 422):
        code = Code.USAGE
    else:
        code = Code.FAILED
    fail(exc.detail if exc.status == 0 else f"{exc.detail} (HTTP {exc.status})", code)


def no_tenant(tenant: str | None) -> None:
    """Through the API the token names the tenant: a --tenant flag is refused, not ignored."""
    if tenant is not None:
        fail("--tenant is for direct mode; through the API your token names the tenant", Code.USAGE)


def settings(kafka_role: KafkaRole = "operator") -> Settings:
    """An operator's settings (with the reader's and admin's tokens); workers load their own.
    On the local broker's SASL listener the CLI is its operator user, the API its own."""
    return load_settings(operator=True, kafka_role=kafka_role)


def fail(message: str, code: int = 1) -> NoReturn:
    errors.print(f"[red]error:[/red] {message}", highlight=False)
    raise typer.Exit(code)


def load_tiering(s: Settings) -> "Tiering":
    """The settings' tiering policy and prices, or one line saying what is wrong."""
    from workers.core.prices import PriceError
    from workers.tiering.live import Tiering
    from workers.tiering.policy import PolicyError

    try:
        return Tiering.load(s)
    except (PolicyError, PriceError) as exc:
        fail(str(exc))


def run(coro: Any) -> Any:
    """Run a coroutine; a refusal or an unreachable service becomes one clear line."""
    from aiokafka.errors import KafkaError
    from pymongo.errors import PyMongoError

    from workers.client.ops import Held
    from workers.client.puts import BadNames
    from workers.client.state import Unknown
    from workers.errors import MovingDataError, Retryable

    try:
        return asyncio.run(coro)
    except Unknown as exc:
        fail(str(exc), Code.NOT_FOUND)
    except BadNames as exc:
        fail(str(exc), Code.USAGE)
    except Held as exc:  # retention or a legal hold: refused, as the API's 409
        fail(str(exc), Code.REFUSED)
    except Retryable as exc:  # a store down, a replica rehydrating
        fail(str(exc), Code.RETRY)
    except MovingDataError as exc:
        fail(str(exc))
    except KafkaError as exc:
        fail(f"the broker is unreachable ({type(exc).__name__}): is the stack up?", Code.RETRY)
    except PyMongoError as exc:
        fail(f"the database is unreachable ({type(exc).__name__}): is the stack up?", Code.RETRY)


def said(as_json: bool, doc: dict[str, Any], text: str) -> None:
    """A command's outcome: one JSON object with ``--json``, else a line for people."""
    if as_json:
        emit_json(doc)
    else:
        console.print(text, highlight=False)


JSON = typer.Option(False, "--json", help="The outcome as one JSON object.")


def emit_json(doc: Any) -> None:
    sys.stdout.write(orjson.dumps(doc, default=str).decode() + "\n")


def on_state(call: "Callable[[State], Awaitable[T]]") -> T:
    """``call`` with the database (the operator's settings) open, then closed; run as
    ``run`` runs a coroutine (one clear line for a refusal or an unreachable service)."""
    from workers.client.state import State

    async def go() -> T:
        state = State(settings())
        try:
            return await call(state)
        finally:
            await state.close()

    return run(go())  # type: ignore[no-any-return]


def resolved(ref: str, tenant: str) -> tuple[str, list[dict[str, Any]]]:
    """The object an id or name refers to, and its versions (a clear error if none)."""
    return on_state(lambda state: state.resolve(ref, tenant))


def picked(ref: str, version: int | None, tenant: str) -> dict[str, Any]:
    """The version of an object asked for, else its newest verified one (a clear error)."""
    from workers.client.state import Unknown, pick_version

    _, docs = resolved(ref, tenant)
    try:
        return pick_version(docs, version, ref)
    except Unknown as exc:
        fail(str(exc), Code.NOT_FOUND)
