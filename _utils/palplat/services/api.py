"""The entry points loader modules call: a whole run with its clients, the desired objects
of one service, the live objects of one service. Plain functions over a validated pillar
and a :class:`palplat.kube.Kube`; no loader globals."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from palplat import kube
from palplat.errors import InputError
from palplat.model import PalplatPillar
from palplat.services import bundle, converge, inventory, resolve
from palplat.services.outcome import Outcome


def plan_for(cfg: PalplatPillar, only: list[str] | None = None) -> resolve.Plan:
    """The resolved services (``only``: these names, each must be in the pillar)."""
    if only:
        names = {n for n, _ in cfg.services.items()}
        unknown = [n for n in only if n not in names]
        if unknown:
            raise InputError(
                f"palplat:services:{unknown[0]}: no such service; define it under "
                f"palplat:services (defined: {', '.join(sorted(names)) or 'none'})"
            )
    return resolve.resolve(cfg, only)


def run(
    cfg: PalplatPillar,
    k: kube.Kube,
    *,
    dry_run: bool,
    only: list[str] | None = None,
    progress: Callable[..., Any] | None = None,
    verify: bool = True,
) -> tuple[Outcome, list[str]]:
    """Converge (or plan) the services; ``(outcome, verification problems)``.

    After a real run that changed something, a fresh plan must find nothing left to do
    in the parts that succeeded (verification); what it still finds is returned.
    """
    plan = plan_for(cfg, only)
    harbor, wp = converge.clients(plan)
    try:
        out = converge.run(
            plan, k, harbor=harbor, woodpecker=wp, dry_run=dry_run, progress=progress
        )
        problems: list[str] = []
        changed = sorted(n for n, r in out.results.items() if r.changes)
        if verify and not dry_run and changed:
            # the services that changed, planned again: nothing may be left to do
            again = converge.run(
                resolve.resolve(cfg, changed), k, harbor=harbor, woodpecker=wp, dry_run=True
            )
            for name, res in again.results.items():
                done = out.results.get(name)
                failed = set(done.failed) if done else set()
                left = [] if failed or res.failed else sorted(res.changes)
                if left:
                    problems.append(
                        f"{name}: still differs right after converging: {', '.join(left)}"
                    )
    finally:
        for client in (harbor, wp):
            if client is not None:
                client.close()
    return out, problems


def render(cfg: PalplatPillar, name: str) -> dict[str, list[dict]]:
    """The Kubernetes objects of service ``name`` by part, masked (robot Secrets are made
    from what Harbor answers, so they are not among them)."""
    plan = plan_for(cfg, [name])
    spec = plan.specs.get(name)
    if spec is None:
        return {}
    return {part: kube.masked(objs) for part, objs in bundle.bundle(plan, spec).items()}


def live(k: kube.Kube, name: str) -> dict[str, list[str]]:
    """The objects palplat made for service ``name`` (found by their labels), by part."""
    inv = inventory.take(k)
    out: dict[str, list[str]] = {}
    for obj in inv.objects(resolve.owner_of(name)):
        out.setdefault(inventory.part_of(obj), []).append(kube.ref_of(obj).key)
    return {p: sorted(keys) for p, keys in sorted(out.items())}
