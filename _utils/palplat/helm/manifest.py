"""Rendered manifests and what a diff or drift check compares: objects, their shape (the
fields a chart sets) and the live objects restricted to that shape.

Every manifest is read with :mod:`palplat.yamlio` (YAML 1.2 strings such as an unquoted
``=``, as Kubernetes reads them). An object with no (or an empty) ``metadata.namespace``
is in the release namespace, as helm installs it; cluster-scoped objects carry none
(:func:`scoped`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from palplat import kube as k8s
from palplat import yamlio

# `helm template` prints `---` then `# Source: <chart path>/<file>` before each document
# (a crds/ file once, before all of its documents)
_SEPARATOR = re.compile(r"^---[ \t]*$", re.M)
_SOURCE = re.compile(r"^# Source: (.+)$", re.M)
# a file of a chart's (or subchart's) crds/ directory: <chart>(/charts/<sub>)*/crds/...
_CRDS_DIR = re.compile(r"^[^/]+(/charts/[^/]+)*/crds/")


def parse_manifest(text: str, namespace: str) -> list[dict]:
    """The objects of a rendered manifest (``List`` kinds flattened); an object without a
    namespace (none, null or empty) gets ``namespace``, as helm installs it."""
    out: list[dict] = []
    for doc in yamlio.load_all(text or "", "the rendered manifest"):
        if not isinstance(doc, dict) or not doc.get("kind"):
            continue
        items = doc.get("items") if str(doc["kind"]).endswith("List") else None
        for obj in items if isinstance(items, list) else [doc]:
            if isinstance(obj, dict):
                out.append(obj)
    for obj in out:
        meta = obj.get("metadata")
        if not isinstance(meta, dict):
            meta = obj["metadata"] = {}
        if not meta.get("namespace"):
            meta["namespace"] = namespace
    return out


def split_crds(text: str, namespace: str) -> tuple[list[dict], list[dict]]:
    """``helm template --include-crds`` output: ``(the CustomResourceDefinitions of the
    crds/ directories of the chart and its enabled subcharts, every other object)``.

    helm prints crds/ files only for the (sub)charts the values enable, so CRDs of a
    disabled dependency are not there. CRDs a chart renders from templates/ belong to the
    release manifest (helm installs them) and are in the second list."""
    crds: list[dict] = []
    rest: list[dict] = []
    source = ""
    for chunk in _SEPARATOR.split(text or ""):
        found = _SOURCE.search(chunk)
        if found:
            source = found.group(1).strip()
        objs = parse_manifest(chunk, namespace)
        if _CRDS_DIR.match(source):
            for o in objs:
                if o.get("kind") == "CustomResourceDefinition":
                    o["metadata"].pop("namespace", None)
                    crds.append(o)
        else:
            rest.extend(objs)
    return crds, rest


def scoped(obj: dict, namespaced: bool) -> dict:
    """``obj`` without ``metadata.namespace`` when its kind is cluster-scoped (in place)."""
    if not namespaced:
        (obj.get("metadata") or {}).pop("namespace", None)
    return obj


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


def compare(live: Mapping[str, Any] | None, desired: Mapping[str, Any]) -> dict:
    """The field diff applying ``desired`` would make to ``live``, like with like: only
    the fields the chart sets, compared in the form the server stores them
    (:func:`palplat.kube.like_stored`: zero values the server omits, canonical
    quantities). ``live=None``: the whole object (a create)."""
    if live is None:
        return k8s.diff(None, desired)
    want = shape_of(desired)
    got = restrict(live, want)
    return k8s.diff(got, k8s.like_stored(got, want))


def obj_key(obj: Mapping[str, Any], namespaced: bool = True) -> str:
    meta = obj.get("metadata") or {}
    return k8s.key_of(
        obj.get("kind", ""), meta.get("name", ""), meta.get("namespace") if namespaced else None
    )
