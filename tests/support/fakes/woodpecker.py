"""A contract fake of Woodpecker CI: the forge's repositories, activation, repository
secrets, and the pipelines of a repository (DORA reads them).

Behaves as Woodpecker does where palplat depends on it: a bearer token (401 otherwise),
``/user/repos?all=true`` lists the forge's repositories with inactive ones (id 0), a
repository is activated by its ``forge_remote_id`` (a second activation is refused with
409), ``DELETE /repos/{id}`` deactivates, secret listings never carry the value.
"""

from __future__ import annotations

import itertools

from tests.support.fakes import contract
from tests.support.fakes.server import ApiError, FakeApi, Reply, Req


class WoodpeckerFake(FakeApi):
    name = "Woodpecker"
    STATE = ("forge_repos", "repos", "secrets", "pipelines")

    def __init__(self, token: str = "woodpecker-token", forge: str = "https://forge.test"):
        super().__init__(contract.Contract(contract.WOODPECKER_DOC))
        self.token = token
        self.forge = forge.rstrip("/")
        self.forge_repos: dict[str, dict] = {}  # forge_remote_id -> repo at the forge
        self.repos: dict[int, dict] = {}  # activated (store)
        self.secrets: dict[int, dict[str, dict]] = {}
        self.pipelines: dict[int, list[dict]] = {}  # repo id -> pipelines, oldest first
        self._ids = itertools.count(1)
        self._remote = itertools.count(1000)

    def restored(self) -> None:
        ids = list(self.repos) + [s["id"] for d in self.secrets.values() for s in d.values()]
        self._ids = itertools.count(max(ids, default=0) + 1)
        remote = [int(r) for r in self.forge_repos if str(r).isdigit()]
        self._remote = itertools.count(max(remote, default=999) + 1)
        # forge_remote_id keys are strings in the API
        self.forge_repos = {str(k): v for k, v in self.forge_repos.items()}
        self.pipelines = {int(k): v for k, v in (self.pipelines or {}).items()}

    def add_forge_repo(self, full_name: str) -> str:
        """A repository that exists at the forge (tests); its forge_remote_id."""
        owner, name = full_name.split("/", 1)
        rid = str(next(self._remote))
        self.forge_repos[rid] = {
            "forge_remote_id": rid,
            "full_name": full_name,
            "owner": owner,
            "name": name,
            "clone_url": f"{self.forge}/{full_name}.git",
            "forge_url": f"{self.forge}/{full_name}",
            "default_branch": "main",
            "private": True,
        }
        return rid

    def auth(self, req: Req) -> Reply | None:
        got = {k.lower(): v for k, v in req.headers.items()}.get("authorization", "")
        if got != f"Bearer {self.token}":
            return Reply(401, "Unauthorized", content_type="text/plain")
        return None

    def error_reply(self, status: int, message: str) -> Reply:
        return Reply(status, message, content_type="text/plain")

    def _stored(self, req: Req) -> dict:
        rid = int(req.params["repo_id"])
        if rid not in self.repos:
            raise ApiError(404, "Not Found")
        return self.repos[rid]

    def _by_remote(self, remote: str) -> dict | None:
        return next((r for r in self.repos.values() if r["forge_remote_id"] == remote), None)

    # ------------------------------------------------------------------- repos

    def get_user_repos(self, req: Req) -> Reply:
        show_all = req.query.get("all", "false").lower() == "true"
        out = []
        for remote, repo in sorted(self.forge_repos.items()):
            stored = self._by_remote(remote)
            if stored is not None:
                out.append(dict(stored))
            elif show_all:
                out.append({**repo, "id": 0, "active": False})
        return Reply(200, out)

    def post_repos(self, req: Req) -> Reply:
        remote = req.query.get("forge_remote_id", "")
        if remote not in self.forge_repos:
            raise ApiError(404, "Could not fetch repository from forge")
        stored = self._by_remote(remote)
        if stored is not None and stored["active"]:
            raise ApiError(409, "Repository is already active.")
        if stored is None:
            stored = {**self.forge_repos[remote], "id": next(self._ids), "timeout": 60}
            self.repos[stored["id"]] = stored
        stored["active"] = True
        return Reply(200, dict(stored))

    def get_repos_repo_id(self, req: Req) -> Reply:
        return Reply(200, dict(self._stored(req)))

    def delete_repos_repo_id(self, req: Req) -> Reply:
        repo = self._stored(req)
        repo["active"] = False
        return Reply(200, dict(repo))

    # ----------------------------------------------------------------- secrets

    def _shown(self, s: dict) -> dict:
        return {k: v for k, v in s.items() if k != "value"}

    def get_repos_repo_id_secrets(self, req: Req) -> Reply:
        repo = self._stored(req)
        page = int(req.query.get("page", 1))
        size = int(req.query.get("perPage", 50))
        items = sorted(self.secrets.get(repo["id"], {}).values(), key=lambda s: s["id"])
        return Reply(200, [self._shown(s) for s in items[(page - 1) * size : page * size]])

    def post_repos_repo_id_secrets(self, req: Req) -> Reply:
        repo = self._stored(req)
        body = req.body or {}
        name = body.get("name", "")
        if not name or not body.get("value"):
            raise ApiError(400, "name and value are required")
        store = self.secrets.setdefault(repo["id"], {})
        if name in store:
            raise ApiError(409, "secret exists")
        store[name] = {
            "id": next(self._ids),
            "repo_id": repo["id"],
            "org_id": 0,
            "name": name,
            "value": body["value"],
            "events": body.get("events") or ["push"],
            "images": body.get("images") or [],
        }
        return Reply(200, self._shown(store[name]))

    def patch_repos_repo_id_secrets_secretName(self, req: Req) -> Reply:  # noqa: N802
        repo = self._stored(req)
        store = self.secrets.get(repo["id"], {})
        name = req.params["secretName"]
        if name not in store:
            raise ApiError(404, "Not Found")
        for key in ("value", "events", "images"):
            if (req.body or {}).get(key) is not None:
                store[name][key] = req.body[key]
        return Reply(200, self._shown(store[name]))

    def delete_repos_repo_id_secrets_secretName(self, req: Req) -> Reply:  # noqa: N802
        repo = self._stored(req)
        store = self.secrets.get(repo["id"], {})
        if store.pop(req.params["secretName"], None) is None:
            raise ApiError(404, "Not Found")
        return Reply(204, None, content_type="text/plain")

    # --------------------------------------------------------------- pipelines

    def get_repos_repo_id_pipelines(self, req: Req) -> Reply:
        """Newest first, ``page``/``perPage`` as Woodpecker pages them."""
        repo = self._stored(req)
        page = int(req.query.get("page", 1))
        size = int(req.query.get("perPage", 50))
        items = sorted(self.pipelines.get(repo["id"], []), key=lambda p: -p["number"])
        return Reply(200, items[(page - 1) * size : page * size])

    # ------------------------------------------------------------------- tests

    def add_pipeline(self, full_name: str, pipeline: dict) -> None:
        """A pipeline of an activated repository (its id and repo id filled in)."""
        repo = self.repo_named(full_name)
        assert repo is not None, f"{full_name} is not activated"
        self.pipelines.setdefault(repo["id"], []).append({**pipeline, "id": next(self._ids)})

    def repo_named(self, full_name: str) -> dict | None:
        return next((r for r in self.repos.values() if r["full_name"] == full_name), None)
