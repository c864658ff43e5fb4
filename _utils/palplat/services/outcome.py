"""One run of the services stage: its context (:class:`Ctx`) and its result per service
and part (:class:`ServiceResult`, :class:`Outcome`), rendered as a state comment.

A failed part never stops the other parts or services: it is recorded as what is left to
do (``palplat:services:<name> <part>: <why>``) and the state fails naming exactly those.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from palplat import kube
from palplat.services import health
from palplat.services.inventory import Inventory, Listing
from palplat.services.resolve import PARTS, Plan, Spec


@dataclass
class ServiceResult:
    name: str
    changes: dict[str, Any] = field(default_factory=dict)
    failed: dict[str, str] = field(default_factory=dict)  # part -> why
    waiting: dict[str, str] = field(default_factory=dict)  # part -> the operator's next step
    kept: list[str] = field(default_factory=list)  # data left in place, and why
    notes: list[str] = field(default_factory=list)
    absent: bool = False  # the entry is being offboarded

    def fail(self, part: str, why: str) -> None:
        if why not in self.failed.get(part, ""):
            self.failed[part] = f"{self.failed[part]}; {why}" if part in self.failed else why

    def block(self, parts, why: str) -> None:
        for part in parts:
            self.fail(part, why)

    def wait(self, part: str, why: str) -> None:
        """``part`` waits for the operator (or for what the platform stage makes): not a
        failure; the other parts converge and the run says what to do next."""
        self.waiting.setdefault(part, why)


@dataclass
class Ctx:
    """What every part of a run shares."""

    plan: Plan
    kube: kube.Kube
    inv: Inventory
    harbor: Any  # palplat.services.harbor.Harbor | None
    woodpecker: Any  # palplat.services.woodpecker.Woodpecker | None
    projects: Listing  # Harbor projects by name
    robots: Listing  # Harbor robots (list)
    repos: Listing  # Woodpecker repositories by lower-cased full name
    dry_run: bool
    progress: Callable[..., Any] | None = None
    # what the services sign in with when the pillar does not say (services.credentials)
    repo_creds: tuple[str, Any] | None = None  # Argo CD's for deployments_repo
    waiting: dict[str, str] = field(default_factory=dict)  # part -> the operator's next step
    new_namespaces: set[str] = field(default_factory=set)  # a dry run would create them

    def say(self, message: str, **data: Any) -> None:
        if self.progress is not None:
            self.progress("apply", message, **data)

    def converge(self, spec: Spec, part: str, objs: list[dict], res: ServiceResult) -> bool:
        """Server-side apply ``objs`` (one part of ``spec``) through :func:`kube.converge`
        with the run's listings: no LIST and, for unchanged objects, no request at all."""
        if not objs:
            return True
        items = list(objs)
        if self.dry_run and spec.namespace in self.new_namespaces and part != "namespace":
            # a dry run cannot create the namespace: let the converge know it would exist
            items.insert(0, namespace_object(spec))
        try:
            out = kube.converge(
                self.kube,
                items,
                owner=spec.owner,
                dry_run=self.dry_run,
                listed=self.inv.listed_for(spec.owner),
                progress=self.progress,
            )
        except kube.KubeError as exc:
            res.changes.update(getattr(exc, "changes", None) or {})
            res.fail(part, str(exc))
            return False
        for key, change in out["changes"].items():
            before = res.changes.get(key, {}).get(".")
            if before is not None and before.get("old") is None:
                # made earlier in this run (a robot Secret stored at once): still a create
                made = next(o for o in items if _key(o, spec) == key)
                change = kube.diff(None, kube.owned(made, spec.owner))
            res.changes[key] = change
        if self.dry_run and out["actions"].get(f"Namespace/{spec.namespace}") == "create":
            self.new_namespaces.add(spec.namespace)
        return True


def _key(obj: dict[str, Any], spec: Spec) -> str:
    ref = kube.ref_of(obj)
    ns = None if ref.kind == "Namespace" else (ref.namespace or spec.namespace)
    return kube.key_of(ref.kind, ref.name, ns)


def namespace_object(spec: Spec) -> dict[str, Any]:
    from palplat.services.resolve import labelled

    return labelled(
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": spec.namespace}},
        spec,
        "namespace",
    )


@dataclass
class Outcome:
    results: dict[str, ServiceResult]
    shared: ServiceResult
    orphans: dict[str, list[str]] = field(default_factory=dict)
    disabled: tuple[str, ...] = ()
    stats: dict[str, Any] = field(default_factory=dict)
    # what the run listed, for status: the specs and the live objects of each owner
    # (repr=False: the inventory holds live Secrets; no repr, log or traceback shows them)
    specs: dict[str, Spec] = field(default_factory=dict, repr=False)
    inventory: Inventory | None = field(default=None, repr=False)

    def changes(self) -> dict[str, Any]:
        out = {n: r.changes for n, r in sorted(self.results.items()) if r.changes}
        if self.shared.changes:
            out["(shared)"] = self.shared.changes
        return out

    def summary(self) -> dict[str, list[str]]:
        """What the change is made of, for the plan report: services to add (a new
        namespace), change, remove (offboarding) and the orphaned ones."""
        out: dict[str, list[str]] = {"add": [], "change": [], "remove": []}
        for name, r in sorted(self.results.items()):
            if not r.changes:
                continue
            new_ns = any(
                k.startswith("Namespace/") and (v.get(".") or {}).get("old", 1) is None
                for k, v in r.changes.items()
            )
            out["remove" if r.absent else "add" if new_ns else "change"].append(name)
        out["orphaned"] = sorted(self.orphans)
        return out

    def status(self) -> list[dict[str, Any]]:
        """One row per service (and orphan): converged, pending changes or failed parts."""
        rows = []
        for name, r in sorted(self.results.items()):
            state = "absent" if r.absent else "converged"
            if r.changes:
                state = f"{len(r.changes)} pending change(s)"
            if r.waiting and not r.failed:
                state = "waiting for the operator: " + ", ".join(sorted(r.waiting))
            if r.failed:
                state = "failed: " + ", ".join(sorted(r.failed))
            row = {"service": name, "state": state}
            problems: list[str] = []
            spec = self.specs.get(name)
            if spec is not None and self.inventory is not None and not r.absent:
                cols, problems = health.describe(spec, self.inventory.objects(spec.owner))
                row.update(cols)
            row["healthy"] = not (r.changes or r.failed or r.waiting or problems)
            if r.waiting:
                # the exact next step is in the services stage's comment (and its plan)
                problems = [
                    *problems,
                    f"waiting for the operator ({', '.join(sorted(r.waiting))}): the next "
                    "step is in the services stage's comment (salt-call state.apply "
                    "palplat.service test=True)",
                ]
            if problems:
                row["problems"] = "; ".join(problems)
            rows.append(row)
        for name in sorted(self.orphans):
            rows.append({"service": name, "state": "orphaned (left alone)", "healthy": True})
        return rows

    def left(self) -> list[str]:
        """What is left to do, one line per service and part (in converge order)."""
        lines = []
        for name, r in sorted(self.results.items()):
            order = {p: i for i, p in enumerate(PARTS)}
            for part, why in sorted(r.failed.items(), key=lambda kv: order.get(kv[0], 99)):
                lines.append(f"palplat:services:{name} {part}: {why}")
        for part, why in self.shared.failed.items():
            lines.append(f"palplat:services:defaults {part}: {why}")
        return lines

    def waiting(self) -> list[str]:
        """What waits for the operator: one line per distinct next step, with the
        services and parts it holds up."""
        by_step: dict[str, list[str]] = {}
        for name, r in sorted(self.results.items()):
            for part, why in sorted(r.waiting.items()):
                by_step.setdefault(why, []).append(f"{name} {part}")
        for part, why in sorted(self.shared.waiting.items()):
            by_step.setdefault(why, []).append(f"(shared) {part}")
        return [f"{why} [{', '.join(held)}]" for why, held in by_step.items()]

    @property
    def ok(self) -> bool:
        return not self.left()

    def comment(self, test: bool) -> list[str]:
        changed = [n for n, r in sorted(self.results.items()) if r.changes]
        same = [n for n, r in sorted(self.results.items()) if not r.changes and not r.failed]
        lines = []
        if changed:
            verb = "would change" if test else "changed"
            lines.append(f"{verb} {len(changed)} service(s): {', '.join(changed)}")
        if self.shared.changes:
            lines.append(("would change" if test else "changed") + " the shared objects")
        lines.extend(self.shared.notes)
        if same:
            lines.append(f"{len(same)} service(s) already as desired")
        for name, r in sorted(self.results.items()):
            lines.extend(f"{name}: {n}" for n in r.notes)
            lines.extend(f"{name}: kept {k}" for k in r.kept)
        for name, keys in sorted(self.orphans.items()):
            lines.append(
                f"orphaned: '{name}' is no longer in palplat:services; its objects are left "
                f"alone: {', '.join(keys)} (add it back with absent: true to offboard it)"
            )
        if self.disabled:
            lines.append(f"left alone (enabled: false): {', '.join(self.disabled)}")
        waiting = self.waiting()
        if waiting:
            lines.append("waiting for the operator (not a failure; the rest is converged):")
            lines.extend(f"  - {line}" for line in waiting)
        left = self.left()
        if left:
            lines.append("left to do (fix the cause and re-run; finished parts are not redone):")
            lines.extend(f"  - {line}" for line in left)
        return lines
