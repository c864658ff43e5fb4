"""A release's CustomResourceDefinitions: applied by palplat before helm renders or
installs the release (helm runs with ``--skip-crds``), never deleted.

The CRDs are those of the crds/ directories of the chart and of the subcharts its values
enable (:func:`palplat.helm.render.render_client`). They are applied by server-side apply
with the owner ``helm-crds.<release>`` (palplat's ownership labels) and, for real, waited
for until Established, so that the server-side render that follows knows their kinds.

A CRD is left alone, and the plan says so, when applying it would take it from someone:

- it is owned by another palplat owner (another release that is still installed, or a
  ``palplat_kube`` owner): two releases shipping the same CRD would otherwise take it
  from each other on every upgrade, the older copy replacing the newer;
- it is not (or no longer) owned by palplat and the live copy is newer: a version
  annotation (``*/version``, e.g. ``operator.prometheus.io/version``) the two share is
  higher on the live copy.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from palplat import kube as k8s
from palplat.helm.context import Context
from palplat.helm.planner import ReleasePlan

CRD_KIND = "CustomResourceDefinition"
OWNER_PREFIX = "helm-crds."
_VERSION = re.compile(r"^v?(\d+(?:\.\d+)*)")


def owner_of(release: str) -> str:
    """The palplat owner of a release's CRDs."""
    return f"{OWNER_PREFIX}{release}"[:63]


@dataclass
class Applied:
    """What applying a release's CRDs did (or, in a dry run, would do)."""

    changes: dict[str, dict] = field(default_factory=dict)  # CRD key -> field diff
    skipped: dict[str, str] = field(default_factory=dict)  # CRD key -> what and why
    pending: list[dict] = field(default_factory=list)  # CRDs whose APIs are not served yet


def _labels(obj: Mapping[str, Any] | None) -> Mapping[str, str]:
    return ((obj or {}).get("metadata") or {}).get("labels") or {}


def _release_of(owner: str, ctx: Context) -> str | None:
    """``namespace/name`` of the installed release owning ``owner``'s CRDs, if any."""
    if not owner.startswith(OWNER_PREFIX):
        return None
    for ns, name in ctx.listed or {}:
        if owner_of(name) == owner:
            return f"{ns}/{name}"
    return None


def _versions(obj: Mapping[str, Any]) -> dict[str, tuple[int, ...]]:
    out = {}
    for k, v in (((obj.get("metadata") or {}).get("annotations")) or {}).items():
        m = _VERSION.match(str(v)) if k.endswith("/version") else None
        if m:
            out[k] = tuple(int(x) for x in m.group(1).split("."))
    return out


def older(desired: Mapping[str, Any], other: Mapping[str, Any]) -> str:
    """Why ``desired`` is an older copy of ``other`` (a ``*/version`` annotation both carry
    is lower), "" when it is not."""
    have, want = _versions(other), _versions(desired)
    for k in sorted(set(have) & set(want)):
        if want[k] < have[k]:
            return (
                f"the live copy is newer ({k} {'.'.join(map(str, have[k]))}, this chart has "
                f"{'.'.join(map(str, want[k]))})"
            )
    return ""


def foreign(
    live: Mapping[str, Any] | None, desired: Mapping[str, Any], owner: str, ctx: Context
) -> str:
    """Why ``owner`` must not apply ``desired`` over ``live`` ("" when it may)."""
    if live is None:
        return ""
    labels = _labels(live)
    theirs = labels.get(k8s.OWNER_LABEL)
    ours = labels.get(k8s.MANAGED_BY_LABEL) == k8s.MANAGED_BY_VALUE
    if ours and theirs == owner:
        return ""  # its own CRD: a chart may also downgrade it
    if ours and theirs:
        release = _release_of(theirs, ctx)
        if release:
            return f"owned by release {release} (palplat owner {theirs})"
        if not theirs.startswith(OWNER_PREFIX):
            return f"owned by palplat owner {theirs}"
    return older(desired, live)


def _unique(crds: list[dict], out: Applied) -> list[dict]:
    """One copy per CRD name: two enabled subcharts may ship the same CRD; the newer copy
    (by a ``*/version`` annotation both carry, else the first) is applied."""
    chosen: dict[str, dict] = {}
    for c in crds:
        name = c["metadata"]["name"]
        have = chosen.get(name)
        if have is not None:
            if older(have, c):
                chosen[name] = c
            out.skipped[k8s.key_of(CRD_KIND, name)] = "two of its charts ship it: one copy applied"
        chosen.setdefault(name, c)
    return list(chosen.values())


def summary(crd: Mapping[str, Any]) -> dict:
    """What a plan shows of a CRD it would create: what it defines, not its schema."""
    spec = crd.get("spec") or {}
    return {
        "apiVersion": crd.get("apiVersion"),
        "kind": CRD_KIND,
        "metadata": {"name": crd["metadata"]["name"]},
        "spec": {
            "group": spec.get("group"),
            "names": {"kind": (spec.get("names") or {}).get("kind")},
            "scope": spec.get("scope"),
            "versions": [v.get("name") for v in spec.get("versions") or []],
        },
    }


def _unserved(live: Mapping[str, Any] | None, desired: Mapping[str, Any]) -> bool:
    """True when ``desired`` serves a version ``live`` does not (or there is no live)."""
    if live is None:
        return True
    names = {v.get("name") for v in (live.get("spec") or {}).get("versions") or []}
    return any(
        v.get("name") not in names for v in (desired.get("spec") or {}).get("versions") or []
    )


def apply_crds(p: ReleasePlan, ctx: Context, crds: list[dict], dry_run: bool) -> Applied:
    """Apply release ``p``'s CRDs (``dry_run``: as a server-side dry run), skipping every
    CRD :func:`foreign` refuses; waits until the applied ones are Established."""
    out = Applied()
    if not crds:
        return out
    owner = owner_of(p.name)
    todo = []
    for c in _unique(crds, out):
        name = c["metadata"]["name"]
        key = k8s.key_of(CRD_KIND, name)
        live = ctx.kube.get(k8s.CRD_API, CRD_KIND, name)
        why = foreign(live, c, owner, ctx)
        if why:
            out.skipped[key] = f"left alone: {why}"
            continue
        todo.append(c)
        if _unserved(live, c):
            out.pending.append(c)
    if todo:
        res = k8s.converge(ctx.kube, todo, owner=owner, dry_run=dry_run, progress=ctx.progress)
        out.changes = dict(res.get("changes") or {})
        by_key = {k8s.key_of(CRD_KIND, c["metadata"]["name"]): c for c in todo}
        for key, action in (res.get("actions") or {}).items():
            if action == "create" and key in by_key:  # not its whole schema: unreadable
                out.changes[key] = {".": {"old": None, "new": summary(by_key[key])}}
    for c in todo:
        spec = c.get("spec") or {}
        for v in spec.get("versions") or []:
            ctx.kube.forget(f"{spec.get('group')}/{v.get('name')}")
    if not dry_run:
        out.pending = []
    return out
