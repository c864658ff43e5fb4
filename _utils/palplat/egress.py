"""Where a pull request's plan may send a credential: only where the applied pillar sends
it today (docs/security.md).

A plan runs the states in test mode, which read Harbor, Woodpecker, OCI registries and
the k3s join server. With a pull request's pillar, each of those contacts would go where
the pull request says, with the credential the minion holds. :class:`Guard` compares
each endpoint and credential with the applied pillar's (``Env.applied``): when both are
the same, the plan may use them; otherwise the plan says what it would contact and does
not contact it. Outside a pull request's plan (``applied`` None) everything is allowed.

Also decided here, for Helm: a release whose chart source (repository, name, OCI
reference, path, version, or the mirror it is fetched from) differs from the applied
pillar's is untrusted: rendered with placeholders instead of its secret values (a hostile
chart could print them transformed, where no mask catches them).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from palplat.model import Chart, PalplatPillar

NOT_CONTACTED = "not contacted in this plan"


def _same_secret(a: Any, b: Any) -> bool:
    if a is None or b is None:
        return a is None and b is None
    if getattr(a, "sealed", False) or getattr(b, "sealed", False):
        return False
    return a == b


def _diff(new: Any, old: Any, fields: tuple[str, ...], secret: str) -> list[str]:
    if old is None:
        return ["it is new"]
    out = [f for f in fields if getattr(new, f) != getattr(old, f)]
    if not _same_secret(getattr(new, secret), getattr(old, secret)):
        out.append(secret)
    return out


@dataclass
class Guard:
    """``planning``: a pull request's plan (else everything is allowed); ``applied``: the
    pillar the minion applies today (None when it does not validate: then nothing with a
    credential is contacted)."""

    planning: bool = False
    applied: PalplatPillar | None = None

    @property
    def active(self) -> bool:
        return self.planning

    def _why(self, what: str, where: str, changed: list[str]) -> str | None:
        if not self.active:
            return None
        if self.applied is None:
            return (
                f"{what} {NOT_CONTACTED}: the applied pillar does not validate, so no "
                "endpoint is known to be the applied one"
            )
        if not changed:
            return None
        return (
            f"{what} {NOT_CONTACTED}: the pull request changes {where} "
            f"({', '.join(changed)}); the applied pillar's credential goes only to the "
            "applied pillar's endpoint"
        )

    def harbor(self, planned: Any) -> str | None:
        """Why Harbor (``services:defaults:harbor``) may not be contacted (None: it may)."""
        if not self.active or planned is None:
            return None
        old = self.applied.services.defaults.harbor if self.applied else None
        fields = ("url", "username", "verify_tls", "allow_http")
        return self._why(
            f"Harbor at {planned.url}",
            "palplat:services:defaults:harbor",
            _diff(planned, old, fields, "password"),
        )

    def woodpecker(self, planned: Any) -> str | None:
        if not self.active or planned is None:
            return None
        old = self.applied.services.defaults.woodpecker if self.applied else None
        return self._why(
            f"Woodpecker at {planned.url}",
            "palplat:services:defaults:woodpecker",
            _diff(planned, old, ("url", "verify_tls", "allow_http"), "token"),
        )

    def registry_login(self, host: str, auth: Any) -> str | None:
        """Why ``helm registry login`` to ``host`` may not happen in this plan."""
        if not self.active:
            return None
        regs = self.applied.k3s.registries if self.applied else None
        old = (regs.configs.get(host) if regs else None) or None
        old_auth = getattr(old, "auth", None)
        changed = _diff(auth, old_auth, ("username",), "password")
        return self._why(
            f"the registry {host}", f"palplat:k3s:registries:configs:{host}:auth", changed
        )

    def join_server(self, url: str | None, token: Any) -> str | None:
        """Why the k3s join server may not be asked to check the token in this plan."""
        if not self.active:
            return None
        old = self.applied.k3s if self.applied else None
        changed = []
        if old is not None and url != old.server_url:
            changed.append("server_url")
        if old is not None and not _same_secret(token, old.token):
            changed.append("token")
        return self._why(f"the k3s server {url}", "palplat:k3s", changed)

    def untrusted_charts(self, planned: PalplatPillar) -> set[str]:
        """Release keys whose chart, as fetched (mirrors applied), is not the applied
        pillar's for the same key (a new release included)."""
        if not self.active:
            return set()
        from palplat import config

        if self.applied is None:
            return set(config.releases(planned))
        from palplat.helm.mirror import mirrored

        new, old = config.releases(planned), config.releases(self.applied)
        out = set()
        for key, rel in new.items():
            src = _source(mirrored(rel.chart, planned.platform.mirrors))
            before = old.get(key)
            if before is None or src != _source(
                mirrored(before.chart, self.applied.platform.mirrors)
            ):
                out.add(key)
        return out


def _source(chart: Chart | None) -> tuple | None:
    if chart is None:
        return None
    return (chart.repo, chart.name, chart.oci, chart.path, chart.version)
