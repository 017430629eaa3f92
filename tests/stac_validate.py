"""Validate STAC JSON against the schemas shipped in ``tests/stac_schemas`` (offline, a local registry)."""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path

import jsonschema
from referencing import Registry, Resource

SCHEMAS = Path(__file__).parent / "stac_schemas"
SPEC = "https://schemas.stacspec.org/v1.1.0"
CORE = {"Feature": f"{SPEC}/item-spec/json-schema/item.json",
        "Collection": f"{SPEC}/collection-spec/json-schema/collection.json",
        "Catalog": f"{SPEC}/catalog-spec/json-schema/catalog.json"}


@lru_cache(maxsize=1)
def registry() -> Registry:
    """Every shipped schema under its ``$id`` and, for the core files, the URL their neighbours refer to it by."""
    resources = []
    for path in sorted(SCHEMAS.rglob("*.json")):
        schema = json.loads(path.read_text())
        resource = Resource.from_contents(schema)
        resources.append((schema["$id"].rstrip("#"), resource))
        if path.parent.name == "core":
            spec = {"catalog": "catalog-spec", "collection": "collection-spec"}.get(path.stem, "item-spec")
            resources.append((f"{SPEC}/{spec}/json-schema/{path.name}", resource))
    return Registry().with_resources(resources)


def validate(path: Path) -> list[str]:
    """Validate a STAC file against its core schema and every extension schema shipped; the schema URLs used."""
    data = json.loads(path.read_text())
    used = [CORE[data["type"]], *(uri for uri in data.get("stac_extensions", []) if uri in registry())]
    for uri in used:
        schema = registry().contents(uri)
        jsonschema.Draft7Validator(schema, registry=registry()).validate(data)
    return used
