"""The CLI's HTTP client against the API's own OpenAPI document (every operation it calls
exists, with each query parameter it may send), its profiles (mode 600, which one wins) and
the audit tail's polling (each record once, stops when idle)."""

import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from workers.api.app import create_app
from workers.cli.audit import tail_through_api
from workers.client.profiles import Profile, ProfileError, active, config_file, read, remove, save
from workers.client.remote import OPERATIONS, ApiError, Remote, error_of
from workers.settings import Settings


def test_every_operation_of_the_client_is_in_the_openapi_document(settings: Settings) -> None:
    document = create_app(settings).openapi()
    for name, operation in OPERATIONS.items():
        route = document["paths"].get(operation.path)
        assert route is not None, f"{name}: no {operation.path}"
        declared = route.get(operation.method.lower())
        assert declared is not None, f"{name}: no {operation.method} {operation.path}"
        query = {p["name"] for p in declared.get("parameters", []) if p["in"] == "query"}
        assert operation.params <= query, f"{name}: {operation.params - query} not taken"


def env_for(tmp_path: Path, **more: str) -> dict[str, str]:
    return {"HOME": str(tmp_path), "XDG_CONFIG_HOME": str(tmp_path / "cfg"), **more}


def test_profiles_are_private_and_the_environment_wins(tmp_path: Path) -> None:
    env = env_for(tmp_path)
    assert active(env) is None  # no profile, no URL: direct mode
    path = config_file(env)
    save(path, Profile("work", "https://api.example", "mdt_a"))
    save(path, Profile("lab", "http://127.0.0.1:8001", "mdt_b"))
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert active(env) == Profile("lab", "http://127.0.0.1:8001", "mdt_b")  # the last login
    assert active(env, "work") == Profile("work", "https://api.example", "mdt_a")
    assert active(env | {"MOVINGDATA_PROFILE": "work"}).url == "https://api.example"  # type: ignore[union-attr]
    url = {"MOVINGDATA_API_URL": "https://other.example/"}
    with pytest.raises(ProfileError, match="MOVINGDATA_TOKEN"):
        active(env | url)  # the current profile's token is for another API
    chosen = active(env | url | {"MOVINGDATA_TOKEN": "mdt_c"})
    assert chosen == Profile("environment", "https://other.example", "mdt_c")
    with pytest.raises(ProfileError, match="no profile 'gone'"):
        active(env, "gone")
    remove(path, "lab")
    assert read(path)["current"] == "work"


def test_a_broken_profile_file_is_one_line(tmp_path: Path) -> None:
    env = env_for(tmp_path)
    config_file(env).parent.mkdir(parents=True)
    config_file(env).write_text("{not json")
    with pytest.raises(ProfileError, match="log in again"):
        active(env)


def test_an_error_answer_becomes_its_problem() -> None:
    import httpx

    answer = httpx.Response(
        409, json={"type": "https://movingdata.dev/problems/held", "detail": "held until 2027"}
    )
    error = error_of(answer)
    assert (error.status, error.detail) == (409, "held until 2027")
    assert error.kind == "https://movingdata.dev/problems/held"
    assert not error.transient and error_of(httpx.Response(503, text="<html>")).transient


class Pages(Remote):
    """The audit route answering from a list that grows as it is polled."""

    def __init__(self, batches: list[list[dict[str, Any]]]) -> None:
        self.batches, self.asked = batches, []

    def json(self, op: str, **kwargs: Any) -> Any:
        self.asked.append(kwargs["params"]["since"])
        return {"items": self.batches.pop(0) if self.batches else []}


def record(n: int, second: int) -> dict[str, Any]:
    return {"event_id": f"e{n}", "produced_at": f"2026-12-07T10:00:{second:02d}+00:00"}


def test_the_tail_yields_each_record_once_and_stops_when_idle() -> None:
    late = record(3, 1)  # stored after e2, produced before it: the overlap finds it
    api = Pages([[record(1, 0), record(2, 5)], [record(2, 5), late], [late]])
    ticks: Iterator[float] = iter(range(100))
    seen = list(tail_through_api(api, True, idle=3, clock=lambda: float(next(ticks)), every=0))
    assert [r["event_id"] for r in seen] == ["e1", "e2", "e3"]
    assert api.asked[1] < "2026-12-07T10:00:05"  # looked back, not from the last record


def test_a_transient_status_is_retryable() -> None:
    assert ApiError(0, "down").transient and not ApiError(404, "gone").transient
