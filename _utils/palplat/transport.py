"""Where credentials and downloads travel: the pillar checks that keep them safe on the way.

- A URL that receives a credential (Harbor's admin password, Woodpecker's token, the
  deployments repository's credential Argo CD uses, the Tailscale auth key sent to a
  ``login_server``) must be ``https``. ``allow_http: true`` on Harbor and Woodpecker is the
  documented opt-out for a server on loopback or a network you trust (tests, the sandbox).
- A download over plain ``http`` (helm, tailscale, k3s) needs a pinned ``sha256``: a
  checksum file fetched over the same unauthenticated channel proves nothing. A loopback
  address (a local mirror on the host itself) is no network to intercept on.
- Chart repository URLs never carry credentials (the model refuses them: they would reach
  helm's argv, the logs and the fingerprint store).

Run by :func:`palplat.config.cross_check`, so each is reported with every other problem.
"""

from __future__ import annotations

import ipaddress
import json
import urllib.parse

from palplat.errors import PillarProblem
from palplat.model import PalplatPillar

ROOT = "palplat"


def _scheme(url: str | None) -> str:
    return urllib.parse.urlsplit(url or "").scheme.lower()


def _loopback(url: str) -> bool:
    host = (urllib.parse.urlsplit(url).hostname or "").lower()
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check(cfg: PalplatPillar) -> list[PillarProblem]:
    out: list[PillarProblem] = []
    d = cfg.services.defaults
    for name, api, what in (
        ("harbor", d.harbor, "Harbor's admin password"),
        ("woodpecker", d.woodpecker, "Woodpecker's admin token"),
    ):
        if api is not None and _scheme(api.url) == "http" and not api.allow_http:
            out.append(
                PillarProblem(
                    f"{ROOT}:services:defaults:{name}:url",
                    f"must be an https URL: {what} is sent to it. Use https (a Tailscale "
                    "ingress gives one); allow_http: true only for a server on loopback or "
                    "a network you trust",
                    json.dumps(api.url),
                )
            )
    forge = d.forge
    if forge is not None and _scheme(forge.api_url) == "http" and not forge.allow_http:
        out.append(
            PillarProblem(
                f"{ROOT}:services:defaults:forge:api_url",
                "must be an https URL: Forgejo's admin password is sent to it. Use https, or "
                "leave it unset (the Service's ClusterIP, inside the node); allow_http: true "
                "only for a Forgejo on loopback or a network you trust",
                json.dumps(forge.api_url),
            )
        )
    # Argo CD's credential: the pillar's, or the token palplat makes in Forgejo
    forge_token = forge is not None and forge.argocd_token
    if (
        (d.deployments_credentials is not None or forge_token)
        and d.deployments_repo
        and _scheme(d.deployments_repo) == "http"
    ):
        out.append(
            PillarProblem(
                f"{ROOT}:services:defaults:deployments_repo",
                "must be an https (or ssh) URL: Argo CD sends deployments_credentials to it",
                json.dumps(d.deployments_repo),
            )
        )
    ts = cfg.host.tailscale
    if ts.login_server and ts.auth_key is not None and _scheme(ts.login_server) != "https":
        out.append(
            PillarProblem(
                f"{ROOT}:host:tailscale:login_server",
                "must be an https URL: the node's auth key is sent to it",
                json.dumps(ts.login_server),
            )
        )
    downloads = [
        (
            "platform:helm",
            cfg.platform.helm.url,
            cfg.platform.helm.sha256,
            cfg.platform.helm.version is not None,
        ),
        ("k3s:source", cfg.k3s.source.url, cfg.k3s.source.sha256, cfg.k3s.mode == "install"),
        ("host:tailscale", ts.url, ts.sha256, ts.enabled),
    ]
    for where, url, sha, used in downloads:
        if used and _scheme(url) == "http" and not sha and not _loopback(url):
            out.append(
                PillarProblem(
                    f"{ROOT}:{where}:url",
                    f"is plain http without a pinned checksum: set {ROOT}:{where}:sha256 (a "
                    "checksum file fetched over the same unauthenticated channel proves "
                    "nothing), or use https",
                    json.dumps(url),
                )
            )
    return out
