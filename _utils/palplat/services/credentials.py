"""The credentials the services stage signs in with, wherever they come from: the GPG
pillar when the operator set them, else what the platform stage made and keeps in the
cluster (a first run needs none of them in the pillar):

- Harbor's admin password: ``services:defaults:harbor:password``, else the Harbor
  release's ``secret_values.harborAdminPassword``, else the Secret its values name
  (``existingSecretAdminPassword``, key ``existingSecretAdminPasswordKey``): the one
  palplat generated (``generated``);
- Argo CD's credential for ``deployments_repo``: ``deployments_credentials``, else the
  read-only token palplat made in Forgejo (:mod:`palplat.platform.forge`);
- Woodpecker's token: only the pillar (it needs a browser login); without it the CI
  part waits for the operator, with the exact next step (:func:`woodpecker_waiting`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from palplat import kube as k8s
from palplat.model import PalplatPillar
from palplat.platform import forge
from palplat.platform.generated import value
from palplat.secret import Secret

HARBOR_KEY = "HARBOR_ADMIN_PASSWORD"  # the Harbor chart's default existingSecretAdminPasswordKey


def _get(tree: Any, key: str) -> Any:
    return tree.get(key) if isinstance(tree, Mapping) else None


def harbor_password(cfg: PalplatPillar, kube: k8s.Kube) -> Secret | None:
    d = cfg.services.defaults
    if d.harbor is None:
        return None
    if d.harbor.password is not None:
        return d.harbor.password
    rel = cfg.platform.releases.get(d.releases.harbor)
    if rel is None or not rel.enabled:
        return None
    pw = _get(rel.secret_values, "harborAdminPassword")
    if pw is not None:
        return pw if isinstance(pw, Secret) else Secret(pw)
    name = _get(rel.values, "existingSecretAdminPassword")
    if not name:
        return None
    key = _get(rel.values, "existingSecretAdminPasswordKey") or HARBOR_KEY
    return value(kube, rel.namespace, str(name), str(key))


def harbor_where(cfg: PalplatPillar) -> str:
    """Where Harbor's admin password should come from, for messages."""
    d = cfg.services.defaults
    return (
        "palplat:services:defaults:harbor:password, or the Harbor release "
        f"(palplat:platform:releases:{d.releases.harbor}) generating it "
        "(generated + values existingSecretAdminPassword)"
    )


def repo_credentials(cfg: PalplatPillar, kube: k8s.Kube) -> tuple[str, Secret] | None:
    """``(username, password)`` Argo CD reads deployments_repo with; None: not (yet)."""
    creds = cfg.services.defaults.deployments_credentials
    if creds is not None and creds.password is not None:
        return creds.username, creds.password
    made = forge.argocd_credentials(cfg, kube)
    if made is None:
        return None
    user, token = made
    return (creds.username if creds is not None else user) or user, token


def repo_waiting(cfg: PalplatPillar) -> str | None:
    """Why there is no credential for deployments_repo yet (None: none is wanted)."""
    d = cfg.services.defaults
    if not d.deployments_repo:
        return None
    if forge.wants_token(cfg):
        return (
            "Argo CD's token for deployments_repo is made by the platform stage in Forgejo "
            "(services:defaults:forge) and is not there yet: run palplat.full (the "
            "platform stage first), or set deployments_credentials:password"
        )
    if d.deployments_credentials is None:
        return None  # a public repository: no credential
    return "palplat:services:defaults:deployments_credentials:password is not set"


def woodpecker_waiting(cfg: PalplatPillar) -> str | None:
    """The operator's next step when Woodpecker's token is missing (None: it is there)."""
    d = cfg.services.defaults
    wp = d.woodpecker
    if wp is None or wp.token is not None:
        return None
    url = wp.url
    how = ""
    f = d.forge
    rel = cfg.platform.releases.get(d.releases.forge)
    if f is not None and rel is not None:
        secret = f.admin_secret or (
            ((rel.values.get("gitea") or {}).get("admin") or {}).get("existingSecret")
            if isinstance(rel.values.get("gitea"), Mapping)
            else None
        )
        if secret:
            how = (
                f" (Forgejo's admin: kubectl -n {rel.namespace} get secret {secret} -o "
                "jsonpath='{.data.password}' | base64 -d)"
            )
    return (
        f"waiting for the operator: sign in to Woodpecker at {url} with Forgejo{how}, make a "
        f"personal access token at {url}/user/cli-and-api, put it in "
        "palplat:services:defaults:woodpecker:token (GPG-encrypted: make encrypt) and "
        "re-run; every other part is converged meanwhile"
    )
