"""JSON Schema of pillar files holding the ``palplat`` key, for editors and CI.

python -m palplat.schema > schema/palplat.schema.json      (make schema)
"""

from __future__ import annotations

import json

from palplat.model import PalplatPillar


def pillar_schema() -> dict:
    inner = PalplatPillar.model_json_schema(by_alias=True, mode="validation")
    defs = inner.pop("$defs", {})
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": "https://palplat.dev/schema/palplat.schema.json",
        "title": "palplat pillar",
        "description": "A Salt pillar file with the palplat key (values may be partial: "
        "Salt merges several files; `salt-run palplat.validate` checks the merged result).",
        "type": "object",
        "properties": {"palplat": inner},
        "$defs": defs,
    }


def main() -> None:
    print(json.dumps(pillar_schema(), indent=2, sort_keys=True))


if __name__ == "__main__":
    main()
