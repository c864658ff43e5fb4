"""One run of the platform stage: the Helm releases and the objects palplat creates beside
them (:mod:`.objects`), in order.

1. Plan: one :func:`palplat.helm.plan` of every release (one ``helm list``, one LIST of
   fingerprints, the drift LISTs) and a dry run of the object groups (one LIST per kind,
   no write for objects that hold their applied manifest). Nothing to do: return.
2. Test mode: :func:`palplat.helm.converge` in test mode (manifest-level diffs) plus the
   objects' field diffs. Objects of a kind that a release of this run will serve (the
   Cluster kind comes with CloudNativePG) are reported as creates.
3. A real run: the ``secrets`` group (pruned), the releases that need no database
   (``needs`` waves), then the ``databases`` group, then the releases that use them (those
   whose ``needs`` did not fail), then the ``access`` group (pruned). Each step verifies
   what it wrote.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from palplat import config, helm, redact
from palplat import kube as k8s
from palplat.model import PalplatPillar, Release
from palplat.platform.objects import ACCESS, DATABASES, SECRETS, Group, groups, layout

OBJECTS = "objects:"  # prefix of the object groups' keys in changes and errors


def converge_objects(
    kube: k8s.Kube, group: Group, *, dry_run: bool, progress: Callable[..., Any] | None = None
) -> dict[str, Any]:
    """Bring one group to the cluster (server-side apply, owner ``group.owner``; pruned
    when ``group.prune``). Returns ``{"changes": {key: diff}, "actions": {key: action}}``.

    In a dry run an object whose kind the server does not serve yet (its CRD comes with a
    release that has not run) or whose namespace does not exist yet (a release of this run
    creates it) is reported as a create; in a real run that is an error."""
    served, later = [], []
    for m in group.manifests:
        try:
            kube.resource(m["apiVersion"], m["kind"])
            served.append(m)
        except k8s.UnknownKind:
            if not dry_run:
                raise
            later.append(m)
    try:
        out = k8s.converge(kube, served, owner=group.owner, dry_run=dry_run, progress=progress)
    except k8s.KubeError:
        # a no-op or an ordinary plan never gets here: only then is it worth asking
        missing = _missing_namespaces(kube, served) if dry_run else set()
        if not missing:
            raise
        later += [m for m in served if m["metadata"].get("namespace") in missing]
        served = [m for m in served if m["metadata"].get("namespace") not in missing]
        out = k8s.converge(kube, served, owner=group.owner, dry_run=True, progress=progress)
    changes, actions = dict(out["changes"]), dict(out["actions"])
    for m in later:
        key = k8s.key_of(m["kind"], m["metadata"]["name"], m["metadata"].get("namespace"))
        changes[key] = k8s.diff(None, k8s.owned(m, group.owner))
        actions[key] = "create"
    if group.prune:
        pruned = k8s.prune(
            kube, group.owner, group.manifests, kinds=group.prune_kinds, dry_run=dry_run
        )
        for key, d in pruned.items():
            changes[key], actions[key] = d, "delete"
    return {"changes": changes, "actions": actions}


def _missing_namespaces(kube: k8s.Kube, manifests: list[dict[str, Any]]) -> set[str]:
    """The namespaces ``manifests`` live in that do not exist (and are not among them)."""
    made = {m["metadata"]["name"] for m in manifests if m["kind"] == "Namespace"}
    wanted = {m["metadata"].get("namespace") for m in manifests} - made - {None}
    return {ns for ns in wanted if kube.get("v1", "Namespace", ns) is None}


def _objects(
    ctx: helm.Context, group: Group, dry_run: bool, res: dict[str, Any]
) -> dict[str, Any] | None:
    """:func:`converge_objects` with its changes and errors recorded in ``res``."""
    key = OBJECTS + group.name
    try:
        out = converge_objects(ctx.kube, group, dry_run=dry_run, progress=ctx.progress)
    except (k8s.KubeError, k8s.ConvergeError) as exc:
        made = getattr(exc, "changes", None)
        if made:
            res["changes"][key] = redact.mask(made)
        res["errors"][key] = redact.mask_text(str(exc))
        return None
    if out["changes"]:
        res["changes"][key] = redact.mask(out["changes"])
    res["objects"][group.name] = out["actions"]
    return out


def _blocked(releases: Mapping[str, Release], keys: list[str], failed: set[str]) -> dict:
    """Releases of ``keys`` whose ``needs`` (transitively) failed: key -> message."""
    out = {}
    bad = set(failed)
    for wave in config.release_order({k: releases[k] for k in keys}):
        for k in wave:
            hit = [n for n in releases[k].needs if n in bad]
            if hit:
                out[k] = f"not converged: it needs {', '.join(hit)}, which failed"
                bad.add(k)
    return out


def converge(cfg: PalplatPillar, ctx: helm.Context, *, test: bool) -> dict[str, Any]:
    """The platform stage's releases and objects. Returns ``{"changes": {release or
    "objects:<group>": ...}, "errors": {same keys: message}, "unchanged": [release...],
    "objects": {group: {object key: action}}}``; ``errors`` empty means converged (and,
    after a real run, verified)."""
    releases = config.releases(cfg)
    first, second = layout(releases)
    grp = groups(cfg, releases)
    res: dict[str, Any] = {"changes": {}, "errors": {}, "unchanged": [], "objects": {}}

    plans = helm.plan(releases, ctx)
    todo = {p.key for p in plans if p.changed or p.error}
    pre = {name: _objects(ctx, g, True, res) for name, g in grp.items()}
    objects_todo = {n for n, out in pre.items() if out is None or out["changes"]}
    if not todo and not objects_todo:
        res["unchanged"] = [p.key for p in plans]
        return res
    if test:
        out = helm.converge(releases, ctx, test=True)
        res["changes"].update(out["changes"])
        res["errors"].update(out["errors"])
        res["unchanged"] = out["unchanged"]
        return res

    res["changes"], res["errors"] = {}, {}
    failed: set[str] = set()

    def releases_step(keys: list[str]) -> None:
        blocked = _blocked(releases, [k for k in keys if k not in failed], failed)
        res["errors"].update(blocked)
        failed.update(blocked)
        run = [k for k in keys if k not in failed]
        if not any(k in todo for k in run):
            res["unchanged"].extend(run)
            return
        out = helm.converge(releases, ctx, test=False, only=run)
        res["changes"].update(out["changes"])
        res["errors"].update(out["errors"])
        res["unchanged"].extend(out["unchanged"])
        failed.update(out["errors"])

    if SECRETS in objects_todo and _objects(ctx, grp[SECRETS], False, res) is None:
        for k, rel in releases.items():
            if rel.enabled and rel.secrets:
                res["errors"][k] = f"not converged: its secrets failed ({OBJECTS}{SECRETS})"
                failed.add(k)
    releases_step(first)
    if DATABASES in objects_todo and _objects(ctx, grp[DATABASES], False, res) is None:
        for k in second:
            if releases[k].database is not None:
                res["errors"][k] = f"not converged: its database failed ({OBJECTS}{DATABASES})"
                failed.add(k)
    releases_step(second)
    if ACCESS in objects_todo:
        _objects(ctx, grp[ACCESS], False, res)
    return res
