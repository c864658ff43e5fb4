"""Gather a plan and a status from the minions, through a ``cmd`` callable the runner
gives (Salt's LocalClient), so this logic is testable without a master.

``cmd(fun, arg=(), kwarg=None)`` runs ``fun`` on every targeted minion and returns
``{minion: return}``; ``fun`` may be a list (one multi-function job: then ``arg`` is a
list of argument lists and each return is ``{fun: return}``).

The plan is the full orchestration in test mode with one pillar compile per minion:
validation (``palplat_config.problems``, which really runs), the k3s upgrade order (when
one is due, the k3s stage is planned as the upgrade will run it), then every stage in one
``state.sls palplat test=True`` job.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from palplat import redact
from palplat.report.plan import Item, Report, add_state_returns
from palplat.report.status import CALLS, CLUSTER_CALLS, NODE_CALLS, Status, build, holders

Cmd = Callable[..., Mapping[str, Any]]
UPGRADE_PILLAR = "palplat_k3s_upgrade"
PLAN_PILLAR = "palplat_plan"  # loaderkit.PLAN_PILLAR


def _answered(report: Report, answers: Mapping[str, Any], expected: Iterable[str], what: str):
    for mid in sorted(set(expected) - set(answers)):
        report.errors.append(f"{mid}: did not answer {what} (unreachable minion?)")


def collect_plan(
    cmd: Cmd,
    expected: list[str],
    k3s_plan: Callable[[], Mapping[str, Any]] | None = None,
    plan: Mapping[str, Any] | None = None,
) -> Report:
    """``plan``: a pull request's pillar, sealed (:func:`palplat.pullrequest.payload`),
    planned instead of the minions' own; it holds no secret value."""
    report = Report(minions=sorted(expected))
    t0 = time.monotonic()
    env_arg = [{"plan": dict(plan), "__kwarg__": True}] if plan else []
    facts = cmd(["palplat_config.problems", "palplat_config.graph"], arg=[env_arg, env_arg])
    _answered(report, facts, expected, "validation")
    report.minions = sorted(set(expected) | set(facts))
    for mid, got in sorted(facts.items()):
        if not isinstance(got, Mapping):
            report.errors.append(f"{mid}: {redact.mask_text(str(got))}")
            continue
        problems = got.get("palplat_config.problems")
        if isinstance(problems, list):
            report.errors.extend(f"{mid}: {p}" for p in problems)
        else:
            report.errors.append(f"{mid}: validation failed: {redact.mask_text(str(problems))}")
        graph = got.get("palplat_config.graph")
        if isinstance(graph, Mapping) and not report.graph:
            report.graph = dict(graph)
    report.timings["validate"] = time.monotonic() - t0
    if report.errors:
        return report  # nothing else is planned on an invalid pillar

    pillar: dict[str, Any] = {}
    if plan:
        pillar[PLAN_PILLAR] = dict(plan)
    if k3s_plan is not None:
        t1 = time.monotonic()
        up = k3s_plan() or {}
        if up.get("result") is False:
            report.errors.append(f"k3s upgrade plan: {redact.mask_text(str(up.get('comment')))}")
        for step in up.get("steps") or []:
            node = step.get("node") or step.get("minion")
            report.items.append(
                Item(
                    minion=str(step.get("minion")),
                    stage="k3s-upgrade",
                    item=f"upgrade {node}",
                    result=None,
                    comment=f"{step.get('from')} -> {step.get('to')} ({step.get('role')})"
                    + (f": {step['why']}" if step.get("why") else ""),
                    changes={"version": {"old": step.get("from"), "new": step.get("to")}},
                    kinds={"change": [str(node)]},
                )
            )
        if up.get("steps"):
            pillar[UPGRADE_PILLAR] = True
        report.timings["k3s-upgrade"] = time.monotonic() - t1

    t2 = time.monotonic()
    kwarg: dict[str, Any] = {"test": True}
    if pillar:
        kwarg["pillar"] = pillar
    rets = cmd("state.sls", arg=["palplat"], kwarg=kwarg)
    _answered(report, rets, expected, "the test-mode run")
    for mid, r in sorted(rets.items()):
        add_state_returns(report, mid, r)
    report.timings["stages"] = time.monotonic() - t2
    report.timings["total"] = time.monotonic() - t0
    return report


def collect_status(
    cmd: Cmd, expected: list[str], cmd_on: Callable[[list[str]], Cmd] | None = None
) -> Status:
    """Node calls on every minion, then the cluster calls on the holders only
    (``cmd_on(minions)``: a ``cmd`` for those minions; without it, everything on every
    minion in one job, as before)."""
    if cmd_on is None:
        answers = cmd([f for f, _ in CALLS], arg=[a for _, a in CALLS])
        return build(answers, expected)
    answers = {
        m: dict(v) if isinstance(v, Mapping) else v
        for m, v in cmd([f for f, _ in NODE_CALLS], arg=[a for _, a in NODE_CALLS]).items()
    }
    held = holders(answers)
    if held:
        more = cmd_on(held)([f for f, _ in CLUSTER_CALLS], arg=[a for _, a in CLUSTER_CALLS])
        for mid in held:
            got = more.get(mid)
            if isinstance(got, Mapping):
                answers[mid].update(got)
            else:
                answers[mid] = f"did not answer the cluster calls ({redact.mask_text(str(got))})"
    return build(answers, expected)
