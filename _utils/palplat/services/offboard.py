"""Offboarding never deletes data by accident.

- ``absent: true``: delivery, ingress, monitoring, CI activation (and its secrets) and the
  robots (and their Secrets) are removed. The namespace with what is in it, the database
  Cluster with its volumes and the Harbor project with its images stay, and the state
  says so, unless ``delete_data: true`` is also set.
- ``delete_data: true`` deletes only the data palplat created (:mod:`.origin`): a
  namespace, database Cluster or Harbor project that existed before palplat adopted it is
  kept, and the part fails with an error saying so.
- An entry removed from the pillar: its objects (found by their labels) and its palplat
  robots are reported as orphaned and left alone.
"""

from __future__ import annotations

from palplat import kube
from palplat.services.http import ApiError
from palplat.services.inventory import DATA_KINDS, part_of
from palplat.services.origin import CREATED, ORIGIN, PROJECT_ORIGIN, of_live, project_origin
from palplat.services.outcome import Ctx, ServiceResult
from palplat.services.registry import ROBOTS
from palplat.services.resolve import (
    CI_SECRETS,
    PARTS,
    REMOVED_WHEN_ABSENT,
    SHARED_OWNER,
    Spec,
)

OWNER_PREFIX = "service."


def absent(ctx: Ctx, spec: Spec, res: ServiceResult) -> None:
    """Offboard ``spec`` (``absent: true``), keeping its data unless ``delete_data``."""
    wipe = spec.entry.delete_data
    _ci_off(ctx, spec, res)
    _robots_off(ctx, spec, res)
    live = ctx.inv.objects(spec.owner)
    going = {  # namespaces being deleted take everything in them along
        kube.ref_of(o).name
        for o in live
        if o.get("kind") == "Namespace" and (o.get("metadata") or {}).get("deletionTimestamp")
    }
    live = [o for o in live if (o.get("metadata") or {}).get("namespace") not in going]
    doomed = [o for o in live if part_of(o) in REMOVED_WHEN_ABSENT or wipe]
    if not wipe:
        doomed = [o for o in doomed if o.get("kind") not in DATA_KINDS]
    else:
        adopted = [o for o in doomed if o.get("kind") in DATA_KINDS and of_live(o) != CREATED]
        for o in adopted:
            ref = kube.ref_of(o)
            part = part_of(o) or "namespace"
            inside = " and everything in it" if o.get("kind") == "Namespace" else ""
            res.fail(
                part,
                f"delete_data refused for {ref.key}: palplat did not create it (it existed "
                f"when palplat first applied it: {ORIGIN}=adopted), so it{inside} stays; "
                "palplat deletes only data it created. Delete it by hand if you mean it, or "
                "remove delete_data",
            )
        doomed = [o for o in doomed if not any(o is a for a in adopted)]
    doomed.sort(key=lambda o: o.get("kind") == "Namespace")  # the namespace last
    by_part: dict[str, list[dict]] = {}
    for part in reversed(PARTS):  # the namespace part last
        by_part[part] = [o for o in doomed if (part_of(o) or "namespace") == part]
    for part, objs in by_part.items():
        if not objs:
            continue
        try:
            res.changes.update(kube.remove(ctx.kube, objs, dry_run=ctx.dry_run))
        except kube.KubeError as exc:
            res.changes.update(getattr(exc, "changes", None) or {})
            res.fail(part, str(exc))
    if wipe:
        ns_live = next((o for o in live if o.get("kind") == "Namespace"), None)
        _project_off(ctx, spec, res, ns_live)
        return
    kept = sorted(kube.ref_of(o).key for o in live if o.get("kind") in DATA_KINDS)
    if kept:
        res.kept.append(
            f"{', '.join(kept)} (data: the namespace and everything in it, database volumes "
            "included); set delete_data: true to delete them"
        )
    project = ctx.projects.items.get(spec.project) if ctx.projects.ok else None
    if project is not None:
        n = project.get("repo_count")
        images = f" with {n} repositor{'y' if n == 1 else 'ies'}" if n is not None else ""
        res.kept.append(
            f"Harbor project {spec.project}{images} (data); set delete_data: true to delete it"
        )


def _ci_off(ctx: Ctx, spec: Spec, res: ServiceResult) -> None:
    if not ctx.repos.ok:
        res.fail("ci", str(ctx.repos.error))
        return
    full = spec.entry.repo
    repo = ctx.repos.items.get(full.lower())
    if not repo or not repo.get("active"):
        return
    try:
        rid = int(repo["id"])
        live = ctx.woodpecker.secrets(rid)
        for name in CI_SECRETS:
            if name in live:
                res.changes[f"Woodpecker secret {full}:{name}"] = {"old": "<hidden>", "new": None}
                if not ctx.dry_run:
                    ctx.woodpecker.delete_secret(rid, name)
        res.changes[f"Woodpecker repo {full}"] = {"old": "active", "new": "inactive"}
        if not ctx.dry_run:
            ctx.say(f"deactivating {full} in Woodpecker")
            ctx.woodpecker.deactivate(rid)
            back = ctx.woodpecker.repo(rid)
            if back is not None and back.get("active"):
                raise ApiError(f"Woodpecker: {full} is still active after deactivation")
    except ApiError as exc:
        res.fail("ci", str(exc))


def _robots_off(ctx: Ctx, spec: Spec, res: ServiceResult) -> None:
    if not ctx.robots.ok:
        res.fail("registry", str(ctx.robots.error))
        return
    for short in ROBOTS:
        full = ctx.harbor.robot_name(spec.project, short)
        robot = next((r for r in ctx.robots.items if r.get("name") == full), None)
        if robot is None:
            continue
        res.changes[f"Harbor robot {full}"] = {"old": "robot", "new": None}
        if ctx.dry_run:
            continue
        try:
            ctx.harbor.delete_robot(int(robot["id"]))
            if ctx.harbor.robot(int(robot["id"])) is not None:
                raise ApiError(f"Harbor: robot {full} still exists after delete")
        except ApiError as exc:
            res.fail("registry", str(exc))


def _project_off(ctx: Ctx, spec: Spec, res: ServiceResult, ns_live: dict | None) -> None:
    if not ctx.projects.ok:
        res.fail("registry", str(ctx.projects.error))
        return
    if spec.project not in ctx.projects.items:
        return
    if project_origin(ns_live, True) != CREATED:
        res.fail(
            "registry",
            f"delete_data refused for Harbor project {spec.project}: palplat did not create it "
            f"(it existed when palplat first used it: {PROJECT_ORIGIN} is not 'created' on "
            f"Namespace/{spec.namespace}), so it and its images stay; palplat deletes only "
            "data it created. Delete it in Harbor if you mean it, or remove delete_data",
        )
        return
    try:
        repos = ctx.harbor.repositories(spec.project)
        for r in repos:
            name = str(r.get("name", "")).split("/", 1)[-1]
            res.changes[f"Harbor repository {spec.project}/{name}"] = {"old": "images", "new": None}
            if not ctx.dry_run:
                ctx.harbor.delete_repository(spec.project, name)
        res.changes[f"Harbor project {spec.project}"] = {"old": "project", "new": None}
        if not ctx.dry_run:
            ctx.say(f"deleting Harbor project {spec.project} (delete_data)")
            ctx.harbor.delete_project(spec.project)
            if ctx.harbor.project(spec.project) is not None:
                raise ApiError(f"Harbor: project {spec.project} still exists after delete")
    except ApiError as exc:
        res.fail("registry", str(exc))


def orphans(ctx: Ctx) -> dict[str, list[str]]:
    """Services palplat made objects or robots for that left the pillar: name -> what."""
    plan = ctx.plan
    known = set(plan.specs) | set(plan.disabled)
    out: dict[str, list[str]] = {}
    for owner in sorted(ctx.inv.owners()):
        if owner == SHARED_OWNER or not owner.startswith(OWNER_PREFIX):
            continue
        name = owner[len(OWNER_PREFIX) :]
        if name not in known:
            out[name] = sorted(kube.ref_of(o).key for o in ctx.inv.objects(owner))
    if ctx.robots.ok and ctx.harbor is not None:
        prefix = ctx.harbor.robot_prefix
        for robot in ctx.robots.items:
            name = str(robot.get("name", ""))
            if not str(robot.get("description", "")).startswith("palplat:"):
                continue
            project = name[len(prefix) :].split("+", 1)[0] if name.startswith(prefix) else ""
            if project and project not in known:
                out.setdefault(project, []).append(f"Harbor robot {name}")
    return out
