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


# ------------------------------------------------------------------ the reference

# the placeholder of a mapping's keys, by the mapping's own key (else <name>)
KEY_NAMES = {
    "releases": "<release>",
    "services": "<service>",
    "users": "<user>",
    "secrets": "<name>",
    "generated": "<name>",
    "sets": "<set>",
    "mirrors": "<url>",
    "configs": "<registry>",
    "sysctl": "<parameter>",
    "config": "<flag>",
}
# fields whose leaves are all secrets, whatever their shape
SECRET_TREES = ("secret_values",)


def _ref(schema: dict, node: dict) -> dict:
    ref = node.get("$ref")
    if not ref:
        return node
    target = schema["$defs"][ref.rsplit("/", 1)[-1]]
    return {**target, **{k: v for k, v in node.items() if k != "$ref"}}


def _extra(node: dict):
    """The schema of a mapping's values: additionalProperties, or the one
    patternProperties value (True: anything; None: not a free mapping)."""
    extra = node.get("additionalProperties")
    pattern = node.get("patternProperties") or {}
    if extra is None and len(pattern) == 1:
        return next(iter(pattern.values()))
    return extra


def _branches(schema: dict, node: dict) -> tuple[list[dict], bool]:
    """The non-null alternatives of ``node`` (resolved) and whether null is allowed."""
    node = _ref(schema, node)
    alts = node.get("anyOf") or node.get("oneOf")
    if not alts:
        return [node], False
    out = [_ref(schema, a) for a in alts if a.get("type") != "null"]
    return out, len(out) < len(alts)


def _type(schema: dict, node: dict) -> str:
    alts, nullable = _branches(schema, node)
    names = []
    for a in alts:
        if a.get("x-palplat-secret"):
            names.append("secret")
        elif "const" in a:
            names.append(json.dumps(a["const"]))
        elif "enum" in a:
            names.append(" | ".join(json.dumps(e) for e in a["enum"]))
        elif a.get("type") == "array":
            names.append(f"list of {_type(schema, a.get('items') or {})}")
        elif a.get("type") == "object" and "properties" not in a:
            extra = _extra(a)
            inner = _type(schema, extra) if isinstance(extra, dict) else "any"
            names.append(f"mapping of {inner}")
        elif a.get("type") == "object" or "properties" in a:
            names.append("mapping")
        elif a.get("type"):
            names.append(str(a["type"]))
        else:
            names.append("any")
    text = " or ".join(dict.fromkeys(names)) or "any"
    return f"{text} or null" if nullable else text


def entries(schema: dict | None = None) -> list[dict]:
    """Every key of the ``palplat`` pillar, depth first: ``{path, type, default,
    required, secret, description, section}``; mapping keys the operator chooses appear
    as placeholders (``palplat:platform:releases:<release>:namespace``), list items as
    ``<n>``."""
    schema = schema or pillar_schema()
    out: list[dict] = []

    def walk(path: str, node: dict, required: bool, secret: bool, depth: int) -> None:
        alts, nullable = _branches(schema, node)
        obj = next((a for a in alts if "properties" in a), None)
        kind = _type(schema, node)
        # a secret itself, or a mapping (of mappings) of secrets
        is_secret = (
            secret or any(a.get("x-palplat-secret") for a in alts) or kind.endswith("of secret")
        )
        default = node.get("default", _ref(schema, node).get("default"))
        desc = node.get("description") or _ref(schema, node).get("description") or ""
        if obj is not None and not desc:
            desc = obj.get("description", "")
        out.append(
            {
                "path": path,
                "type": kind,
                "default": None if obj is not None else default,
                "has_default": "default" in node and obj is None,
                "required": required,
                "secret": is_secret,
                "description": " ".join(str(desc).split()),
                "section": obj is not None,
            }
        )
        if depth > 12:
            return
        last = path.rsplit(":", 1)[-1]
        if obj is not None:
            req = set(obj.get("required") or [])
            for key, sub in (obj.get("properties") or {}).items():
                walk(f"{path}:{key}", sub, key in req, is_secret or key in SECRET_TREES, depth + 1)
            extra = _extra(obj)
            if isinstance(extra, dict):
                walk(f"{path}:{KEY_NAMES.get(last, '<name>')}", extra, False, is_secret, depth + 1)
            return
        for a in alts:
            extra = _extra(a)
            if a.get("type") == "object" and isinstance(extra, dict):
                sub, _ = _branches(schema, extra)
                if any("properties" in s for s in sub) or any(
                    isinstance(_extra(s), dict) for s in sub
                ):
                    walk(
                        f"{path}:{KEY_NAMES.get(last, '<name>')}",
                        extra,
                        False,
                        is_secret,
                        depth + 1,
                    )
            items = a.get("items")
            if a.get("type") == "array" and isinstance(items, dict):
                sub, _ = _branches(schema, items)
                if any("properties" in s for s in sub):
                    walk(f"{path}:<n>", items, False, is_secret, depth + 1)

    walk("palplat", schema["properties"]["palplat"], True, False, 0)
    return out


def is_path(path: str, schema: dict | None = None) -> bool:
    """Whether ``path`` (``palplat:a:b``, placeholders ``<x>`` allowed) names a key the
    pillar has: known keys, any key of a mapping the operator fills (releases, values,
    k3s config), any index of a list."""
    schema = schema or pillar_schema()
    parts = path.split(":")
    if parts[0] != "palplat":
        return False
    node: dict = schema["properties"]["palplat"]
    for part in parts[1:]:
        alts, _ = _branches(schema, node)
        nxt = None
        for a in alts:
            props = a.get("properties") or {}
            if part in props:
                nxt = props[part]
                break
            extra = _extra(a)
            if a.get("type") == "object" or "properties" in a:
                if extra is True or (extra is None and "properties" not in a):
                    return True  # free-form from here (chart values, k3s flags)
                if isinstance(extra, dict):
                    nxt = extra
                    break
            if a.get("type") == "array" and (part.isdigit() or part.startswith("<")):
                nxt = a.get("items") or {}
                break
        if nxt is None:
            return False
        node = nxt
    return True
