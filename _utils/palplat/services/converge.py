"""Onboarding: bring every service of the pillar to what its entry asks for.

``run(plan, kube, harbor=..., woodpecker=..., dry_run=...)`` reads what exists once (one
LIST per kind, one Harbor listing of projects and robots, one Woodpecker listing of
repositories), then per service, part by part:

    namespace -> registry (Harbor; robot secrets stored at once) -> ci (Woodpecker)
      -> registry Secrets, secrets, database, delivery, ingress, monitoring (Kubernetes)
      -> prune what the entry no longer asks for (never a Namespace or a database)

A part that fails is recorded and the rest goes on; parts that need it are blocked. Test
mode is the same path with ``dry_run=True``: Kubernetes writes become ``dryRun=All``,
Harbor and Woodpecker are only read. A service with nothing to change costs no request
of its own in Kubernetes and Harbor, and one secrets listing in Woodpecker.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from palplat import kube
from palplat.services import bundle, ci, inventory, offboard, origin, registry
from palplat.services.harbor import Harbor
from palplat.services.http import Unreached
from palplat.services.inventory import DATA_KINDS, KINDS, listing, part_of
from palplat.services.outcome import Ctx, Outcome, ServiceResult
from palplat.services.resolve import (
    PARTS,
    PULL_ROBOT,
    PUSH_ROBOT,
    PUSH_SECRET,
    SHARED_OWNER,
    Plan,
    Spec,
)
from palplat.services.woodpecker import Woodpecker

AFTER_CI = ("registry", "secrets", "database", "delivery", "ingress", "monitoring")
PRUNED_KINDS = tuple(k for k in KINDS if k[1] not in DATA_KINDS)


def clients(
    plan: Plan, guard: Any = None, harbor_password=None
) -> tuple[Harbor | None, Woodpecker | None]:
    """The Harbor and Woodpecker clients the pillar configures (None where it does not,
    and for Woodpecker without a token: the CI part then waits for the operator).
    ``guard`` (:class:`palplat.egress.Guard`): in a pull request's plan, an API whose
    endpoint or credential the pull request changes gets a client that contacts nothing
    (:class:`palplat.services.http.Unreached`). ``harbor_password``: the admin's when the
    pillar has none (services.credentials)."""
    d = plan.defaults
    harbor = wp = None
    if d.harbor is not None and (d.harbor.password is not None or harbor_password is not None):
        why = guard.harbor(d.harbor) if guard is not None else None
        harbor = (
            Harbor(Unreached("Harbor", f"{d.harbor.url}/api/v2.0", why), d.harbor.robot_prefix)
            if why
            else Harbor.from_settings(d.harbor, password=harbor_password)
        )
    if d.woodpecker is not None and d.woodpecker.token is not None:
        why = guard.woodpecker(d.woodpecker) if guard is not None else None
        wp = (
            Woodpecker(Unreached("Woodpecker", f"{d.woodpecker.url}/api", why))
            if why
            else Woodpecker.from_settings(d.woodpecker)
        )
    return harbor, wp


def run(
    plan: Plan,
    k: kube.Kube,
    *,
    harbor: Harbor | None,
    woodpecker: Woodpecker | None,
    dry_run: bool,
    progress: Callable[..., Any] | None = None,
    repo_creds: tuple[str, Any] | None = None,
    waiting: dict[str, str] | None = None,
) -> Outcome:
    """``repo_creds``: Argo CD's credential when the pillar has none; ``waiting``: parts
    that wait for the operator (or the platform stage), part -> the next step."""
    inv = inventory.take(k)
    specs = plan.specs
    waiting = dict(waiting or {})
    need_ci = any(s.entry.ci for s in specs.values()) and "ci" not in waiting
    no_harbor = "Harbor is not configured (palplat:services:defaults:harbor)"
    ctx = Ctx(
        plan=plan,
        kube=k,
        inv=inv,
        harbor=harbor,
        woodpecker=woodpecker,
        projects=listing(harbor.projects if harbor and specs else None, no_harbor, {}),
        robots=listing(harbor.robots if harbor and specs else None, no_harbor, []),
        repos=listing(
            woodpecker.repos if woodpecker and need_ci else None,
            "Woodpecker is not configured (palplat:services:defaults:woodpecker)",
            {},
        ),
        dry_run=dry_run,
        progress=progress,
        repo_creds=repo_creds,
        waiting=waiting,
    )
    results = {name: ServiceResult(name, absent=s.entry.absent) for name, s in specs.items()}
    shared = ServiceResult("(shared)")
    for what in (ctx.projects, ctx.repos):
        if what.unreached and what.unreached not in shared.notes:
            shared.notes.append(f"{what.unreached}; planned as if it held nothing yet")
    _shared(ctx, shared)
    for name, spec in specs.items():
        if spec.entry.absent:
            offboard.absent(ctx, spec, results[name])
        else:
            onboard(ctx, spec, results[name])
    orphans = offboard.orphans(ctx) if plan.complete else {}
    return Outcome(results, shared, orphans, plan.disabled, specs=dict(specs), inventory=inv)


def _shared(ctx: Ctx, res: ServiceResult) -> None:
    """Argo CD's repository Secret, shared by every service (owner palplat-services)."""
    present = any(not s.entry.absent for s in ctx.plan.specs.values())
    objs = bundle.shared(ctx.plan, ctx.repo_creds) if present else []
    if present and not objs and "delivery" in ctx.waiting:
        res.wait("delivery", ctx.waiting["delivery"])
        # what exists stays until the credential is there (never pruned for waiting)
        return
    listed = ctx.inv.listed_for(SHARED_OWNER)
    try:
        if objs:
            out = kube.converge(
                ctx.kube, objs, owner=SHARED_OWNER, dry_run=ctx.dry_run, listed=listed
            )
            res.changes.update(out["changes"])
        if ctx.plan.complete:
            res.changes.update(
                kube.prune(
                    ctx.kube,
                    SHARED_OWNER,
                    objs,
                    kinds=[("v1", "Secret")],
                    dry_run=ctx.dry_run,
                    listed=listed,
                )
            )
    except kube.KubeError as exc:
        res.changes.update(getattr(exc, "changes", None) or {})
        res.fail("delivery", str(exc))


def onboard(ctx: Ctx, spec: Spec, res: ServiceResult) -> None:
    """Converge one service, part by part (see the module docstring)."""
    origins = _origins(ctx, spec)
    parts = _stamped(bundle.bundle(ctx.plan, spec), origins)
    if not ctx.converge(spec, "namespace", parts["namespace"], res):
        res.block(PARTS[1:], "blocked: the namespace part failed")
        return
    robots = registry.ensure(ctx, spec, res)
    push_live = registry.live_secret(ctx, spec, PUSH_SECRET)
    synced = (((push_live or {}).get("metadata") or {}).get("annotations") or {}).get(
        bundle.CI_SYNCED_ANNOTATION
    )
    synced = ci.ensure(ctx, spec, res, robots.get(PUSH_ROBOT), synced)
    parts = _stamped(bundle.bundle(ctx.plan, spec, robots, synced), origins)
    for part in AFTER_CI:
        ctx.converge(spec, part, parts.get(part, []), res)
    _prune(ctx, spec, res, parts, robots)


def _live_of(ctx: Ctx, spec: Spec, api_version: str, kind: str, name: str, ns: str | None):
    """The live object: from the run's inventory (palplat's), else one GET (it does not
    exist yet, or palplat is about to adopt it: only then)."""
    for obj in ctx.inv.listed_for(spec.owner).get((api_version, kind), []):
        meta = obj.get("metadata") or {}
        if meta.get("name") == name and meta.get("namespace") == ns:
            return obj
    try:
        return ctx.kube.get(api_version, kind, name, ns)
    except kube.UnknownKind:
        return None


def _origins(ctx: Ctx, spec: Spec) -> dict[str, str]:
    """Whether palplat created or adopted the namespace, the Harbor project and the
    database Cluster (:mod:`palplat.services.origin`); recorded in the objects' annotations."""
    ns_live = _live_of(ctx, spec, "v1", "Namespace", spec.namespace, None)
    out = {"namespace": origin.of_live(ns_live)}
    if ctx.projects.ok:
        out["project"] = origin.project_origin(ns_live, spec.project in ctx.projects.items)
    elif origin.recorded(ns_live, origin.PROJECT_ORIGIN):
        out["project"] = origin.recorded(ns_live, origin.PROJECT_ORIGIN)
    if spec.entry.database is not None:
        live = (
            _live_of(ctx, spec, bundle.CNPG_API, "Cluster", f"{spec.name}-db", spec.namespace)
            if ns_live is not None
            else None
        )
        out["database"] = origin.of_live(live)
    return out


def _stamped(parts: dict[str, list[dict]], origins: dict[str, str]) -> dict[str, list[dict]]:
    """``parts`` with the origin record on the Namespace and the database Cluster."""
    out = dict(parts)
    ns_notes = {origin.ORIGIN: origins["namespace"]}
    if "project" in origins:
        ns_notes[origin.PROJECT_ORIGIN] = origins["project"]
    out["namespace"] = [
        origin.stamp(o, **ns_notes) if o.get("kind") == "Namespace" else o
        for o in parts.get("namespace", [])
    ]
    if "database" in origins and parts.get("database"):
        out["database"] = [
            origin.stamp(o, **{origin.ORIGIN: origins["database"]})
            if o.get("kind") == "Cluster"
            else o
            for o in parts["database"]
        ]
    return out


def _prune(ctx: Ctx, spec: Spec, res: ServiceResult, parts, robots) -> None:
    """Delete the service's objects its entry no longer asks for; keep data (Namespace,
    database Cluster) and what a failed part could not decide about."""
    desired = [o for objs in parts.values() for o in objs]
    live = ctx.inv.objects(spec.owner)
    keep = list(desired)
    unknown = {
        registry.STORED_IN[short] for short in (PUSH_ROBOT, PULL_ROBOT) if robots.get(short) is None
    }
    held = set(res.failed) | set(res.waiting)
    wanted = {kube.ref_of(o).key for o in desired}
    for obj in live:
        ref = kube.ref_of(obj)
        if part_of(obj) in held or (obj.get("kind") == "Secret" and ref.name in unknown):
            keep.append(obj)
        elif obj.get("kind") in DATA_KINDS and ref.key not in wanted:
            res.kept.append(
                f"{ref.key}: no longer asked for by palplat:services:{spec.name} but holds "
                "data; delete it by hand once it is safe, or offboard with absent and "
                "delete_data"
            )
    try:
        res.changes.update(
            kube.prune(
                ctx.kube,
                spec.owner,
                keep,
                kinds=PRUNED_KINDS,
                dry_run=ctx.dry_run,
                listed=ctx.inv.listed_for(spec.owner),
            )
        )
    except kube.KubeError as exc:
        res.fail("namespace", f"pruning: {exc}")
