"""The ``movingdata`` command line: one module per command group, registered on ``app``."""

from workers.cli import (  # noqa: F401  (each module registers its commands)
    audit,
    browse,
    holds,
    keys,
    login,
    put,
    remove,
    restore,
    serve,
    share,
    stack,
    sync,
    tier,
    tokens,
)
from workers.cli.base import app


def main() -> None:
    app()
