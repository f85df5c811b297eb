"""Shared fixtures: settings pointing at the local stack, unique names per test."""

import uuid
from pathlib import Path

import pytest
from hypothesis import settings as hypothesis_settings

from workers.settings import Settings, load_settings

# Timing is not what property tests check: no per-example deadline on a busy 2-core machine.
hypothesis_settings.register_profile("movingdata", deadline=None)
hypothesis_settings.load_profile("movingdata")

UNIT = Path(__file__).parent / "unit"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Every test outside ``tests/unit`` talks to the local stack: ``-m "not stack"`` runs
    the rest with no service at all."""
    for item in items:
        if not item.path.is_relative_to(UNIT):
            item.add_marker(pytest.mark.stack)


@pytest.fixture(scope="session")
def settings() -> Settings:
    return load_settings()


@pytest.fixture
def unique() -> str:
    """A fresh lowercase name usable as topic, bucket, container or database name."""
    return f"t{uuid.uuid4().hex[:12]}"
