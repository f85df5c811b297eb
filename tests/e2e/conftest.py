"""E2E tests use the shared pipeline fixtures (tests/pipeline.py)."""

from tests.pipeline import pipeline, pipeline_overrides, source_dir, state, worker_all

__all__ = ["pipeline", "pipeline_overrides", "source_dir", "state", "worker_all"]
