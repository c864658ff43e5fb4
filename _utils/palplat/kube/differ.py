"""Compare Kubernetes objects field by field, and show them safely.

:func:`normalize` / :func:`diff` ignore what the server owns (managedFields,
resourceVersion, status, ...); Secret data is always ``<hidden>`` and every registered
secret is masked. :func:`project`, :func:`holds` and :func:`secret_as_stored` compare a
desired manifest with the object the server stores.
"""

from __future__ import annotations

import base64
import copy
import re
from collections.abc import Mapping
from typing import Any

from palplat import redact
from palplat.kube.refs import HASH_ANNOTATION, HIDDEN, ref_of

# metadata fields owned by the server: never part of a diff
_SERVER_METADATA = (
    "managedFields",
    "resourceVersion",
    "generation",
    "uid",
    "creationTimestamp",
    "selfLink",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
)
# annotations written by servers, controllers or other clients, never by palplat
_SERVER_ANNOTATIONS = (
    "kubectl.kubernetes.io/last-applied-configuration",
    "deployment.kubernetes.io/revision",
    HASH_ANNOTATION,
)


def normalize(obj: Mapping[str, Any] | None) -> dict:
    """A copy without what the server owns: managedFields, resourceVersion, generation,
    uid, creationTimestamp, selfLink, status and server/client-written annotations."""
    return copy.deepcopy(_strip(obj))


def _strip(obj: Mapping[str, Any] | None) -> dict:
    """:func:`normalize` without the copy: nested values are shared with ``obj`` (read only)."""
    if obj is None:
        return {}
    out = dict(obj)
    out.pop("status", None)
    meta = out.get("metadata")
    if isinstance(meta, Mapping):
        meta = dict(meta)
        for f in _SERVER_METADATA:
            meta.pop(f, None)
        ann = meta.get("annotations")
        if ann:
            ann = {k: v for k, v in ann.items() if k not in _SERVER_ANNOTATIONS}
        if ann:
            meta["annotations"] = ann
        else:
            meta.pop("annotations", None)
        if not meta.get("labels"):
            meta.pop("labels", None)
        out["metadata"] = meta
    return out


def is_secret(obj: Mapping[str, Any] | None) -> bool:
    """True for a core/v1 Secret (whose data values are never shown)."""
    return bool(obj) and obj.get("kind") == "Secret" and obj.get("apiVersion", "v1") == "v1"


def masked(obj: Any) -> Any:
    """A copy safe to return or log: Secret data/stringData values are ``<hidden>`` and every
    registered secret is masked (lists of objects too)."""
    if isinstance(obj, list):
        return [masked(o) for o in obj]
    if not isinstance(obj, Mapping):
        return redact.mask(obj)
    out = dict(obj)
    if is_secret(out):
        for f in ("data", "stringData"):
            if isinstance(out.get(f), Mapping):
                out[f] = {k: HIDDEN for k in out[f]}
        meta = dict(out.get("metadata") or {})
        ann = dict(meta.get("annotations") or {})
        if "kubectl.kubernetes.io/last-applied-configuration" in ann:
            ann["kubectl.kubernetes.io/last-applied-configuration"] = HIDDEN
            meta["annotations"] = ann
            meta.pop("managedFields", None)
            out["metadata"] = meta
    return redact.mask(out)


def _fmt_key(prefix: str, key: Any) -> str:
    k = str(key)
    if re.fullmatch(r"[A-Za-z_][A-Za-z0-9_-]*", k):
        return f"{prefix}.{k}" if prefix else k
    return f"{prefix}[{k}]"


def _named(items: list) -> dict | None:
    """Map a list of dicts by their unique 'name' (containers, ports, env...)."""
    if not items or not all(isinstance(i, Mapping) and "name" in i for i in items):
        return None
    names = [i["name"] for i in items]
    if len(set(names)) != len(names):
        return None
    return {n: i for n, i in zip(names, items, strict=True)}


def _walk(old: Any, new: Any, path: str, out: dict) -> None:
    if old == new:
        return
    if isinstance(old, Mapping) and isinstance(new, Mapping):
        for k in list(old) + [k for k in new if k not in old]:
            _walk(old.get(k), new.get(k), _fmt_key(path, k), out)
        return
    if isinstance(old, list) and isinstance(new, list):
        o, n = _named(old), _named(new)
        if o is not None and n is not None:
            for k in list(o) + [k for k in n if k not in o]:
                _walk(o.get(k), n.get(k), f"{path}[{k}]", out)
            return
        if len(old) == len(new):
            for i, (a, b) in enumerate(zip(old, new, strict=True)):
                _walk(a, b, f"{path}[{i}]", out)
            return
    out[path or "."] = {"old": old, "new": new}


def _hide(value: Any) -> Any:
    if value is None:
        return None
    if isinstance(value, Mapping):
        return {k: HIDDEN for k in value}
    return HIDDEN


def diff(live: Mapping[str, Any] | None, desired: Mapping[str, Any] | None) -> dict:
    """Field-level differences ``{"path.to.field": {"old": ..., "new": ...}}``, only what
    changed. ``live=None``: the whole object under ``"."`` (a create); ``desired=None``: a
    delete. Secret data/stringData values are always ``<hidden>``; registered secrets masked.
    """
    if live is None and desired is None:
        return {}
    if live is None:
        return {".": {"old": None, "new": masked(normalize(desired))}}
    if desired is None:
        ref = ref_of(live)
        return {".": {"old": f"present ({ref.key})", "new": None}}
    out: dict[str, dict] = {}
    _walk(_strip(live), _strip(desired), "", out)
    if is_secret(live) or is_secret(desired):
        for path, change in out.items():
            if path == "." or re.match(r"^(data|stringData)([.\[]|$)", path):
                change["old"], change["new"] = _hide(change["old"]), _hide(change["new"])
    return redact.mask(out)


def project(value: Any, shape: Any) -> Any:
    """``value`` restricted to the keys present in ``shape`` (recursively)."""
    if isinstance(shape, Mapping) and isinstance(value, Mapping):
        return {k: project(value.get(k), v) for k, v in shape.items()}
    if isinstance(shape, list) and isinstance(value, list) and len(shape) == len(value):
        return [project(v, s) for v, s in zip(value, shape, strict=True)]
    return value


def holds(value: Any, want: Any) -> bool:
    """``project(value, want) == want``, without building the projection."""
    if isinstance(want, dict):
        if not isinstance(value, dict):
            return False
        get = value.get
        return all(holds(get(k), w) for k, w in want.items())
    if isinstance(want, list) and isinstance(value, list) and len(want) == len(value):
        return all(holds(v, w) for v, w in zip(value, want, strict=True))
    return value == want


# what the API server stores for a field set to its zero value: nothing (Go's omitempty)
_ZEROS = (False, 0, "")


def like_stored(live: Any, desired: Any) -> Any:
    """``desired`` as the API server stores it, for a comparison with ``live`` (both
    restricted to the fields a manifest sets): a field set to a zero value (``false``,
    ``0``, ``""``) that ``live`` does not hold is dropped, because the server omits zero
    values (``hostNetwork: false``, ``initialDelaySeconds: 0``) rather than storing them.
    A field ``live`` holds is kept, so a real change to or from a zero value still shows."""
    if isinstance(desired, Mapping):
        live_map = live if isinstance(live, Mapping) else {}
        out = {}
        for k, v in desired.items():
            got = live_map.get(k)
            if got is None and _is_zero(v):
                continue
            v = like_stored(got, v)
            if got is None and v in ({}, []):
                continue  # nothing but zero values in it
            out[k] = v
        return out
    if isinstance(desired, list) and isinstance(live, list) and len(desired) == len(live):
        return [like_stored(a, b) for a, b in zip(live, desired, strict=True)]
    return desired


def _is_zero(value: Any) -> bool:
    return type(value) in (bool, int, str) and value in _ZEROS


def secret_as_stored(obj: dict) -> dict:
    """A Secret manifest's stringData folded into data (as the server stores it)."""
    if not is_secret(obj) or not obj.get("stringData"):
        return obj
    out = dict(obj)
    data = dict(out.get("data") or {})
    for k, v in out.pop("stringData").items():
        data[k] = base64.b64encode(str(v).encode()).decode()
    out["data"] = data
    return out
