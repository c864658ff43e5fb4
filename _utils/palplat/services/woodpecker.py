"""Woodpecker CI's REST API, what onboarding needs of it: repositories (activate,
deactivate) and repository secrets.

``GET /user/repos?all=true`` lists every repository the token's user can see at the forge,
active or not, in one request; secrets are listed per repository (Woodpecker has no
listing across repositories). Woodpecker never returns a secret's value.
"""

from __future__ import annotations

from palplat.services.http import Api
from palplat.services.pillar import WoodpeckerApi

PAGE = 50
WHERE = "palplat:services:defaults:woodpecker (url, token)"
EVENTS = ["push", "tag", "manual", "deployment"]


class Woodpecker:
    """Woodpecker at ``api.base`` (``<url>/api``)."""

    def __init__(self, api: Api):
        self.api = api

    @classmethod
    def from_settings(cls, s: WoodpeckerApi, timeout: float = 20) -> Woodpecker:
        token = s.token.reveal() if s.token is not None else ""
        api = Api(
            "Woodpecker",
            f"{s.url}/api",
            headers={"Authorization": f"Bearer {token}"},
            verify=s.verify_tls,
            timeout=timeout,
            where=WHERE,
        )
        return cls(api)

    def close(self) -> None:
        self.api.close()

    def repos(self) -> dict[str, dict]:
        """Every repository the user sees (active or not), by lower-cased full name."""
        items = self.api.json("GET", "/user/repos", params={"all": "true"}) or []
        return {str(r.get("full_name", "")).lower(): r for r in items}

    def repo(self, repo_id: int) -> dict | None:
        return self.api.json("GET", f"/repos/{int(repo_id)}", missing_ok=True)

    def activate(self, forge_remote_id: str) -> dict:
        return self.api.json("POST", "/repos", params={"forge_remote_id": forge_remote_id}) or {}

    def deactivate(self, repo_id: int) -> None:
        """Deactivate (Woodpecker keeps the repository's history)."""
        self.api.request("DELETE", f"/repos/{int(repo_id)}", missing_ok=True)

    def secrets(self, repo_id: int) -> dict[str, dict]:
        """The repository's secrets by name (values are never returned)."""
        items = self.api.paged(f"/repos/{int(repo_id)}/secrets", "perPage", PAGE)
        return {s["name"]: s for s in items}

    def set_secret(self, repo_id: int, name: str, value: str, *, exists: bool) -> None:
        """Create or update a repository secret (``value`` goes only into the body)."""
        body = {"name": name, "value": value, "events": list(EVENTS), "images": []}
        if exists:
            self.api.request("PATCH", f"/repos/{int(repo_id)}/secrets/{name}", body=body)
        else:
            self.api.request("POST", f"/repos/{int(repo_id)}/secrets", body=body)

    def delete_secret(self, repo_id: int, name: str) -> None:
        self.api.request("DELETE", f"/repos/{int(repo_id)}/secrets/{name}", missing_ok=True)

    def pipelines(self, repo_id: int, pages: int = 1) -> list[dict]:
        """The repository's pipelines, newest first, up to ``pages`` pages (DORA: commit,
        created, started, finished of each)."""
        out: list[dict] = []
        for page in range(1, pages + 1):
            items = (
                self.api.json(
                    "GET",
                    f"/repos/{int(repo_id)}/pipelines",
                    params={"page": page, "perPage": PAGE},
                )
                or []
            )
            out.extend(items)
            if len(items) < PAGE:
                break
        return out
