"""Readiness decisions: what each process cannot serve without (``workers.health``)."""

from workers.health import NEEDS, Needs, needs_of, ready

ALL_OK = {"broker": "ok", "database": "ok", "kms": "ok", "store:s3": "ok", "store:gcs": "ok"}


def test_one_cloud_down_keeps_the_api_ready_every_cloud_down_does_not() -> None:
    api = NEEDS["api"]
    assert ready(ALL_OK, api)
    assert ready(ALL_OK | {"store:gcs": "unreachable"}, api)
    assert not ready(ALL_OK | {"store:gcs": "unreachable", "store:s3": "timeout"}, api)
    assert not ready(ALL_OK | {"database": "unreachable"}, api)
    assert ready(ALL_OK | {"kms": "unreachable"}, api)  # reported, not required


def test_a_worker_needs_what_its_stages_touch() -> None:
    sink = needs_of(["sink"])
    assert sink == Needs(frozenset({"broker", "database", "kms"}), a_store=False)
    no_stores = {k: "unreachable" if k.startswith("store:") else v for k, v in ALL_OK.items()}
    assert ready(no_stores, sink)  # the sink writes no store
    assert not ready(no_stores, needs_of(["replicate"]))
    assert ready(ALL_OK | {"database": "unreachable"}, needs_of(["replicate", "verify"]))
    assert not ready(ALL_OK | {"kms": "timeout"}, needs_of(["ingest", "encrypt"]))
    every = needs_of(NEEDS.keys() - {"api"})
    assert every.required == {"broker", "database", "kms"} and every.a_store


def test_every_stage_says_what_it_needs() -> None:
    from workers.app import STAGES

    assert set(STAGES) <= NEEDS.keys()


def test_a_missing_check_is_not_ok() -> None:
    assert not ready({"database": "ok"}, NEEDS["ingest"])
