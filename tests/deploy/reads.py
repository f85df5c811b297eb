"""Which settings a process reads: every read of a ``Settings`` field, recorded.

A component "uses" a setting when its code path reads it. ``recording()`` watches the reads
in this process; ``python -m tests.deploy.reads FILE COMMAND...`` runs a container's command
(``movingdata ARGS``, the real CLI, or ``python ...``) and appends each setting it reads, once,
to FILE as it happens, so a worker stopped by a signal has already told.
"""

import runpy
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from workers.settings import Settings

FIELDS = frozenset(Settings.model_fields)


@contextmanager
def recording(seen: Callable[[str], None] | None = None) -> Iterator[set[str]]:
    """The names of the Settings fields read (by any instance) while the block runs."""
    names: set[str] = set()
    original = Settings.__getattribute__

    def getattribute(self: Settings, name: str) -> Any:
        if name in FIELDS and name not in names:
            names.add(name)
            if seen is not None:
                seen(name)
        return original(self, name)

    Settings.__getattribute__ = getattribute  # type: ignore[method-assign, assignment]
    try:
        yield names
    finally:
        del Settings.__getattribute__  # back to BaseModel's


def main() -> None:
    """``FILE movingdata ARGS...``, ``FILE python -c SCRIPT`` or ``FILE python PATH ARGS...``:
    that command, run in this process, its reads appended to FILE."""
    out, program, *args = sys.argv[1:]
    with Path(out).open("a", buffering=1) as log, recording(lambda name: print(name, file=log)):
        if program == "movingdata":
            from workers.cli import app

            app(args, prog_name="movingdata")
        elif program == "python" and args[:1] == ["-c"]:
            sys.argv = ["-c", *args[2:]]
            exec(compile(args[1], "<string>", "exec"), {"__name__": "__main__"})
        elif program == "python":
            sys.argv = args
            runpy.run_path(args[0], run_name="__main__")
        else:
            raise SystemExit(f"reads: cannot run {program!r}")


if __name__ == "__main__":
    main()
