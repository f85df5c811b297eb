"""What every command shares: the app, the consoles, settings, one-line failures."""

import asyncio
import sys
from typing import TYPE_CHECKING, Any, NoReturn

import orjson
import typer
from rich.console import Console

from workers.settings import KafkaRole, Settings, load_settings

if TYPE_CHECKING:
    from workers.tiering.live import Tiering

app = typer.Typer(no_args_is_help=True, add_completion=False, help="Move data between clouds.")
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
