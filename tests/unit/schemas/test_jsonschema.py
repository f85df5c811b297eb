"""The committed JSON Schemas are the models' own, and the frozen samples conform to them."""

from pathlib import Path

import jsonschema
import orjson
import pytest

from schemas.jsonschema import FOLDER, documents, rendered

SAMPLES = Path(__file__).parent / "samples"


def test_committed_schemas_are_current() -> None:
    expected = {name: rendered(schema) for name, schema in documents().items()}
    committed = {p.name: p.read_text() for p in FOLDER.glob("*.json")}
    assert committed == expected, "run: python -m schemas.jsonschema"


@pytest.mark.parametrize("name", sorted(documents()))
def test_every_frozen_sample_conforms_to_its_schema(name: str) -> None:
    sample = orjson.loads((SAMPLES / name).read_bytes())
    jsonschema.validate(sample, documents()[name])


def test_a_producer_in_any_language_needs_only_what_it_knows() -> None:
    minimal = {
        "kind": "ingest.request",
        "v": 1,
        "source": {"inline_b64": "aGk="},
        "placement": {"name": "hello.txt", "targets": ["s3"]},
    }
    jsonschema.validate(minimal, documents()["ingest.request.v1.json"])
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(
            {"kind": "ingest.request", "v": 1}, documents()["ingest.request.v1.json"]
        )
