"""Schema contracts: frozen samples of every version still decode; bad input is refused."""

import base64
import contextlib
import unicodedata
from pathlib import Path

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from schemas.codec import REGISTRY, InvalidEvent, decode, encode
from schemas.events import (
    BIDI_CONTROLS,
    INLINE_MAX_BYTES,
    IngestRequest,
    Placement,
    Source,
    object_id_for,
    safe_key,
)

SAMPLES = sorted((Path(__file__).parent / "samples").glob("*.json"))


def test_every_registered_kind_has_a_frozen_sample() -> None:
    names = {p.name for p in SAMPLES}
    assert names == {f"{kind}.v{v}.json" for kind, v in REGISTRY}


@pytest.mark.parametrize("path", SAMPLES, ids=lambda p: p.name)
def test_frozen_sample_decodes_and_round_trips(path: Path) -> None:
    raw = path.read_bytes()
    event = decode(raw)
    sample, now = orjson.loads(raw), orjson.loads(encode(event))
    # Fields added since the sample was frozen take their defaults; nothing else may change.
    assert kept(sample, now) == sample


def kept(sample: object, now: object) -> object:
    """``now`` restricted to the keys ``sample`` has, at every level."""
    if isinstance(sample, dict) and isinstance(now, dict):
        return {k: kept(v, now.get(k)) for k, v in sample.items()}
    return now


def ingest_sample() -> dict:
    return orjson.loads((Path(__file__).parent / "samples" / "ingest.request.v1.json").read_bytes())


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        (lambda d: d.pop("object_id"), "object_id: Field required"),
        (lambda d: d.update(v=2), "unknown event kind/version"),
        (lambda d: d.update(version="1"), "version: Input should be a valid integer"),
        (lambda d: d.update(extra=1), "extra: Extra inputs are not permitted"),
        (lambda d: d["placement"].update(name="../etc/passwd"), "no '.' or '..' segments"),
        (lambda d: d["placement"].update(name="/abs/path"), "must be relative"),
        (lambda d: d["placement"].update(name="a\x00b"), "NUL or control"),
        (lambda d: d["placement"].update(name="a\nb"), "NUL or control"),
        (lambda d: d["placement"].update(targets=["s3", "s3"]), "distinct"),
        (lambda d: d["placement"].update(targets=["dropbox"]), "targets.0"),
        (lambda d: d.update(source={"url": "http://evil/x"}), "source url must be"),
        (lambda d: d["source"].update(inline_b64="AA=="), "exactly one of"),
        (lambda d: d.update(object_id="a/b"), "object_id: String should match"),
    ],
)
def test_invalid_requests_are_refused_with_a_reason(change, reason: str) -> None:
    doc = ingest_sample()
    change(doc)
    with pytest.raises(InvalidEvent, match=reason):
        decode(orjson.dumps(doc), IngestRequest)


def test_inline_payload_is_capped() -> None:
    with pytest.raises(ValueError, match="over"):
        Source(inline_b64=base64.b64encode(b"x" * (INLINE_MAX_BYTES + 1)).decode())
    assert Source(inline_b64=base64.b64encode(b"x" * INLINE_MAX_BYTES).decode()).inline_bytes()


def test_kind_must_match_the_expected_topic() -> None:
    raw = (Path(__file__).parent / "samples" / "audit.v1.json").read_bytes()
    with pytest.raises(InvalidEvent, match="not accepted here"):
        decode(raw, IngestRequest)


@given(st.binary(max_size=2048))
def test_arbitrary_bytes_never_crash_the_decoder(raw: bytes) -> None:
    with contextlib.suppress(InvalidEvent):
        decode(raw)


@given(
    st.recursive(
        st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1) | st.text(max_size=20),
        lambda kids: (
            st.lists(kids, max_size=4) | st.dictionaries(st.text(max_size=8), kids, max_size=4)
        ),
        max_leaves=20,
    )
)
def test_arbitrary_json_never_crashes_the_decoder(doc: object) -> None:
    with contextlib.suppress(InvalidEvent):
        decode(orjson.dumps(doc))


def test_placement_accepts_nested_names() -> None:
    assert Placement(name="a/b/c.txt", targets=("s3",)).name == "a/b/c.txt"


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("caf\u00e9\u202e.txt", "bidi control"),
        ("a\u2066b", "bidi control"),
        ("bad\udcffname", "not valid UTF-8"),
        ("a\x85b", "NUL or control"),
        ("a//b", "empty segments"),
        ("dir/", "empty segments"),
    ],
)
def test_names_that_would_mislead_or_break_are_refused(name: str, reason: str) -> None:
    with pytest.raises(ValueError, match=reason):
        safe_key(name)


def test_names_are_nfc_normalised_so_one_name_is_one_object() -> None:
    decomposed, composed = "cafe\u0301.txt", "caf\u00e9.txt"
    assert safe_key(decomposed) == composed
    placement = Placement(name=decomposed, targets=("s3",))
    assert placement.name == composed
    assert object_id_for("t", placement.name) == object_id_for("t", composed)


@given(st.dictionaries(st.text(max_size=70), st.text(max_size=300), max_size=40))
def test_tags_are_either_storable_or_refused_with_a_reason(tags: dict[str, str]) -> None:
    try:
        placement = Placement(name="n", targets=("s3",), tags=tags)
    except ValueError as exc:
        assert "tag" in str(exc)
        return
    for key in placement.tags:
        assert key and "." not in key and not key.startswith("$") and len(key) < 64


@given(st.text(max_size=200))
def test_any_name_is_either_safe_or_refused(name: str) -> None:
    try:
        safe = safe_key(name)
    except ValueError:
        return
    assert safe == unicodedata.normalize("NFC", safe)
    assert not BIDI_CONTROLS.intersection(safe)
    assert all(c.isprintable() or c == " " or ord(c) > 0x9F for c in safe)
    safe.encode("utf-8")  # never a lone surrogate


def test_a_tag_key_that_breaks_a_database_field_is_refused() -> None:
    for key in ("a.b", "$where", "", "x" * 64):
        with pytest.raises(ValueError, match="tag key"):
            Placement(name="n", targets=("s3",), tags={key: "v"})
