"""What palplat makes in Forgejo for the apps around it, in the platform stage right after
the forge release is up and before the releases that read it (``services:defaults:forge``):

- the OAuth2 application Woodpecker logs in with (redirect ``<woodpecker url>/authorize``),
  its client id and secret kept in the Secret ``palplat-forgejo-oauth`` of Woodpecker's
  namespace under the names Woodpecker reads (``WOODPECKER_FORGEJO_CLIENT``,
  ``WOODPECKER_FORGEJO_SECRET``; the chart's ``server.extraSecretNamesForEnvFrom``);
- the read-only access token Argo CD reads ``deployments_repo`` with, kept in the Secret
  ``palplat-forgejo-argocd`` of the forge's namespace (``username``, ``token``); the
  services stage puts it in Argo CD's repository Secret.

So a first run needs none of these in the pillar. Forgejo shows a client secret or a
token only when it makes one: when palplat's Secret is gone it makes a new one (and
removes the old application or token of the same name). A converged platform costs two
GETs here and no request to Forgejo; a plan (test mode) never calls Forgejo either: it
says what the run would make from the Secrets that are missing.
"""

from __future__ import annotations

import base64
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from palplat import kube as k8s
from palplat import redact
from palplat.errors import PalplatError
from palplat.model import PalplatPillar, Release
from palplat.platform.generated import value
from palplat.secret import Secret
from palplat.services.forgejo import Forgejo
from palplat.services.http import ApiError

FORGE = "forge"  # key of this step in the platform stage's changes and errors
OWNER = "palplat-platform-forge"
OAUTH_SECRET = "palplat-forgejo-oauth"
TOKEN_SECRET = "palplat-forgejo-argocd"
APP_NAME = "woodpecker"
TOKEN_NAME = "palplat-argocd"
TOKEN_SCOPES = ["read:repository"]
CLIENT_KEY, SECRET_KEY = "WOODPECKER_FORGEJO_CLIENT", "WOODPECKER_FORGEJO_SECRET"
REDIRECT_ANNOTATION = "palplat.io/forgejo-redirect"
CHART_ADMIN_USER = "gitea_admin"  # the Forgejo chart's default admin name


@dataclass
class Step:
    """What this platform wants made in Forgejo (None from :func:`step`: nothing)."""

    forge_key: str
    forge: Release
    woodpecker_key: str | None  # the release that reads the OAuth client
    woodpecker_ns: str | None
    redirect: str | None
    token: bool

    @property
    def consumers(self) -> list[str]:
        return [self.woodpecker_key] if self.woodpecker_key else []


def _enabled(cfg: PalplatPillar, key: str) -> Release | None:
    rel = cfg.platform.releases.get(key)
    return rel if rel is not None and rel.enabled else None


def wants_token(cfg: PalplatPillar) -> bool:
    """Whether Argo CD's repository credential is the token palplat makes in Forgejo."""
    d = cfg.services.defaults
    f = d.forge
    if f is None or not f.argocd_token or not d.deployments_repo:
        return False
    on_forge = d.deployments_repo.startswith(f.url.rstrip("/") + "/")
    creds = d.deployments_credentials
    return on_forge and (creds is None or creds.password is None)


def step(cfg: PalplatPillar) -> Step | None:
    d = cfg.services.defaults
    f = d.forge
    forge = _enabled(cfg, d.releases.forge) if f is not None else None
    if f is None or forge is None:
        return None
    wp = _enabled(cfg, d.releases.woodpecker)
    oauth = f.woodpecker_oauth and d.woodpecker is not None and wp is not None
    token = wants_token(cfg)
    if not (oauth or token):
        return None
    return Step(
        forge_key=d.releases.forge,
        forge=forge,
        woodpecker_key=d.releases.woodpecker if oauth else None,
        woodpecker_ns=wp.namespace if oauth and wp is not None else None,
        redirect=f"{d.woodpecker.url}/authorize" if oauth and d.woodpecker else None,
        token=token,
    )


def after(releases: Mapping[str, Release], st: Step | None) -> set[str]:
    """The releases that go after this step: its consumers and what needs them."""
    if st is None:
        return set()
    out = {k for k in st.consumers if k in releases}
    grew = True
    while grew:
        grew = False
        for k, r in releases.items():
            if k not in out and any(n in out for n in r.needs):
                out.add(k)
                grew = True
    return out


# ------------------------------------------------------------------- credentials


def _tree(tree: Any, *path: str) -> Any:
    for p in path:
        tree = tree.get(p) if isinstance(tree, Mapping) else None
    return tree


def admin(cfg: PalplatPillar, kube: k8s.Kube, st: Step) -> tuple[str, Secret]:
    """Forgejo's admin: the Secret ``forge:admin_secret`` (default: the chart's
    ``gitea.admin.existingSecret``), else the release's values and secret_values."""
    f = cfg.services.defaults.forge
    rel, ns = st.forge, st.forge.namespace
    name = (f.admin_secret if f else None) or _tree(rel.values, "gitea", "admin", "existingSecret")
    where = f"palplat:platform:releases:{st.forge_key}"
    if name:
        user = value(kube, ns, name, "username")
        pw = value(kube, ns, name, "password")
        if user is None or pw is None:
            raise PalplatError(
                f"Forgejo's admin Secret {ns}/{name} is missing or has no username/password: "
                f"let palplat make it ({where}:generated) or create it, then re-run"
            )
        return str(user.reveal()), pw
    user = _tree(rel.values, "gitea", "admin", "username") or CHART_ADMIN_USER
    pw = _tree(rel.secret_values, "gitea", "admin", "password")
    if pw is None:
        raise PalplatError(
            f"palplat cannot sign in to Forgejo: give its admin a Secret ({where}:generated "
            "and values gitea.admin.existingSecret) or set secret_values gitea.admin.password"
        )
    return str(user), pw if isinstance(pw, Secret) else Secret(pw)


def api_base(cfg: PalplatPillar, kube: k8s.Kube, st: Step) -> str:
    """``forge:api_url``, else the ClusterIP of the release's ``expose`` Service (a k3s
    node reaches ClusterIPs; the tailnet ingress comes only after every release)."""
    f = cfg.services.defaults.forge
    if f is not None and f.api_url:
        return f.api_url
    ex = st.forge.expose
    if ex is None:
        raise PalplatError(
            "palplat:services:defaults:forge:api_url: is needed (the forge release "
            f"{st.forge_key} has no expose naming its HTTP Service): set Forgejo's API address"
        )
    svc = kube.get("v1", "Service", ex.service, st.forge.namespace)
    ip = ((svc or {}).get("spec") or {}).get("clusterIP")
    if not ip or ip == "None":
        raise PalplatError(
            f"Forgejo's Service {st.forge.namespace}/{ex.service} has no ClusterIP (is the "
            f"release {st.forge_key} installed?); or set palplat:services:defaults:forge:api_url"
        )
    host = f"[{ip}]" if ":" in ip else ip
    return f"http://{host}:{ex.port}"


# --------------------------------------------------------------------- converge


def _data(live: Mapping[str, Any] | None) -> dict[str, str]:
    out = {}
    for k, v in ((live or {}).get("data") or {}).items():
        try:
            out[k] = base64.b64decode(v).decode()
        except (ValueError, UnicodeDecodeError):
            continue
    return out


def _secret(name: str, ns: str, data: dict[str, Any], ann: dict[str, str]) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": name, "namespace": ns, "annotations": ann},
        "type": "Opaque",
        "stringData": data,
    }


def _todo(kube: k8s.Kube, st: Step) -> tuple[dict | None, dict | None, dict[str, Any]]:
    """The live Secrets and what is missing in them, as changes (no Forgejo call)."""
    changes: dict[str, Any] = {}
    oauth_live = token_live = None
    if st.woodpecker_key:
        oauth_live = kube.get("v1", "Secret", OAUTH_SECRET, st.woodpecker_ns)
        have = _data(oauth_live)
        ann = ((oauth_live or {}).get("metadata") or {}).get("annotations") or {}
        if not (have.get(CLIENT_KEY) and have.get(SECRET_KEY)):
            changes[f"Forgejo OAuth2 application {APP_NAME}"] = {
                "old": None,
                "new": f"redirect {st.redirect}",
            }
            changes[k8s.key_of("Secret", OAUTH_SECRET, st.woodpecker_ns)] = {
                "old": None if oauth_live is None else "<hidden>",
                "new": "<hidden>",
            }
        elif ann.get(REDIRECT_ANNOTATION) != st.redirect:
            changes[f"Forgejo OAuth2 application {APP_NAME}"] = {
                "old": f"redirect {ann.get(REDIRECT_ANNOTATION)}",
                "new": f"redirect {st.redirect}",
            }
    if st.token:
        token_live = kube.get("v1", "Secret", TOKEN_SECRET, st.forge.namespace)
        if not _data(token_live).get("token"):
            changes[f"Forgejo access token {TOKEN_NAME}"] = {"old": None, "new": "read:repository"}
            changes[k8s.key_of("Secret", TOKEN_SECRET, st.forge.namespace)] = {
                "old": None if token_live is None else "<hidden>",
                "new": "<hidden>",
            }
    return oauth_live, token_live, changes


def plan(cfg: PalplatPillar, kube: k8s.Kube) -> dict[str, Any]:
    """What the real run would make (changes; empty: nothing), without calling Forgejo."""
    st = step(cfg)
    if st is None:
        return {}
    return _todo(kube, st)[2]


def converge(
    cfg: PalplatPillar,
    kube: k8s.Kube,
    *,
    connect: Callable[..., Forgejo] = Forgejo.connect,
    progress: Callable[..., Any] | None = None,
) -> dict[str, Any]:
    """Make what is missing (a real run); the changes. Raises :class:`PalplatError` with
    what to do when Forgejo cannot be reached or refuses."""
    st = step(cfg)
    if st is None:
        return {}
    oauth_live, token_live, changes = _todo(kube, st)
    if not changes:
        return {}
    f = cfg.services.defaults.forge
    user, password = admin(cfg, kube, st)
    base = api_base(cfg, kube, st)
    if progress:
        progress("apply", f"Forgejo at {base}: making what Woodpecker and Argo CD need")
    forge = connect(base, user, password, verify=f.verify_tls if f else True)
    manifests = []
    try:
        if st.woodpecker_key and any(k.startswith("Forgejo OAuth2") for k in changes):
            manifests.append(_oauth(forge, st, oauth_live))
        if st.token and any(k.startswith("Forgejo access token") for k in changes):
            manifests.append(_token(forge, st, user))
    except ApiError as exc:
        raise PalplatError(
            f"Forgejo ({base}) refused or could not be reached: {exc}; check that the "
            f"release {st.forge_key} runs and its admin can sign in, then re-run"
        ) from None
    finally:
        forge.close()
    # Woodpecker's namespace may not be there yet (helm makes it with the release, after
    # this step): made here only then, so that no other group's namespace changes hands
    for ns in sorted({m["metadata"]["namespace"] for m in manifests}):
        if kube.get("v1", "Namespace", ns) is None:
            manifests.insert(0, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}})
    out = k8s.converge(kube, manifests, owner=OWNER, dry_run=False, progress=progress)
    _, _, left = _todo(kube, st)
    if left:
        raise PalplatError(f"verify: still missing after making them: {', '.join(left)}")
    for key in list(changes):
        if key.startswith("Secret/"):
            changes[key] = out["changes"].get(key) or changes[key]
    return redact.mask(changes)


def _oauth(forge: Forgejo, st: Step, live: dict | None) -> dict[str, Any]:
    have = _data(live)
    apps = forge.oauth_apps()
    app = apps.get(APP_NAME)
    secret = None
    if app is not None and have.get(CLIENT_KEY) == app.get("client_id") and have.get(SECRET_KEY):
        # only the redirect changed: Forgejo answers the update with a new client secret
        app, secret = forge.update_oauth_app(int(app["id"]), APP_NAME, [st.redirect])
        secret = secret or Secret(have[SECRET_KEY])
    else:
        if app is not None:  # its secret is lost: replace it
            forge.delete_oauth_app(int(app["id"]))
        app, secret = forge.create_oauth_app(APP_NAME, [st.redirect])
    if not app.get("client_id") or secret is None:
        raise ApiError("Forgejo: the OAuth2 application came back without its client id/secret")
    return _secret(
        OAUTH_SECRET,
        st.woodpecker_ns or "",
        {CLIENT_KEY: str(app["client_id"]), SECRET_KEY: secret},
        {REDIRECT_ANNOTATION: st.redirect or "", "palplat.io/forgejo-app-id": str(app.get("id"))},
    )


def _token(forge: Forgejo, st: Step, user: str) -> dict[str, Any]:
    if TOKEN_NAME in forge.tokens():  # its value is lost: replace it
        forge.delete_token(TOKEN_NAME)
    _, token = forge.create_token(TOKEN_NAME, TOKEN_SCOPES)
    return _secret(
        TOKEN_SECRET,
        st.forge.namespace,
        {"username": user, "token": token},
        {"palplat.io/forgejo-token": TOKEN_NAME},
    )


def argocd_credentials(cfg: PalplatPillar, kube: k8s.Kube) -> tuple[str, Secret] | None:
    """The token palplat made for Argo CD (``(username, token)``), None when it is not
    made yet (the platform stage makes it) or not wanted."""
    if not wants_token(cfg):
        return None
    rel = _enabled(cfg, cfg.services.defaults.releases.forge)
    if rel is None:
        return None
    live = _data(kube.get("v1", "Secret", TOKEN_SECRET, rel.namespace))
    if not live.get("token"):
        return None
    return live.get("username", ""), Secret(live["token"])
