"""Shared fixtures: settings pointing at the local stack, unique names per test."""

import uuid

import pytest

from workers.settings import Settings, load_settings


@pytest.fixture(scope="session")
def settings() -> Settings:
    return load_settings()


@pytest.fixture
def unique() -> str:
    """A fresh lowercase name usable as topic, bucket, container or database name."""
    return f"t{uuid.uuid4().hex[:12]}"
