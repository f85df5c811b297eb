"""Secrets the stack generates, kept under ``<home>`` with mode 600 and never printed.

``local.env`` holds ``MOVINGDATA_*`` lines that ``load_settings`` reads after the environment.
"""

import os
from pathlib import Path


def write_secret(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` readable by the owner only, from the first byte."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with os.fdopen(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w") as fd:
        fd.write(text)
    path.chmod(0o600)


def read_local_env(path: Path) -> dict[str, str]:
    if not path.exists():
        return {}
    lines = path.read_text().splitlines()
    return dict(line.split("=", 1) for line in lines if "=" in line)


def ensure_local_env(path: Path, values: dict[str, str]) -> dict[str, str]:
    """Add the ``values`` whose names are missing (existing ones win); return the whole file."""
    current = read_local_env(path)
    merged = {**values, **current}
    if merged != current:
        write_secret(path, "".join(f"{k}={v}\n" for k, v in sorted(merged.items())))
    return merged
