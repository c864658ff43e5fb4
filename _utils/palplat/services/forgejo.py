"""Forgejo's REST API (``/api/v1``), what palplat makes in it for the apps around it: the
OAuth2 application Woodpecker logs in with, and the access token Argo CD reads the
GitOps repository with. Basic authentication as Forgejo's admin (the only way to make a
first token); every value that comes back secret (client secret, token) is a
:class:`palplat.secret.Secret` at once.

Forgejo shows an OAuth2 client secret and a token's value only when it makes them, so
palplat keeps them in Kubernetes Secrets (:mod:`palplat.platform.forge`) and replaces an
application or token whose value it lost.
"""

from __future__ import annotations

from palplat.secret import Secret
from palplat.services.http import Api

WHERE = "services:defaults:forge (the forge release's admin Secret)"
PAGE = 50


class Forgejo:
    """Forgejo's API at ``<base>/api/v1`` as ``username``."""

    def __init__(self, api: Api, username: str):
        self.api = api
        self.username = username

    @classmethod
    def connect(
        cls, base: str, username: str, password: Secret, *, verify: bool = True, timeout=20
    ) -> Forgejo:
        api = Api(
            "Forgejo",
            f"{base.rstrip('/')}/api/v1",
            auth=(username, str(password.reveal())),
            verify=verify,
            timeout=timeout,
            where=WHERE,
        )
        return cls(api, username)

    def close(self) -> None:
        self.api.close()

    def version(self) -> str:
        return str((self.api.json("GET", "/version") or {}).get("version", ""))

    # ------------------------------------------------------------------ OAuth2 apps

    def oauth_apps(self) -> dict[str, dict]:
        """The user's OAuth2 applications by name (client secrets are never listed)."""
        items = self.api.paged("/user/applications/oauth2", "limit", PAGE)
        return {str(a.get("name")): a for a in items}

    def create_oauth_app(self, name: str, redirect_uris: list[str]) -> tuple[dict, Secret]:
        """A confidential application: ``(app, client secret)``."""
        body = {"name": name, "redirect_uris": list(redirect_uris), "confidential_client": True}
        app = self.api.json("POST", "/user/applications/oauth2", body=body) or {}
        return _split(app)

    def update_oauth_app(
        self, app_id: int, name: str, redirect_uris: list[str]
    ) -> tuple[dict, Secret | None]:
        """New redirect URIs; Forgejo answers with a new client secret (or none)."""
        body = {"name": name, "redirect_uris": list(redirect_uris), "confidential_client": True}
        app = self.api.json("PATCH", f"/user/applications/oauth2/{int(app_id)}", body=body) or {}
        return _split(app)

    def delete_oauth_app(self, app_id: int) -> None:
        self.api.request("DELETE", f"/user/applications/oauth2/{int(app_id)}", missing_ok=True)

    # ------------------------------------------------------------------ access tokens

    def tokens(self) -> dict[str, dict]:
        """The user's access tokens by name (values are never listed)."""
        items = self.api.paged(f"/users/{self.username}/tokens", "limit", PAGE)
        return {str(t.get("name")): t for t in items}

    def create_token(self, name: str, scopes: list[str]) -> tuple[dict, Secret]:
        body = {"name": name, "scopes": list(scopes)}
        tok = self.api.json("POST", f"/users/{self.username}/tokens", body=body) or {}
        value = tok.pop("sha1", None)
        if not value:
            from palplat.services.http import ApiError

            raise ApiError("Forgejo: the new access token came back without its value")
        return tok, Secret(value)

    def delete_token(self, name: str) -> None:
        self.api.request("DELETE", f"/users/{self.username}/tokens/{name}", missing_ok=True)


def _split(app: dict) -> tuple[dict, Secret | None]:
    """An application without its client secret, and the secret (None when absent)."""
    app = dict(app)
    secret = app.pop("client_secret", None)
    return app, (Secret(secret) if secret else None)
