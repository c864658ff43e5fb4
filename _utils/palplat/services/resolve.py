"""A service entry merged with ``services:defaults``: every name and address it needs.

:func:`resolve` turns the validated pillar into :class:`Spec` objects (pure data), so that
the rest of the package never looks at defaults again. The naming conventions live here:

- every Kubernetes object carries ``palplat.io/service=<name>`` and ``palplat.io/part``
  (with palplat's ownership labels, owner ``service.<name>``), so one LIST per kind finds
  the objects of every service, grouped by service and part;
- objects shared by all services (Argo CD's repository Secret) have owner
  ``palplat-services`` and no service label;
- Harbor: project ``<name>``, robots ``palplat-push`` (CI) and ``palplat-pull`` (cluster);
  Woodpecker: the repository ``repo`` and pipeline secrets ``registry``,
  ``registry_username`` and ``registry_password``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from palplat.model import PalplatPillar
from palplat.platform import objects
from palplat.services import checks
from palplat.services.pillar import Limits, Service

SERVICE_LABEL = "palplat.io/service"
PART_LABEL = "palplat.io/part"
SHARED_OWNER = "palplat-services"
# the parts of a service, in the order they converge
PARTS = (
    "namespace",
    "registry",
    "ci",
    "secrets",
    "database",
    "delivery",
    "ingress",
    "monitoring",
)
# what `absent: true` removes; the rest (namespace, database, Harbor project) is data
REMOVED_WHEN_ABSENT = ("registry", "ci", "delivery", "ingress", "monitoring")

PUSH_ROBOT = "palplat-push"
PULL_ROBOT = "palplat-pull"
PULL_SECRET = "palplat-registry-pull"
PUSH_SECRET = "palplat-registry-push"
CI_SECRETS = ("registry", "registry_username", "registry_password")


def owner_of(name: str) -> str:
    return f"service.{name}"


@dataclass(frozen=True)
class Spec:
    """One service, merged with the defaults."""

    name: str
    entry: Service
    namespace: str
    project: str  # Harbor project
    image: str  # <registry>/<project>/<image>
    overlay: str
    public_host: str | None  # <name>.<tailnet_domain> when funnelled
    quota: dict[str, str]
    limits: Limits
    ns: dict[str, str] = field(default_factory=dict)  # platform namespaces by role

    @property
    def owner(self) -> str:
        return owner_of(self.name)

    @property
    def db_cluster(self) -> str:
        return f"{self.name}-db"

    @property
    def labels(self) -> dict[str, str]:
        return {SERVICE_LABEL: self.name}


@dataclass(frozen=True)
class Plan:
    """Every managed service (absent ones included) and the settings they share."""

    cfg: PalplatPillar
    specs: dict[str, Spec]
    disabled: tuple[str, ...]  # entries with enabled: false (left alone, not orphans)
    ns: dict[str, str]  # platform namespaces by role (tailscale, monitoring, cnpg, argocd)
    prober: str | None = None  # host:port of the blackbox exporter
    complete: bool = True  # False when resolved for some services only (no orphan report)

    @property
    def defaults(self):
        return self.cfg.services.defaults


def _platform_namespaces(cfg: PalplatPillar) -> dict[str, str]:
    d = cfg.services.defaults
    store = d.object_store
    return {
        "tailscale": checks.release_namespace(cfg, d.releases.tailscale, "tailscale"),
        "monitoring": checks.release_namespace(cfg, d.releases.monitoring, "monitoring"),
        "cnpg": checks.release_namespace(cfg, d.releases.cnpg, "cnpg-system"),
        "argocd": checks.release_namespace(cfg, d.releases.argocd, "argocd"),
        "object_store": (
            checks.release_namespace(cfg, store.release, "")
            if store is not None and store.release
            else ""
        ),
    }


def resolve(cfg: PalplatPillar, only: list[str] | None = None) -> Plan:
    """The :class:`Plan` of the validated pillar (``only``: these services)."""
    d = cfg.services.defaults
    ns = _platform_namespaces(cfg)
    specs: dict[str, Spec] = {}
    disabled = []
    for name, svc in cfg.services.items():
        if only is not None and name not in only:
            continue
        if not svc.enabled:
            disabled.append(name)
            continue
        image = svc.image or name
        specs[name] = Spec(
            name=name,
            entry=svc,
            namespace=svc.namespace or name,
            project=name,
            image=f"{d.registry or 'registry.invalid'}/{name}/{image}",
            overlay=(svc.overlay or d.overlay).format(service=name),
            public_host=f"{name}.{d.tailnet_domain}" if svc.funnel and d.tailnet_domain else None,
            quota={**d.quota, **svc.quota},
            limits=svc.limits or d.limits,
            ns=ns,
        )
    return Plan(cfg, specs, tuple(disabled), ns, prober(cfg), complete=only is None)


def prober(cfg: PalplatPillar) -> str | None:
    """The blackbox exporter probes go through: the pillar's, else the platform's."""
    found = objects.prober(cfg.platform.releases)
    return cfg.services.defaults.monitoring.prober or (found[1] if found else None)


def labelled(obj: dict[str, Any], spec: Spec | None, part: str) -> dict[str, Any]:
    """``obj`` with the service and part labels (``spec`` None: a shared object)."""
    meta = obj.setdefault("metadata", {})
    labels = meta.setdefault("labels", {})
    if spec is not None:
        labels[SERVICE_LABEL] = spec.name
    labels[PART_LABEL] = part
    return obj
