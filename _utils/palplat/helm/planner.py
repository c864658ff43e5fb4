"""The plan: per release install / upgrade / uninstall / correct drift / nothing.

From ONE ``helm list -A -o json``, ONE LIST of palplat's fingerprint Secrets and one LIST
per kind of the objects the unchanged releases own (drift check). Planning makes no other
helm call and no write.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from palplat import kube as k8s
from palplat import redact
from palplat.errors import InputError, PalplatError
from palplat.helm.chart import (
    chart_source,
    fingerprint,
    merged_values,
    path_digest,
    values_hash,
)
from palplat.helm.context import Context, pillar_path
from palplat.helm.manifest import restrict
from palplat.helm.mirror import describe
from palplat.helm.store import STORE_LABEL, decode_state
from palplat.model import Release


@dataclass
class ReleasePlan:
    key: str  # pillar map key
    name: str  # helm release name
    namespace: str
    rel: Release
    action: str = "none"  # install | upgrade | uninstall | drift | none
    reasons: list[str] = field(default_factory=list)
    objects: dict[str, dict] = field(default_factory=dict)  # per-object field diffs
    fingerprint: str | None = None
    partial: str | None = None
    digest: str | None = None
    listed: dict | None = None
    stored: dict = field(default_factory=dict)
    error: str | None = None
    revision: int | None = None

    @property
    def changed(self) -> bool:
        return self.action != "none"

    def changes(self) -> dict:
        out: dict[str, Any] = {"action": self.action, "reasons": list(self.reasons)}
        c = self.rel.chart
        out["chart"] = f"{chart_source(c)} {c.version or ''}".strip()
        if self.objects:
            out["objects"] = self.objects
        if self.revision is not None:
            out["revision"] = self.revision
        return redact.mask(out)


def _resolve(p: ReleasePlan, ctx: Context) -> None:
    """Chart digest and fingerprint of a release (no helm call)."""
    rel = p.rel
    c = rel.chart
    values = merged_values(rel)
    source = chart_source(c)
    try:
        if c.path:
            p.digest = path_digest(c.path)
        elif c.repo:  # the index of the repository helm fetches from (its mirror)
            repo = ctx.chart(c).repo or c.repo
            p.digest = ctx.index.entry(repo, c.name or "", c.version or "").get("digest")
    except InputError as exc:
        raise InputError(
            f"{pillar_path(p.key, 'chart')}: {exc}{describe(c, ctx.mirrors)}"
        ) from None
    p.partial = fingerprint(source, c.version, None, values, rel.keep_pvcs)
    p.fingerprint = fingerprint(source, c.version, p.digest, values, rel.keep_pvcs)


def plan(
    releases: Mapping[str, Release],
    ctx: Context,
    *,
    only: Iterable[str] | None = None,
) -> list[ReleasePlan]:
    """Decide what each release needs. One helm listing, one LIST of stored fingerprints,
    one LIST per kind of the objects owned by unchanged releases (drift)."""
    names = list(only) if only is not None else list(releases)
    listed = ctx.listed = ctx.helm.list_releases()
    stores = {
        (
            (s.get("metadata") or {}).get("namespace"),
            (s.get("metadata") or {}).get("labels", {}).get(STORE_LABEL),
        ): s
        for s in ctx.kube.list("v1", "Secret", label_selector=STORE_LABEL)
    }
    ctx.stores = stores  # every release palplat installed (orphans: palplat.platform)
    plans: list[ReleasePlan] = []
    for key in names:
        rel = releases[key]
        name = rel.release_name or key
        p = ReleasePlan(key, name, rel.namespace, rel)
        p.listed = listed.get((rel.namespace, name))
        store = stores.get((rel.namespace, name))
        p.stored = decode_state(store) if store else {}
        if p.listed:
            p.revision = int(p.listed.get("revision") or 0)
        plans.append(p)
        if not rel.enabled:
            if p.listed:
                p.action = "uninstall"
                p.reasons.append("enabled is false")
            continue
        try:
            _resolve(p, ctx)
        except (PalplatError, OSError) as exc:
            src, ver = chart_source(rel.chart), rel.chart.version
            partial = fingerprint(src, ver, None, merged_values(rel), rel.keep_pvcs)
            if not (p.listed and p.stored.get("partial") == partial and "unreachable" in str(exc)):
                p.error = str(exc)
                continue
            # repository down, nothing else changed: keep the release, say so
            p.reasons.append(f"digest not verified: {exc}")
            p.fingerprint = p.stored.get("fingerprint")
        if not p.listed:
            p.action = "install"
            p.reasons.append("not installed")
            continue
        status = p.listed.get("status")
        if status != "deployed":
            p.action = "upgrade"
            p.reasons.append(f"helm status is {status}")
        elif not p.stored:
            p.action = "upgrade"
            p.reasons.append("no stored fingerprint (installed outside palplat or by an older run)")
        elif p.stored.get("fingerprint") != p.fingerprint:
            p.action = "upgrade"
            p.reasons.append(_what_changed(p))
        elif int(p.stored.get("revision") or -1) != p.revision:
            p.action = "upgrade"
            p.reasons.append(
                f"helm revision is {p.revision}, palplat last wrote revision "
                f"{p.stored.get('revision')} (changed outside palplat)"
            )
    _check_drift([p for p in plans if p.action == "none" and p.stored and p.rel.enabled], ctx)
    return plans


def _what_changed(p: ReleasePlan) -> str:
    s = p.stored
    c = p.rel.chart
    parts = []
    if s.get("source") != chart_source(c):
        parts.append("chart source")
    if s.get("version") != c.version:
        parts.append(f"chart version {s.get('version')} -> {c.version}")
    elif s.get("digest") != p.digest:
        parts.append("chart archive digest")
    if s.get("values_hash") != values_hash(p.rel):
        parts.append("values")
    if s.get("keep_pvcs", True) != p.rel.keep_pvcs:
        parts.append("keep_pvcs")
    return (", ".join(parts) or "fingerprint") + " changed"


def _check_drift(plans: list[ReleasePlan], ctx: Context) -> None:
    """Compare each release's stored baseline with the live objects (one LIST per kind)."""
    kinds: dict[tuple[str, str], list[tuple[ReleasePlan, dict]]] = {}
    for p in plans:
        for o in p.stored.get("objects") or []:
            kinds.setdefault((o["apiVersion"], o["kind"]), []).append((p, o))
    for (api, kind), entries in sorted(kinds.items()):
        try:
            # helm's own release Secrets are big and never part of a chart
            sel = "owner!=helm" if (api, kind) == ("v1", "Secret") else None
            items = ctx.kube.list(api, kind, label_selector=sel)
        except k8s.UnknownKind:
            items = []
        index = {
            ((i.get("metadata") or {}).get("namespace"), (i.get("metadata") or {}).get("name")): i
            for i in items
        }
        for p, o in entries:
            live = index.get((o.get("namespace"), o["name"]))
            want = o.get("want") or {}
            key = k8s.key_of(kind, o["name"], o.get("namespace"))
            if live is None:
                d = {".": {"old": None, "new": f"present ({key})"}}
            else:
                got = restrict(live, want)
                d = k8s.diff(got, want) if got != want else {}
                if d and k8s.is_secret(live):
                    d = {path: {"old": k8s.HIDDEN, "new": k8s.HIDDEN} for path in d}
            if d:
                p.objects[key] = d
    for p in plans:
        if p.objects and p.action == "none":
            p.action = "drift"
            p.reasons.append("objects changed outside helm: " + ", ".join(sorted(p.objects)))
