"""Shared fixtures: settings pointing at the local stack, unique names per test."""

import uuid

import pytest
from hypothesis import settings as hypothesis_settings

from workers.settings import Settings, load_settings

# Timing is not what property tests check: no per-example deadline on a busy 2-core machine.
hypothesis_settings.register_profile("movingdata", deadline=None)
hypothesis_settings.load_profile("movingdata")


@pytest.fixture(scope="session")
def settings() -> Settings:
    return load_settings()


@pytest.fixture
def unique() -> str:
    """A fresh lowercase name usable as topic, bucket, container or database name."""
    return f"t{uuid.uuid4().hex[:12]}"
