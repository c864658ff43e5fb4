"""What palplat created, apart from what it adopted: the record ``delete_data`` relies on.

Converge applies a service's Namespace, its database Cluster and its Harbor project even
when they already exist (the apply and Harbor's 409 adopt them). So palplat records, the
first time it applies them, whether it made them:

- annotation ``palplat.io/origin`` (``created`` / ``adopted``) on the Namespace and on the
  database Cluster, carried in every later apply (it is part of palplat's manifest);
- annotation ``palplat.io/harbor-project`` (``created`` / ``adopted``) on the Namespace,
  for the Harbor project of the same name.

An object palplat applied before it kept this record (no annotation) counts as created
only when palplat's field manager is the oldest entry of its ``managedFields`` (it made
the object); anything else counts as adopted. ``absent: true`` with ``delete_data: true``
deletes only what was created and refuses the rest with an error that says so.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from palplat import kube

ORIGIN = "palplat.io/origin"
PROJECT_ORIGIN = "palplat.io/harbor-project"
CREATED, ADOPTED = "created", "adopted"
RECORDED_KINDS = ("Namespace", "Cluster")


def _annotations(obj: Mapping[str, Any] | None) -> dict[str, str]:
    return dict(((obj or {}).get("metadata") or {}).get("annotations") or {})


def recorded(obj: Mapping[str, Any] | None, key: str = ORIGIN) -> str | None:
    value = _annotations(obj).get(key)
    return value if value in (CREATED, ADOPTED) else None


def inferred(obj: Mapping[str, Any]) -> str:
    """The origin of a live object without a record: created when palplat's field
    manager wrote it first, else adopted."""
    entries = ((obj.get("metadata") or {}).get("managedFields")) or []
    if not entries:
        return ADOPTED
    first = min(entries, key=lambda e: str(e.get("time") or ""))
    others_as_old = [
        e for e in entries if e is not first and str(e.get("time") or "") == str(first.get("time"))
    ]
    if first.get("manager") == kube.FIELD_MANAGER and not [
        e for e in others_as_old if e.get("manager") != kube.FIELD_MANAGER
    ]:
        return CREATED
    return ADOPTED


def of_live(obj: Mapping[str, Any] | None, key: str = ORIGIN) -> str:
    """The origin of ``obj`` as it is live (None: it does not exist, palplat creates it)."""
    if obj is None:
        return CREATED
    return recorded(obj, key) or (inferred(obj) if key == ORIGIN else ADOPTED)


def project_origin(ns_live: Mapping[str, Any] | None, exists: bool) -> str:
    """The Harbor project's origin: palplat's record on the namespace while the project
    exists; a project that does not exist yet is palplat's to create. One that exists
    without a record: adopted, unless the namespace is one palplat applied before it kept
    records (palplat's labels, no ``palplat.io/origin``): then it goes with the namespace."""
    if not exists:
        return CREATED
    got = recorded(ns_live, PROJECT_ORIGIN)
    if got:
        return got
    labels = ((ns_live or {}).get("metadata") or {}).get("labels") or {}
    legacy = labels.get(kube.MANAGED_BY_LABEL) == kube.MANAGED_BY_VALUE and not recorded(ns_live)
    return inferred(ns_live) if legacy and ns_live is not None else ADOPTED


def stamp(obj: dict[str, Any], **annotations: str) -> dict[str, Any]:
    """``obj`` with ``annotations`` added (a copy of its metadata)."""
    out = dict(obj)
    meta = out["metadata"] = dict(out.get("metadata") or {})
    meta["annotations"] = {**(meta.get("annotations") or {}), **annotations}
    return out
