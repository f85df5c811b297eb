"""JSON Schema documents of every event kind, for producers and consumers in any language.

``python -m schemas.jsonschema`` writes ``schemas/json/<kind>.v<v>.json``; a unit test fails
when a committed document differs from the models. The ingest request's schema asks only for
what a producer knows (``kind``, ``v``, ``placement`` and a source or a digest): ingest
derives the ids and the time.
"""

import json
from pathlib import Path
from typing import Any

from schemas.codec import REGISTRY
from schemas.events import IngestRequest

FOLDER = Path(__file__).parent / "json"
DERIVED_BY_INGEST = {"event_id", "object_id", "correlation_id", "produced_at", "version"}


def documents() -> dict[str, dict[str, Any]]:
    """Every event kind's JSON Schema, by file name."""
    found = {}
    for (kind, v), cls in sorted(REGISTRY.items()):
        schema = cls.model_json_schema()
        schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
        schema["$id"] = f"https://movingdata.dev/schemas/{kind}.v{v}.json"
        if cls is IngestRequest:
            schema["required"] = [f for f in schema["required"] if f not in DERIVED_BY_INGEST]
        found[f"{kind}.v{v}.json"] = schema
    return found


def rendered(schema: dict[str, Any]) -> str:
    return json.dumps(schema, indent=2, sort_keys=True) + "\n"


def main() -> None:
    FOLDER.mkdir(exist_ok=True)
    for name, schema in documents().items():
        (FOLDER / name).write_text(rendered(schema))
    print(f"{len(documents())} schemas written to {FOLDER}")


if __name__ == "__main__":
    main()
