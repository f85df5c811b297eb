"""The scheduled scrub's choice: a share of the replicas, read back longest ago first."""

from datetime import UTC, datetime, timedelta

from workers.client.ops import least_recently_read_back
from workers.client.state import Doc

T0 = datetime(2025, 1, 1, tzinfo=UTC)


def doc(n: int, read_back: dict[str, datetime | None], state: str = "verified") -> Doc:
    return {
        "_id": f"o{n}:1",
        "ciphertext_sha256": "0" * 64,
        "state": state,
        "targets": list(read_back),
        "replicas": {t: {"read_back_at": at} for t, at in read_back.items()},
    }


def test_never_read_back_first_then_oldest() -> None:
    docs = [
        doc(1, {"s3": T0 + timedelta(hours=2), "gcs": T0}),
        doc(2, {"s3": None, "azure": T0 + timedelta(hours=1)}),
    ]
    chosen = least_recently_read_back(docs, 0.5)
    assert [(d["_id"], t) for d, t in chosen] == [("o2:1", "s3"), ("o1:1", "gcs")]


def test_at_least_one_and_never_gone_versions() -> None:
    docs = [doc(1, {"s3": T0}, state="deleted"), doc(2, {"s3": T0}), doc(3, {"s3": T0})]
    assert [d["_id"] for d, _ in least_recently_read_back(docs, 0.0001)] == ["o2:1"]
    assert least_recently_read_back(docs, 0) == []
    assert least_recently_read_back([], 1.0) == []


def test_repeated_runs_read_every_replica_back() -> None:
    docs = [doc(n, {"s3": None, "azure": None, "gcs": None}) for n in range(10)]
    seen: set[tuple[str, str]] = set()
    now = T0
    for _ in range(10):  # 10% a run: ten runs cover all thirty replicas
        now += timedelta(hours=1)
        for d, target in least_recently_read_back(docs, 0.1):
            seen.add((d["_id"], target))
            d["replicas"][target]["read_back_at"] = now  # what the sink records
    assert len(seen) == 30
