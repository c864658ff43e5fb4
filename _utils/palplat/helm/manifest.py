"""Rendered manifests and what a drift check compares: objects, their shape (the fields a
chart sets) and the live objects restricted to that shape."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import yaml

from palplat import kube as k8s


def parse_manifest(text: str, namespace: str) -> list[dict]:
    """The objects of a rendered manifest (``List`` kinds flattened)."""
    out: list[dict] = []
    for doc in yaml.safe_load_all(text or ""):
        if not isinstance(doc, dict) or not doc.get("kind"):
            continue
        items = doc.get("items") if doc["kind"].endswith("List") else None
        for obj in items if isinstance(items, list) else [doc]:
            out.append(obj)
    for obj in out:
        obj.setdefault("metadata", {}).setdefault("namespace", namespace)
    return out


def _drop_empty(value: Any) -> Any:
    if isinstance(value, Mapping):
        out = {k: _drop_empty(v) for k, v in value.items()}
        return {k: v for k, v in out.items() if v not in (None, {}, [])}
    if isinstance(value, list):
        return [_drop_empty(v) for v in value]
    return value


def shape_of(desired: Mapping[str, Any]) -> dict:
    """The fields a chart sets on an object, as the server stores them."""
    return _drop_empty(k8s.normalize(k8s.secret_as_stored(dict(desired))))


def restrict(live: Mapping[str, Any], shape: Any) -> Any:
    """``live`` (normalized) restricted to the fields of ``shape``, empty fields dropped."""
    return _drop_empty(k8s.project(k8s.normalize(live), shape))


def baseline(live: Mapping[str, Any] | None, desired: Mapping[str, Any]) -> dict | None:
    """``live`` restricted to the fields ``desired`` sets: what a drift check compares."""
    if live is None:
        return None
    return restrict(live, shape_of(desired))


def obj_key(obj: Mapping[str, Any], namespaced: bool = True) -> str:
    meta = obj.get("metadata") or {}
    return k8s.key_of(
        obj.get("kind", ""), meta.get("name", ""), meta.get("namespace") if namespaced else None
    )
