"""A contract fake of Harbor v2.0: projects, their repositories, robot accounts.

Behaves as Harbor does where palplat depends on it: basic auth (401 with an ``Errors``
body), project names unique (409), a project robot is named ``robot$<project>+<name>``,
its secret is returned only by create and refresh (never by a listing), a project with
repositories cannot be deleted (412), listings are paged with ``X-Total-Count``.
"""

from __future__ import annotations

import base64
import itertools
import secrets
from datetime import datetime, timezone
from urllib.parse import unquote

from tests.support.fakes import contract
from tests.support.fakes.server import ApiError, FakeApi, Reply, Req


def _now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.000Z")


class HarborFake(FakeApi):
    name = "Harbor"
    STATE = ("projects", "repositories", "robots", "robot_secrets")

    def __init__(self, username: str = "admin", password="Harbor12345"):
        """``password``: a string, or a callable (the sandbox reads the admin password from
        the Secret the chart reads, existingSecretAdminPassword: the one palplat made)."""
        super().__init__(contract.Contract(contract.HARBOR_DOC))
        self.username, self._password = username, password
        self.projects: dict[str, dict] = {}
        self.repositories: dict[str, dict[str, dict]] = {}
        self.robots: dict[int, dict] = {}
        self.robot_secrets: dict[int, str] = {}
        self._ids = itertools.count(1)

    def restored(self) -> None:
        ids = [p["project_id"] for p in self.projects.values()] + list(self.robots)
        ids += [r["id"] for repos in self.repositories.values() for r in repos.values()]
        self._ids = itertools.count(max(ids, default=0) + 1)

    # ------------------------------------------------------------------ helpers

    @property
    def password(self) -> str:
        return self._password() if callable(self._password) else self._password

    @password.setter
    def password(self, value) -> None:
        self._password = value

    def auth(self, req: Req) -> Reply | None:
        want = base64.b64encode(f"{self.username}:{self.password}".encode()).decode()
        got = {k.lower(): v for k, v in req.headers.items()}.get("authorization", "")
        if got != f"Basic {want}":
            return self.error_reply(401, "unauthorized")
        return None

    def error_reply(self, status: int, message: str) -> Reply:
        code = {401: "UNAUTHORIZED", 404: "NOT_FOUND", 409: "CONFLICT"}.get(status, "ERROR")
        return Reply(status, {"errors": [{"code": code, "message": message}]})

    def _page(self, req: Req, items: list) -> Reply:
        page = int(req.query.get("page", 1))
        size = int(req.query.get("page_size", 10))
        chunk = items[(page - 1) * size : page * size]
        return Reply(200, chunk, {"X-Total-Count": str(len(items))})

    def _project(self, req: Req) -> dict:
        key = req.params["project_name_or_id"]
        by_name = req.headers.get("X-Is-Resource-Name", "false").lower() == "true"
        for p in self.projects.values():
            if (by_name and p["name"] == key) or (not by_name and str(p["project_id"]) == key):
                return p
            if not by_name and not key.isdigit() and p["name"] == key:
                return p
        raise ApiError(404, f"project {key} not found")

    def _robot(self, req: Req) -> dict:
        rid = int(req.params["robot_id"])
        if rid not in self.robots:
            raise ApiError(404, f"robot {rid} not found")
        return self.robots[rid]

    def add_repository(self, project: str, name: str) -> None:
        """A pushed image (tests): ``project/name`` with one artifact."""
        p = self.projects[project]
        self.repositories.setdefault(project, {})[name] = {
            "id": next(self._ids),
            "project_id": p["project_id"],
            "name": f"{project}/{name}",
            "artifact_count": 1,
            "pull_count": 0,
            "creation_time": _now(),
            "update_time": _now(),
        }

    # ------------------------------------------------------------------ projects

    def listProjects(self, req: Req) -> Reply:  # noqa: N802 - Harbor's operationId
        items = []
        for p in sorted(self.projects.values(), key=lambda p: p["project_id"]):
            items.append({**p, "repo_count": len(self.repositories.get(p["name"], {}))})
        return self._page(req, items)

    def createProject(self, req: Req) -> Reply:  # noqa: N802
        name = (req.body or {}).get("project_name")
        if not name:
            raise ApiError(400, "project_name is required")
        if name in self.projects:
            raise ApiError(409, f"The project named {name} already exists")
        pid = next(self._ids)
        self.projects[name] = {
            "project_id": pid,
            "name": name,
            "owner_id": 1,
            "owner_name": self.username,
            "creation_time": _now(),
            "update_time": _now(),
            "deleted": False,
            "repo_count": 0,
            "metadata": {"public": (req.body.get("metadata") or {}).get("public", "false")},
        }
        by_name = req.headers.get("X-Resource-Name-In-Location", "false").lower() == "true"
        where = name if by_name else str(pid)
        return Reply(201, None, {"Location": f"/api/v2.0/projects/{where}"})

    def getProject(self, req: Req) -> Reply:  # noqa: N802
        p = self._project(req)
        return Reply(200, {**p, "repo_count": len(self.repositories.get(p["name"], {}))})

    def deleteProject(self, req: Req) -> Reply:  # noqa: N802
        p = self._project(req)
        if self.repositories.get(p["name"]):
            raise ApiError(412, "the project contains repositories and cannot be deleted")
        del self.projects[p["name"]]
        for rid in [i for i, r in self.robots.items() if _robot_project(r) == p["name"]]:
            del self.robots[rid]
        return Reply(200)

    def listRepositories(self, req: Req) -> Reply:  # noqa: N802
        project = req.params["project_name"]
        if project not in self.projects:
            raise ApiError(404, f"project {project} not found")
        return self._page(req, list(self.repositories.get(project, {}).values()))

    def deleteRepository(self, req: Req) -> Reply:  # noqa: N802
        project = req.params["project_name"]
        name = unquote(req.params["repository_name"])  # Harbor decodes it a second time
        repos = self.repositories.get(project, {})
        if name not in repos:
            raise ApiError(404, f"repository {project}/{name} not found")
        del repos[name]
        return Reply(200)

    # -------------------------------------------------------------------- robots

    def ListRobot(self, req: Req) -> Reply:  # noqa: N802
        return self._page(req, [self.robots[i] for i in sorted(self.robots)])

    def CreateRobot(self, req: Req) -> Reply:  # noqa: N802
        body = req.body or {}
        perms = body.get("permissions") or []
        if body.get("level") != "project" or len(perms) != 1:
            raise ApiError(400, "a project robot needs level project and one permission")
        project = perms[0].get("namespace")
        if project not in self.projects:
            raise ApiError(404, f"project {project} not found")
        full = f"robot${project}+{body.get('name')}"
        if any(r["name"] == full for r in self.robots.values()):
            raise ApiError(409, f"robot {full} already exists")
        rid = next(self._ids)
        secret = secrets.token_urlsafe(24) + "Aa1"
        self.robots[rid] = {
            "id": rid,
            "name": full,
            "description": body.get("description", ""),
            "level": "project",
            "duration": body.get("duration", -1),
            "editable": True,
            "disable": bool(body.get("disable", False)),
            "expires_at": -1,
            "permissions": perms,
            "creation_time": _now(),
            "update_time": _now(),
        }
        self.robot_secrets[rid] = secret
        return Reply(
            201,
            {"id": rid, "name": full, "secret": secret, "creation_time": _now(), "expires_at": -1},
            {"Location": f"/api/v2.0/robots/{rid}"},
        )

    def GetRobotByID(self, req: Req) -> Reply:  # noqa: N802
        return Reply(200, self._robot(req))

    def RefreshSec(self, req: Req) -> Reply:  # noqa: N802
        robot = self._robot(req)
        secret = (req.body or {}).get("secret") or secrets.token_urlsafe(24) + "Aa1"
        self.robot_secrets[robot["id"]] = secret
        robot["update_time"] = _now()
        return Reply(200, {"secret": secret})

    def DeleteRobot(self, req: Req) -> Reply:  # noqa: N802
        robot = self._robot(req)
        del self.robots[robot["id"]]
        self.robot_secrets.pop(robot["id"], None)
        return Reply(200)

    # --------------------------------------------------------------------- tests

    def robot_named(self, full: str) -> dict | None:
        return next((r for r in self.robots.values() if r["name"] == full), None)


def _robot_project(robot: dict) -> str:
    perms = robot.get("permissions") or [{}]
    return perms[0].get("namespace", "")
