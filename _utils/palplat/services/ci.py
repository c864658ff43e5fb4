"""The CI part of a service: its repository activated in Woodpecker and the pipeline
secrets CI pushes images with (``registry``, ``registry_username``, ``registry_password``:
the push robot).

Woodpecker never returns a secret's value, so palplat records what it last set: a
fingerprint of the repository and the values, in the annotation ``palplat.io/ci-synced``
of the push robot's Secret. A secret that is missing or whose events differ is set again,
and all of them when the fingerprint changed (a new robot secret, a new registry).
"""

from __future__ import annotations

import hashlib
import json

from palplat.services.bundle import Robot
from palplat.services.http import ApiError
from palplat.services.outcome import Ctx, ServiceResult
from palplat.services.resolve import CI_SECRETS, Spec
from palplat.services.woodpecker import EVENTS


def fingerprint(repo_id: int, values: dict[str, str]) -> str:
    text = json.dumps([repo_id, values, EVENTS], sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def ensure(
    ctx: Ctx, spec: Spec, res: ServiceResult, push: Robot | None, synced: str | None
) -> str | None:
    """Activate the repository and set its secrets; the fingerprint to record (``synced``,
    the recorded one, when nothing could be set)."""
    if not spec.entry.ci:
        return synced
    if "ci" in ctx.waiting:
        res.wait("ci", ctx.waiting["ci"])
        return synced
    if not ctx.repos.ok:
        res.fail("ci", str(ctx.repos.error))
        return synced
    full = spec.entry.repo
    repo = ctx.repos.items.get(full.lower())
    if repo is None and ctx.repos.unreached:
        # a pull request's plan that may not ask Woodpecker: what a new one would get
        res.changes[f"Woodpecker repo {full}"] = {"old": None, "new": "active"}
        for n in CI_SECRETS:
            res.changes[f"Woodpecker secret {full}:{n}"] = {"old": None, "new": "<hidden>"}
        return synced
    if repo is None:
        res.fail(
            "ci",
            f"Woodpecker does not see the repository {full}: check that it exists on the "
            f"forge and that the token's user may administer it (palplat:services:{spec.name}"
            ":repo)",
        )
        return synced
    try:
        return _ensure(ctx, spec, res, repo, push, synced)
    except ApiError as exc:
        res.fail("ci", str(exc))
        return synced


def _ensure(ctx: Ctx, spec: Spec, res: ServiceResult, repo: dict, push, synced):
    full = spec.entry.repo
    if not repo.get("active"):
        res.changes[f"Woodpecker repo {full}"] = {"old": "inactive", "new": "active"}
        if not ctx.dry_run:
            ctx.say(f"activating {full} in Woodpecker")
            ctx.woodpecker.activate(str(repo.get("forge_remote_id", "")))
            back = ctx.woodpecker.repos().get(full.lower())
            if not back or not back.get("active") or not back.get("id"):
                raise ApiError(f"Woodpecker: {full} is not active right after activation")
            repo = ctx.repos.items[full.lower()] = back
    if push is None:
        res.fail("ci", "waiting on the registry part: the push robot's secret is not known yet")
        return synced
    values = {
        "registry": ctx.plan.defaults.registry or "",
        "registry_username": push.name,
        "registry_password": str(push.secret.reveal()),
    }
    repo_id = int(repo.get("id") or 0)
    fp = fingerprint(repo_id, values)
    live = ctx.woodpecker.secrets(repo_id) if repo_id else {}
    todo = [
        n
        for n in CI_SECRETS
        if n not in live or sorted(live[n].get("events") or []) != sorted(EVENTS) or fp != synced
    ]
    for n in todo:
        res.changes[f"Woodpecker secret {full}:{n}"] = {
            "old": "<hidden>" if n in live else None,
            "new": "<hidden>",
        }
    if ctx.dry_run or not todo:
        return synced if todo else fp
    ctx.say(f"setting {len(todo)} pipeline secret(s) of {full} in Woodpecker")
    for n in todo:
        ctx.woodpecker.set_secret(repo_id, n, values[n], exists=n in live)
    after = ctx.woodpecker.secrets(repo_id)
    missing = [n for n in CI_SECRETS if n not in after]
    if missing:
        raise ApiError(f"Woodpecker: {full}: secrets {', '.join(missing)} missing after setting")
    return fp
