"""Harbor's REST API (v2.0), what onboarding needs of it: projects, their repositories,
and project robot accounts.

Listings are paged at Harbor's maximum (100 a page), so that a run costs a constant number
of requests per listing, not one per service. A robot's secret is only ever returned by
:meth:`Harbor.create_robot` and :meth:`Harbor.refresh_robot`: it comes back as a
:class:`palplat.secret.Secret` (registered for masking before anyone can print it).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from palplat.secret import Secret
from palplat.services.http import Api, ApiError
from palplat.services.pillar import HarborApi

PAGE = 100
WHERE = "palplat:services:defaults:harbor (url, username, password)"


class Harbor:
    """Harbor v2.0 at ``api.base`` (``<url>/api/v2.0``)."""

    def __init__(self, api: Api, robot_prefix: str = "robot$"):
        self.api = api
        self.robot_prefix = robot_prefix

    @classmethod
    def from_settings(cls, s: HarborApi, timeout: float = 20, password=None) -> Harbor:
        """``password``: the admin's, when not in the pillar (services.credentials)."""
        secret = s.password if s.password is not None else password
        password = secret.reveal() if secret is not None else ""
        api = Api(
            "Harbor",
            f"{s.url}/api/v2.0",
            auth=(s.username, str(password)),
            verify=s.verify_tls,
            timeout=timeout,
            where=WHERE,
        )
        return cls(api, s.robot_prefix)

    def close(self) -> None:
        self.api.close()

    # ----------------------------------------------------------------------- listing

    def _paged(self, path: str, params: dict[str, Any] | None = None) -> list[dict]:
        return self.api.paged(path, "page_size", PAGE, params)

    def projects(self) -> dict[str, dict]:
        """Every project the account sees, by name."""
        return {p["name"]: p for p in self._paged("/projects")}

    def robots(self) -> list[dict]:
        """Every robot account (system and project level)."""
        return self._paged("/robots")

    def robot_name(self, project: str, short: str) -> str:
        """The full name Harbor gives a project robot (``robot$<project>+<short>``)."""
        return f"{self.robot_prefix}{project}+{short}"

    # ---------------------------------------------------------------------- projects

    def project(self, name: str) -> dict | None:
        return self.api.json(
            "GET",
            f"/projects/{quote(name, safe='')}",
            headers={"X-Is-Resource-Name": "true"},
            missing_ok=True,
        )

    def create_project(self, name: str) -> None:
        """Create a private project; an existing one (409) is fine."""
        try:
            self.api.request(
                "POST",
                "/projects",
                body={"project_name": name, "metadata": {"public": "false"}},
                headers={"X-Resource-Name-In-Location": "true"},
            )
        except ApiError as exc:
            if exc.status != 409:
                raise

    def repositories(self, project: str) -> list[dict]:
        return self._paged(f"/projects/{quote(project, safe='')}/repositories")

    def delete_repository(self, project: str, repository: str) -> None:
        """Delete a repository (``repository`` without the project prefix) and its images."""
        # Harbor wants '/' inside a repository name encoded twice
        enc = quote(quote(repository, safe=""), safe="")
        self.api.request(
            "DELETE", f"/projects/{quote(project, safe='')}/repositories/{enc}", missing_ok=True
        )

    def delete_project(self, name: str) -> None:
        self.api.request(
            "DELETE",
            f"/projects/{quote(name, safe='')}",
            headers={"X-Is-Resource-Name": "true"},
            missing_ok=True,
        )

    # ------------------------------------------------------------------------ robots

    def create_robot(
        self, project: str, short: str, actions: list[str], description: str
    ) -> tuple[int, str, Secret]:
        """Create a project robot that may do ``actions`` on the project's repositories;
        ``(id, full name, secret)``."""
        body = {
            "name": short,
            "description": description,
            "level": "project",
            "duration": -1,
            "disable": False,
            "permissions": [
                {
                    "kind": "project",
                    "namespace": project,
                    "access": [{"resource": "repository", "action": a} for a in actions],
                }
            ],
        }
        doc = self.api.json("POST", "/robots", body=body) or {}
        secret = Secret(doc.get("secret") or "")  # registered for masking at once
        if not doc.get("id") or not secret.reveal():
            raise ApiError(f"Harbor: POST /robots: no id or secret in the answer for {short}")
        return int(doc["id"]), str(doc.get("name") or self.robot_name(project, short)), secret

    def robot(self, robot_id: int) -> dict | None:
        return self.api.json("GET", f"/robots/{int(robot_id)}", missing_ok=True)

    def refresh_robot(self, robot_id: int) -> Secret:
        """A new secret for an existing robot (Harbor generates it)."""
        doc = self.api.json("PATCH", f"/robots/{int(robot_id)}", body={}) or {}
        secret = Secret(doc.get("secret") or "")
        if not secret.reveal():
            raise ApiError(f"Harbor: PATCH /robots/{robot_id}: no secret in the answer")
        return secret

    def delete_robot(self, robot_id: int) -> None:
        self.api.request("DELETE", f"/robots/{int(robot_id)}", missing_ok=True)
