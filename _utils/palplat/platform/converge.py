"""One run of the platform stage: the Helm releases and the objects palplat creates beside
them (:mod:`.objects`), in order.

1. Plan: one :func:`palplat.helm.plan` of every release (one ``helm list``, one LIST of
   fingerprints, the drift LISTs) and a dry run of the object groups (one LIST per kind,
   no write for objects that hold their applied manifest). Nothing to do: return.
2. Test mode: :func:`palplat.helm.converge` in test mode (manifest-level diffs) plus the
   objects' field diffs. Objects of a kind that a release of this run will serve (the
   Cluster kind comes with CloudNativePG) are reported as creates.
3. A real run: the ``secrets`` group (pruned; with the Secrets palplat generates), the
   releases that need no database (``needs`` waves), then the ``databases`` group, then
   the releases that use them (those whose ``needs`` did not fail), then what palplat
   makes in Forgejo (:mod:`.forge`: Woodpecker's OAuth client, Argo CD's token), then the
   releases that read it (Woodpecker), then the ``access`` group (pruned). Each step
   verifies what it wrote.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from palplat import config, helm, redact
from palplat import kube as k8s
from palplat.errors import PalplatError
from palplat.model import PalplatPillar, Release
from palplat.platform import forge, generated
from palplat.platform.objects import (
    ACCESS,
    DATABASES,
    DORA,
    SECRETS,
    Group,
    groups,
    layout,
    release_of,
)

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
    orphans: dict[str, list[str]] = {}
    if group.prune:
        listed = _listed(kube, group)
        keep = list(group.manifests)
        for items in listed.values() if group.known is not None else ():
            for obj in items:
                key = release_of(obj)
                if key not in group.known:  # its key left the pillar: orphaned, kept
                    keep.append(obj)
                    orphans.setdefault(key or "(no release label)", []).append(k8s.ref_of(obj).key)
        pruned = k8s.prune(
            kube, group.owner, keep, kinds=group.prune_kinds, dry_run=dry_run, listed=listed
        )
        for key, d in pruned.items():
            changes[key], actions[key] = d, "delete"
    return {"changes": changes, "actions": actions, "orphans": orphans}


def _listed(kube: k8s.Kube, group: Group) -> dict[tuple[str, str], list[dict[str, Any]]]:
    """The group owner's objects of its prune kinds (one LIST per kind, as prune does)."""
    out = {}
    for api_version, kind in group.prune_kinds:
        try:
            out[(api_version, kind)] = kube.list(
                api_version, kind, label_selector=k8s.owner_selector(group.owner)
            )
        except k8s.UnknownKind:
            out[(api_version, kind)] = []
    return out


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
    for rel_key, objs in out.get("orphans", {}).items():
        res["orphaned"].setdefault(rel_key, set()).update(objs)
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


def _orphaned_releases(releases: Mapping[str, Release], ctx: helm.Context, res) -> None:
    """Helm releases palplat installed (a fingerprint store) whose key left the pillar."""
    mine = {(r.namespace, r.release_name or k) for k, r in releases.items()}
    for ns, name in sorted(getattr(ctx, "stores", {}) or {}):
        if (ns, name) not in mine and (ns, name) in (ctx.listed or {}):
            res["orphaned"].setdefault(name, set()).add(f"helm release {ns}/{name}")


def orphan_lines(res: Mapping[str, Any]) -> list[str]:
    """The state comment's lines for release keys that left the pillar."""
    return [
        f"orphaned: release key '{key}' is no longer in palplat:platform:releases; its "
        f"objects are left alone: {', '.join(sorted(objs))} (restore the key, or set "
        f"enabled: false under it to uninstall the release and remove them)"
        for key, objs in sorted(res.get("orphaned", {}).items())
    ]


def converge(cfg: PalplatPillar, ctx: helm.Context, *, test: bool) -> dict[str, Any]:
    """The platform stage's releases and objects. Returns ``{"changes": {release or
    "objects:<group>": ...}, "errors": {same keys: message}, "unchanged": [release...],
    "objects": {group: {object key: action}}, "orphaned": {release key: {object...}}}``;
    ``errors`` empty means converged (and, after a real run, verified)."""
    releases = config.releases(cfg)
    first, second = layout(releases)
    wants = any(r.generated for r in releases.values() if r.enabled)
    live = generated.live_secrets(ctx.kube) if wants else {}
    grp = groups(cfg, releases, live)
    res: dict[str, Any] = {
        "changes": {},
        "errors": {},
        "unchanged": [],
        "objects": {},
        "orphaned": {},
    }

    plans = helm.plan(releases, ctx)
    _orphaned_releases(releases, ctx, res)
    todo = {p.key for p in plans if p.changed or p.error}
    pre = {name: _objects(ctx, g, True, res) for name, g in grp.items()}
    objects_todo = {n for n, out in pre.items() if out is None or out["changes"]}
    forge_plan = _forge_plan(cfg, ctx, res)
    if not todo and not objects_todo and not forge_plan:
        res["unchanged"] = [p.key for p in plans]
        return res
    if test:
        out = helm.converge(releases, ctx, test=True)
        res["changes"].update(out["changes"])
        res["errors"].update(out["errors"])
        res["unchanged"] = out["unchanged"]
        if forge_plan:
            res["changes"][OBJECTS + forge.FORGE] = forge_plan
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
    # what reads the forge step's Secrets (Woodpecker) goes after it
    later = forge.after(releases, forge.step(cfg))
    releases_step([k for k in first if k not in later])
    if DATABASES in objects_todo and _objects(ctx, grp[DATABASES], False, res) is None:
        for k in second:
            if releases[k].database is not None:
                res["errors"][k] = f"not converged: its database failed ({OBJECTS}{DATABASES})"
                failed.add(k)
    releases_step([k for k in second if k not in later])
    if forge_plan:
        _forge_step(cfg, ctx, res, failed, later)
    releases_step([k for k in [*first, *second] if k in later])
    if ACCESS in objects_todo:
        _objects(ctx, grp[ACCESS], False, res)
    if DORA in objects_todo:
        _objects(ctx, grp[DORA], False, res)
    return res


def _forge_plan(cfg: PalplatPillar, ctx: helm.Context, res: dict[str, Any]) -> dict[str, Any]:
    """What the forge step would make (two GETs, no call to Forgejo)."""
    try:
        return forge.plan(cfg, ctx.kube)
    except k8s.KubeError as exc:
        res["errors"][OBJECTS + forge.FORGE] = redact.mask_text(str(exc))
        return {}


def _forge_step(
    cfg: PalplatPillar, ctx: helm.Context, res: dict[str, Any], failed: set[str], later: set
) -> None:
    """Make what Woodpecker and Argo CD need in Forgejo, once Forgejo is up; the releases
    that read it are blocked when it fails."""
    key = OBJECTS + forge.FORGE
    st = forge.step(cfg)
    why = None
    if st is not None and st.forge_key in failed:
        why = f"the forge release {st.forge_key} failed"
    else:
        try:
            made = forge.converge(cfg, ctx.kube, progress=ctx.progress)
            if made:
                res["changes"][key] = made
        except (PalplatError, k8s.KubeError) as exc:
            why = redact.mask_text(str(exc))
    if why is None:
        return
    res["errors"][key] = why
    for k in sorted(later):
        res["errors"][k] = f"not converged: it reads what palplat makes in Forgejo ({key}): {why}"
        failed.add(k)
