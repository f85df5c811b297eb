"""The dashboard over a seeded run: Streamlit's AppTest, then a real headless Chromium that
loads the page, finds the objects, a lineage and the fleet, sees no developer toolbar, and saves
a screenshot."""

import asyncio
import os
import socket
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from streamlit.testing.v1 import AppTest

from tests.pipeline import Pipeline
from tests.waiting import wait_for
from workers.app import STAGES
from workers.dashboard import PAGE

CHROMIUM = "/usr/bin/chromium"
# The flags a sandboxed root run with no network needs (see the machine notes).
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip


@pytest.fixture
def pipeline_overrides() -> dict[str, object]:
    return {"source_roots": ()}


@pytest.fixture
def seeded(pipeline: Pipeline, worker_all: subprocess.Popen[bytes], tmp_path: Path) -> str:
    """Three objects put, one removed; returns a reader token."""
    folder = tmp_path / "seed"
    folder.mkdir()
    for name in ("alpha.txt", "beta.txt", "gamma.txt"):
        (folder / name).write_bytes(name.encode() * 200)
    assert pipeline.cli("put", str(folder), "--prefix", "seed/", "--wait").returncode == 0
    assert pipeline.cli("rm", "seed/gamma.txt").returncode == 0
    made = pipeline.cli("tokens", "create", "dashboard", "--role", "reader")
    assert made.returncode == 0, made.stderr
    return made.stdout.strip()


def dashboard_env(pipeline: Pipeline, token: str) -> dict[str, str]:
    return {**pipeline.env, "MOVINGDATA_DASHBOARD_TOKEN": token}


def test_the_page_renders_the_run_and_a_lineage(
    pipeline: Pipeline, seeded: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in dashboard_env(pipeline, seeded).items():
        if name.startswith("MOVINGDATA_"):
            monkeypatch.setenv(name, value)
    at = AppTest.from_file(str(PAGE), default_timeout=60).run()
    assert not at.exception, at.exception
    metrics = {m.label: m.value for m in at.metric}
    assert (metrics["verified"], metrics["deleted"]) == ("2", "1")
    objects = next(df.value for df in at.dataframe if "object id" in df.value.columns)
    names = set(objects["name"])
    assert names == {"seed/alpha.txt", "seed/beta.txt", "seed/gamma.txt"}
    assert set(objects["size"]) == {"1.8 KiB", "1.6 KiB"}  # 1800 and 1600 bytes
    lineage = next(df.value for df in at.dataframe if "step" in df.value.columns)
    assert "object.accepted" in set(lineage["step"])
    assert all(lineage["actor"])  # every step names its actor
    # The fleet: one row per stage, each run by the one worker of the run (--agents all), ready.
    stages = next(df.value for df in at.dataframe if "consumers" in df.value.columns)
    assert list(stages["stage"]) == list(STAGES)
    assert set(stages["workers"]) == {1} and set(stages["ready"]) == {"1/1"}
    assert set(stages["consumers"]) == {1}
    assert set(stages["groups"]) <= {"all stages (Stable)", "all stages (CompletingRebalance)"}
    workers = next(df.value for df in at.dataframe if "last beat (s ago)" in df.value.columns)
    assert list(workers["stages"]) == ["all stages"] and list(workers["ready"]) == ["yes"]
    assert seeded not in str(at.main) and seeded not in str(at.sidebar)  # no secret shown


def test_a_headless_chromium_sees_the_run(pipeline: Pipeline, seeded: str) -> None:
    from playwright.sync_api import sync_playwright

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with (pipeline.logs / "dashboard.log").open("wb") as log:
        proc = subprocess.Popen(
            [str(Path(sys.executable).parent / "movingdata"), "dashboard", "--port", str(port)],
            env=dashboard_env(pipeline, seeded),
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    url = f"http://127.0.0.1:{port}"

    async def serving() -> bool:
        try:
            async with httpx.AsyncClient() as http:
                return (await http.get(f"{url}/_stcore/health", timeout=1)).status_code == 200
        except httpx.HTTPError:
            return False

    shot = pipeline.settings.home / "artifacts" / "dashboard.png"
    shot.parent.mkdir(parents=True, exist_ok=True)
    try:
        asyncio.run(wait_for(serving, timeout_s=60))
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            view = browser.new_page(viewport={"width": 1440, "height": 900})  # a laptop screen
            view.goto(url)
            view.get_by_text("3 versions of 3 objects").wait_for(timeout=60_000)
            # Tables are drawn on a canvas; their (hidden) accessible grid carries the same cells.
            cell = view.get_by_role(
                "gridcell", name="seed/beta.txt", exact=True, include_hidden=True
            )
            cell.first.wait_for(state="attached", timeout=30_000)
            view.get_by_role("tab", name="Lineage").click()
            view.get_by_text("Lineage of seed/", exact=False).wait_for(timeout=30_000)
            step = view.get_by_role(
                "gridcell", name="object.accepted", exact=True, include_hidden=True
            )
            step.first.wait_for(state="attached", timeout=30_000)
            view.get_by_role("tab", name="Fleet").click()
            stage = view.get_by_role("gridcell", name="replicate", exact=True, include_hidden=True)
            stage.first.wait_for(state="attached", timeout=30_000)
            ready = view.get_by_role("gridcell", name="1/1", exact=True, include_hidden=True)
            ready.first.wait_for(state="attached", timeout=30_000)
            # An operator's page: Streamlit's developer toolbar (Deploy, rerun, cache) is off.
            assert view.get_by_role("button", name="Deploy").count() == 0
            assert view.locator('[data-testid="stAppDeployButton"]').count() == 0
            view.screenshot(path=str(shot), full_page=True)
            assert seeded not in view.content()
            browser.close()
    finally:
        os.killpg(proc.pid, 15)
        proc.wait(timeout=30)
    assert shot.stat().st_size > 10_000
