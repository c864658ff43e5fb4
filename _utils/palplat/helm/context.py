"""What one run shares: the helm CLI, the kube client, the repository indexes, the chart
mirrors, the repositories added and registries logged in to (once per run), helm's
listing, the server's capabilities and the progress callable."""

from __future__ import annotations

import threading
import urllib.parse
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from palplat import config
from palplat import kube as k8s
from palplat.errors import CommandError
from palplat.helm.chart import RepoIndex, chart_args, merged_values, repo_name
from palplat.helm.cli import Helm, HelmError
from palplat.helm.install import binary
from palplat.helm.mirror import describe, mirrored
from palplat.model import Chart

Progress = Callable[..., Any]
"""``progress(phase, message, force=False, **data)``, e.g. :class:`palplat.loaderkit.Progress`:
phases ``start``, ``waiting`` (repeated while a helm call runs; the callable throttles it
unless ``force``), ``done`` and ``recover``."""


def pillar_path(key: str, *rest: str) -> str:
    """Where a release's settings are in the pillar, for error messages."""
    return ":".join([config.ROOT, "platform", "releases", key, *rest])


@dataclass
class Context:
    helm: Helm
    kube: k8s.Kube
    history_max: int = 5
    parallel: int = 4
    registries: Mapping[str, Any] = field(default_factory=dict)  # host -> RegistryAuth
    progress: Progress | None = None
    mirrors: Mapping[str, str] = field(default_factory=dict)  # source -> mirror URL
    index: RepoIndex = field(default_factory=RepoIndex)
    listed: dict = field(default_factory=dict)  # helm's listing of this run's plan
    stores: dict = field(default_factory=dict)  # (namespace, name) -> fingerprint store
    caps: tuple | None = None  # (server version, API versions), see helm.render
    # a pull request's plan (palplat.egress): render without cluster access, log in only
    # where the applied pillar does, untrusted charts without their secret values
    guard: Any = None
    untrusted: frozenset = frozenset()  # release keys whose chart the pull request changes
    _repos_added: set = field(default_factory=set)
    _logins: set = field(default_factory=set)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def chart(self, chart: Chart) -> Chart:
        """``chart`` as helm fetches it (on its mirror, see :mod:`palplat.helm.mirror`)."""
        return mirrored(chart, self.mirrors)

    @property
    def client_only(self) -> bool:
        """A pull request's plan renders every release client-side: a chart's ``lookup``
        then reads nothing from the cluster (it could copy a Secret into the plan)."""
        return bool(self.guard is not None and self.guard.active)

    def values(self, key: str, rel: Any) -> dict:
        """The values a render of release ``key`` gets: an untrusted chart (changed by a
        pull request) gets a placeholder for each secret value, never the value."""
        return merged_values(rel, placeholders=key in self.untrusted)

    def chart_args(self, chart: Chart) -> list[str]:
        """The CHART argument(s) of a helm call for ``chart`` (mirrors applied)."""
        return chart_args(self.chart(chart))

    def prepare(self, key: str, chart: Chart) -> None:
        """Repository add / registry login for release ``key``'s chart (on its mirror),
        once per run and only for what is needed."""
        c = self.chart(chart)
        with self._lock:
            if c.repo and c.repo not in self._repos_added:
                try:
                    self.helm.repo_add(repo_name(c.repo), c.repo)
                except CommandError as exc:
                    raise HelmError(
                        f"{pillar_path(key, 'chart:repo')}: cannot add helm repository "
                        f"{c.repo}{describe(chart, self.mirrors)}: "
                        f"{exc.stderr.strip() or exc}"
                    ) from None
                self._repos_added.add(c.repo)
            if c.oci:
                host = urllib.parse.urlparse(c.oci).netloc
                auth = getattr(self.registries.get(host), "auth", None)
                if auth is not None and host not in self._logins:
                    why = self.guard.registry_login(host, auth) if self.guard else None
                    if why:
                        raise HelmError(f"{pillar_path(key, 'chart:oci')}: {why}")
                    self.helm.registry_login(host, auth.username, auth.password.reveal())
                    self._logins.add(host)


def context_for(
    cfg,
    *,
    helm_bin: str | None = None,
    kubeconfig: str | None = None,
    helm_env: Mapping[str, str] | None = None,
    progress: Progress | None = None,
    guard: Any = None,
) -> Context:
    """A :class:`Context` for a validated pillar. ``helm_bin`` defaults to the pinned
    install (``palplat:platform:helm``), else ``helm`` on PATH. ``progress`` receives the
    progress of long helm calls (a Salt loader module passes a ``loaderkit.Progress``).
    ``guard``: a pull request's plan (:class:`palplat.egress.Guard`)."""
    helm_bin = helm_bin or binary(cfg)
    kc = kubeconfig or config.kubeconfig_path(cfg)
    regs = {}
    if cfg.k3s.registries:
        regs = dict(cfg.k3s.registries.configs)
    return Context(
        helm=Helm(helm_bin, kc, env=helm_env),
        kube=k8s.Kube(kc),
        history_max=cfg.platform.history_max,
        parallel=cfg.platform.parallel,
        registries=regs,
        progress=progress,
        mirrors=dict(cfg.platform.mirrors),
        guard=guard,
        untrusted=frozenset(guard.untrusted_charts(cfg)) if guard is not None else frozenset(),
    )
