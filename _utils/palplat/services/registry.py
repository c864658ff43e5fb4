"""The registry part of a service: its Harbor project and two robots, CI's push robot and
the cluster's pull robot, whose secrets are stored in Kubernetes Secrets at once.

Harbor shows a robot's secret only when it creates (or refreshes) it. So the secret is
applied to its Secret (``palplat-registry-push`` / ``palplat-registry-pull``) right after
Harbor answers, before anything else happens. A run that finds the robot but not its
Secret (lost, or written by a run that failed half-way) refreshes the robot's secret
instead of creating a second robot; a robot deleted in Harbor is created again.
"""

from __future__ import annotations

import base64
import json
from typing import Any

from palplat.secret import Secret
from palplat.services import bundle
from palplat.services.bundle import ROBOT_ID_ANNOTATION, Robot
from palplat.services.http import ApiError
from palplat.services.outcome import Ctx, ServiceResult
from palplat.services.resolve import PULL_ROBOT, PULL_SECRET, PUSH_ROBOT, PUSH_SECRET, Spec

# what each robot may do on its project's repositories
ROBOTS = {PUSH_ROBOT: ["push", "pull"], PULL_ROBOT: ["pull"]}
STORED_IN = {PUSH_ROBOT: PUSH_SECRET, PULL_ROBOT: PULL_SECRET}
# a dry run cannot know a secret Harbor has not made yet
PLANNED = "palplat-planned-robot-secret"
NEW_ID = "(assigned by Harbor)"


def _b64(data: dict, key: str) -> str | None:
    value = (data or {}).get(key)
    if value is None:
        return None
    try:
        return base64.b64decode(value).decode()
    except ValueError:
        return None


def stored_robot(obj: dict[str, Any] | None, registry: str) -> Robot | None:
    """The robot a live ``palplat-registry-*`` Secret holds (None when unusable)."""
    if not obj:
        return None
    meta = obj.get("metadata") or {}
    rid = (meta.get("annotations") or {}).get(ROBOT_ID_ANNOTATION)
    data = obj.get("data") or {}
    if ".dockerconfigjson" in data:
        try:
            auth = json.loads(_b64(data, ".dockerconfigjson") or "")["auths"][registry]
            name, password = auth["username"], auth["password"]
        except (ValueError, KeyError, TypeError):
            return None
    else:
        name, password = _b64(data, "username"), _b64(data, "password")
    if not name or not password or not (rid or "").isdigit():
        return None
    return Robot(name, Secret(password), int(rid))


def live_secret(ctx: Ctx, spec: Spec, name: str) -> dict | None:
    for obj in ctx.inv.listed_for(spec.owner)[("v1", "Secret")]:
        meta = obj.get("metadata") or {}
        if meta.get("name") == name and meta.get("namespace") == spec.namespace:
            return obj
    return None


def ensure(ctx: Ctx, spec: Spec, res: ServiceResult) -> dict[str, Robot | None]:
    """Project and robots of ``spec``; the robots whose secrets are known (None: unknown,
    the part failed). Each robot secret Harbor hands out is stored at once."""
    registry = ctx.plan.defaults.registry or ""
    stored = {
        short: stored_robot(live_secret(ctx, spec, STORED_IN[short]), registry) for short in ROBOTS
    }
    if "registry" in ctx.waiting:
        res.wait("registry", ctx.waiting["registry"])
        return stored  # what the cluster holds stays as it is
    if not (ctx.projects.ok and ctx.robots.ok):
        res.fail("registry", str(ctx.projects.error or ctx.robots.error))
        return stored  # what the cluster holds stays as it is
    robots: dict[str, Robot | None] = dict(stored)
    try:
        _project(ctx, spec, res)
    except ApiError as exc:
        res.fail("registry", str(exc))
        return robots
    for short, actions in ROBOTS.items():
        try:
            robots[short] = _robot(ctx, spec, res, short, actions, stored[short])
        except ApiError as exc:
            res.fail("registry", str(exc))
    return robots


def _project(ctx: Ctx, spec: Spec, res: ServiceResult) -> None:
    if spec.project in ctx.projects.items:
        return
    res.changes[f"Harbor project {spec.project}"] = {"old": None, "new": "private project"}
    if ctx.dry_run:
        return
    ctx.say(f"creating Harbor project {spec.project}")
    ctx.harbor.create_project(spec.project)
    if ctx.harbor.project(spec.project) is None:
        raise ApiError(f"Harbor: project {spec.project} is missing right after it was created")
    ctx.projects.items[spec.project] = {"name": spec.project, "repo_count": 0}


def _find(ctx: Ctx, name: str) -> dict | None:
    return next((r for r in ctx.robots.items if r.get("name") == name), None)


def _robot(
    ctx: Ctx, spec: Spec, res: ServiceResult, short: str, actions, stored: Robot | None
) -> Robot | None:
    full = ctx.harbor.robot_name(spec.project, short)
    live = _find(ctx, full)
    if live is not None and stored is not None and stored.id == live.get("id"):
        return stored
    secret_name = f"Secret/{spec.namespace}/{STORED_IN[short]}"
    if live is None:
        change = {"old": None, "new": f"robot ({', '.join(actions)}), secret in {secret_name}"}
    else:
        change = {"old": f"secret not in {secret_name}", "new": "secret refreshed into it"}
    res.changes[f"Harbor robot {full}"] = change
    if ctx.dry_run:
        return Robot(full, Secret(PLANNED), live.get("id") if live else NEW_ID)
    if live is None:
        ctx.say(f"creating Harbor robot {full}")
        what = "push (CI)" if short == PUSH_ROBOT else "pull (cluster)"
        rid, name, secret = ctx.harbor.create_robot(
            spec.project, short, actions, f"palplat: {what} robot of service {spec.name}"
        )
        if ctx.harbor.robot(rid) is None:
            raise ApiError(f"Harbor: robot {name} is missing right after it was created")
        ctx.robots.items.append({"id": rid, "name": name})
    else:
        ctx.say(f"refreshing the secret of Harbor robot {full} (its stored copy is gone)")
        rid, name, secret = int(live["id"]), full, ctx.harbor.refresh_robot(int(live["id"]))
    robot = Robot(name, secret, rid)
    _store(ctx, spec, res, short, robot)
    return robot


def _store(ctx: Ctx, spec: Spec, res: ServiceResult, short: str, robot: Robot) -> None:
    """Apply the robot's Secret now: Harbor will not show this secret again."""
    registry = ctx.plan.defaults.registry or ""
    if short == PULL_ROBOT:
        obj = bundle.pull_secret(spec, registry, robot)
    else:
        obj = bundle.push_secret(spec, registry, robot)
    if not ctx.converge(spec, "registry", [obj], res):
        raise ApiError(
            f"the secret of Harbor robot {robot.name} could not be stored in "
            f"Secret/{spec.namespace}/{STORED_IN[short]}; the next run refreshes it"
        )
