"""A contract fake of Forgejo: what palplat makes in it (OAuth2 applications, access
tokens), validated both ways against Forgejo's own document
(../shared/reference/apis/forgejo-v1-swagger.json).

Behaves as Forgejo does where palplat depends on it: HTTP basic authentication as a user
(401 otherwise), a client secret and a token's value shown once (when made; an update of
an application makes a new secret), listings never carry them, a token name taken twice
is refused (400, as Forgejo answers "access token name has been used already").

The admin's password may come from a callable (``password=lambda: ...``): the sandbox's
fake reads it from the Secret the chart would read (``gitea.admin.existingSecret``), the
one palplat generated, so the fake knows what the real Forgejo would.
"""

from __future__ import annotations

import base64
import itertools
import secrets
from collections.abc import Callable
from datetime import datetime, timezone

from tests.support.fakes import contract
from tests.support.fakes.server import ApiError, FakeApi, Reply, Req

FORGEJO_DOC = contract.APIS / "forgejo-v1-swagger.json"


class ForgejoFake(FakeApi):
    name = "Forgejo"
    STATE = ("apps", "tokens")

    def __init__(
        self,
        username: str | Callable[[], str] = "forgejo-admin",
        password: str | Callable[[], str] = "",
    ):
        super().__init__(contract.Contract(FORGEJO_DOC))
        self._username = username
        self._password = password
        self.apps: dict[int, dict] = {}  # id -> application (client_secret kept for tests)
        self.tokens: dict[str, dict] = {}  # name -> token (sha1 kept for tests)
        self._ids = itertools.count(1)

    def restored(self) -> None:
        ids = list(self.apps) + [t["id"] for t in self.tokens.values()]
        self._ids = itertools.count(max(ids, default=0) + 1)

    @property
    def username(self) -> str:
        return self._username() if callable(self._username) else self._username

    @property
    def password(self) -> str:
        return self._password() if callable(self._password) else self._password

    def auth(self, req: Req) -> Reply | None:
        got = {k.lower(): v for k, v in req.headers.items()}.get("authorization", "")
        want = self.password
        if want and got.startswith("Basic "):
            try:
                user, _, pw = base64.b64decode(got[6:]).decode().partition(":")
            except ValueError:
                user = pw = ""
            if user == self.username and pw == want:
                return None
        if req.path.endswith("/version"):
            return None  # public
        return Reply(401, {"message": "user does not exist [uid: 0, name: ]", "url": ""})

    def error_reply(self, status: int, message: str) -> Reply:
        return Reply(status, {"message": message, "url": "https://forgejo.test/api/swagger"})

    @staticmethod
    def _now() -> str:
        return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")

    # --------------------------------------------------------------------- misc

    def getVersion(self, req: Req) -> Reply:  # noqa: N802 - Forgejo's operationId
        return Reply(200, {"version": "11.0.0+gitea-1.22.0"})

    # --------------------------------------------------------------- OAuth2 apps

    def _shown(self, app: dict) -> dict:
        return {k: v for k, v in app.items() if k != "client_secret"} | {"client_secret": ""}

    def userGetOAuth2Applications(self, req: Req) -> Reply:  # noqa: N802
        page = int(req.query.get("page", 1))
        limit = int(req.query.get("limit", 50))
        items = [self._shown(a) for _, a in sorted(self.apps.items())]
        return Reply(200, items[(page - 1) * limit : page * limit])

    def userCreateOAuth2Application(self, req: Req) -> Reply:  # noqa: N802
        body = req.body or {}
        if not body.get("name"):
            raise ApiError(400, "name is required")
        app = {
            "id": next(self._ids),
            "name": body["name"],
            "redirect_uris": list(body.get("redirect_uris") or []),
            "confidential_client": bool(body.get("confidential_client", True)),
            "client_id": secrets.token_hex(18),
            "client_secret": "gto_" + secrets.token_urlsafe(32),
            "created": self._now(),
        }
        self.apps[app["id"]] = app
        return Reply(201, dict(app))

    def _app(self, req: Req) -> dict:
        app = self.apps.get(int(req.params["id"]))
        if app is None:
            raise ApiError(404, "OAuth2 application not found")
        return app

    def userGetOAuth2Application(self, req: Req) -> Reply:  # noqa: N802
        return Reply(200, self._shown(self._app(req)))

    def userUpdateOAuth2Application(self, req: Req) -> Reply:  # noqa: N802
        app = self._app(req)
        body = req.body or {}
        app.update(
            name=body.get("name") or app["name"],
            redirect_uris=list(body.get("redirect_uris") or []),
            confidential_client=bool(body.get("confidential_client", True)),
            client_secret="gto_" + secrets.token_urlsafe(32),  # a new one, shown once
        )
        return Reply(200, dict(app))

    def userDeleteOAuth2Application(self, req: Req) -> Reply:  # noqa: N802
        self._app(req)
        del self.apps[int(req.params["id"])]
        return Reply(204, None)

    # -------------------------------------------------------------- access tokens

    def _user(self, req: Req) -> None:
        if req.params.get("username") != self.username:
            raise ApiError(403, "you can only manage your own tokens")

    def userGetTokens(self, req: Req) -> Reply:  # noqa: N802
        self._user(req)
        page = int(req.query.get("page", 1))
        limit = int(req.query.get("limit", 50))
        items = [
            {k: v for k, v in t.items() if k != "sha1"} | {"sha1": ""}
            for _, t in sorted(self.tokens.items())
        ]
        return Reply(200, items[(page - 1) * limit : page * limit])

    def userCreateToken(self, req: Req) -> Reply:  # noqa: N802
        self._user(req)
        body = req.body or {}
        name = body.get("name", "")
        if name in self.tokens:
            raise ApiError(400, "access token name has been used already")
        value = secrets.token_hex(20)
        tok = {
            "id": next(self._ids),
            "name": name,
            "scopes": list(body.get("scopes") or []),
            "sha1": value,
            "token_last_eight": value[-8:],
        }
        self.tokens[name] = tok
        return Reply(201, dict(tok))

    def userDeleteAccessToken(self, req: Req) -> Reply:  # noqa: N802
        self._user(req)
        key = req.params["token"]
        found = self.tokens.pop(key, None)
        if found is None:
            by_id = next((n for n, t in self.tokens.items() if str(t["id"]) == key), None)
            if by_id is None:
                raise ApiError(404, "access token not found")
            del self.tokens[by_id]
        return Reply(204, None)

    # ------------------------------------------------------------------- tests

    def app_named(self, name: str) -> dict | None:
        return next((a for a in self.apps.values() if a["name"] == name), None)
