"""The Kubernetes objects of a service, by part (pure: no request is made here).

``bundle(plan, spec, robots)`` returns ``{part: [manifest, ...]}``:

- namespace: Namespace, ResourceQuota ``palplat-quota``, LimitRange ``palplat-limits`` and
  the NetworkPolicies of :mod:`.network`;
- registry: ``palplat-registry-pull`` (``kubernetes.io/dockerconfigjson``, the
  imagePullSecret) and ``palplat-registry-push`` (the CI robot, kept so that a lost
  Woodpecker secret can be set again), when their robot secrets are known;
- secrets: ``<name>-secrets`` with the entry's ``secrets`` (Opaque);
- database: CloudNativePG Cluster ``<name>-db`` (CNPG then makes ``<name>-db-app``, the
  application credentials), with ``backup`` the ScheduledBackup and the object store
  credentials ``palplat-backup-store``;
- delivery: the Argo CD Application ``<name>`` (automated sync, image updater annotations);
- ingress (funnel): a Tailscale Ingress ``<name>`` with funnel on;
- monitoring: ServiceMonitor (metrics), PrometheusRule (defaults + ``alerts``), blackbox
  Probe of the public URL (funnel).

Secret values stay :class:`palplat.secret.Secret` (masked wherever shown) until the kube
client sends them.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from typing import Any

from palplat.platform.access import blackbox_probe, tailscale_ingress
from palplat.platform.database import CNPG_API as CNPG_API  # re-exported (inventory)
from palplat.platform.database import backup_objects, cnpg_cluster
from palplat.secret import Secret
from palplat.services import network
from palplat.services.resolve import (
    PULL_ROBOT,
    PULL_SECRET,
    PUSH_ROBOT,
    PUSH_SECRET,
    Plan,
    Spec,
    labelled,
)

ARGO_API = "argoproj.io/v1alpha1"
MON_API = "monitoring.coreos.com/v1"
IMAGE_UPDATER = "argocd-image-updater.argoproj.io"
ROBOT_ID_ANNOTATION = "palplat.io/robot-id"
CI_SYNCED_ANNOTATION = "palplat.io/ci-synced"
IN_CLUSTER = "https://kubernetes.default.svc"


@dataclass(frozen=True)
class Robot:
    """A Harbor robot account palplat knows the secret of."""

    name: str  # full name, e.g. robot$pal-e-docs+palplat-push
    secret: Secret
    id: int | str | None = None  # a str only in a plan: the id Harbor has yet to assign


def _meta(spec: Spec, name: str, namespace: str | None = None, **extra) -> dict[str, Any]:
    return {"name": name, "namespace": namespace or spec.namespace, **extra}


def bundle(
    plan: Plan,
    spec: Spec,
    robots: dict[str, Robot | None] | None = None,
    ci_synced: str | None = None,
) -> dict[str, list[dict[str, Any]]]:
    """Every object of ``spec`` by part (registry objects only for known ``robots``)."""
    svc = spec.entry
    parts: dict[str, list[dict[str, Any]]] = {
        "namespace": _namespace(plan, spec),
        "registry": _registry(plan, spec, robots or {}, ci_synced),
        "secrets": _secrets(spec),
        "database": _database(plan, spec) if svc.database is not None else [],
        "delivery": [_application(plan, spec)],
        "ingress": [_ingress(spec)] if svc.funnel else [],
        "monitoring": _monitoring(plan, spec),
    }
    return {
        part: [labelled(obj, spec, part) for obj in objs] for part, objs in parts.items() if objs
    }


def shared(plan: Plan, creds: tuple[str, Any] | None = None) -> list[dict[str, Any]]:
    """Objects every service shares: Argo CD's repository Secret for deployments_repo.
    ``creds``: ``(username, password)`` (services.credentials), default the pillar's."""
    d = plan.defaults
    if creds is None and d.deployments_credentials is not None:
        if d.deployments_credentials.password is not None:
            creds = (d.deployments_credentials.username, d.deployments_credentials.password)
    if not d.deployments_repo or creds is None:
        return []
    username, password = creds
    obj = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {
            "name": "palplat-deployments-repo",
            "namespace": plan.ns["argocd"],
            "labels": {"argocd.argoproj.io/secret-type": "repository"},
        },
        "type": "Opaque",
        "stringData": {
            "type": "git",
            "url": d.deployments_repo,
            "username": username,
            "password": password,
        },
    }
    return [labelled(obj, None, "delivery")]


# ------------------------------------------------------------------------- parts


def _namespace(plan: Plan, spec: Spec) -> list[dict[str, Any]]:
    limits = spec.limits
    item: dict[str, Any] = {"type": "Container"}
    for key, field in (("default", "default"), ("defaultRequest", "default_request")):
        if getattr(limits, field):
            item[key] = dict(getattr(limits, field))
    if limits.max:
        item["max"] = dict(limits.max)
    return [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": spec.namespace}},
        {
            "apiVersion": "v1",
            "kind": "ResourceQuota",
            "metadata": _meta(spec, "palplat-quota"),
            "spec": {"hard": dict(spec.quota)},
        },
        {
            "apiVersion": "v1",
            "kind": "LimitRange",
            "metadata": _meta(spec, "palplat-limits"),
            "spec": {"limits": [item]},
        },
        *network.policies(plan, spec),
    ]


def dockerconfig(registry: str, robot: Robot) -> Secret:
    """The ``.dockerconfigjson`` of ``robot`` for ``registry`` (a secret as a whole)."""
    password = robot.secret.reveal()
    auth = base64.b64encode(f"{robot.name}:{password}".encode()).decode()
    doc = {"auths": {registry: {"username": robot.name, "password": password, "auth": auth}}}
    return Secret(json.dumps(doc, sort_keys=True))


def _registry(
    plan: Plan, spec: Spec, robots: dict[str, Robot | None], ci_synced: str | None
) -> list[dict[str, Any]]:
    registry = plan.defaults.registry or ""
    out = []
    pull = robots.get(PULL_ROBOT)
    if pull is not None:
        out.append(pull_secret(spec, registry, pull))
    push = robots.get(PUSH_ROBOT)
    if push is not None:
        out.append(push_secret(spec, registry, push, ci_synced))
    return out


def _robot_meta(spec: Spec, name: str, robot: Robot, **annotations) -> dict[str, Any]:
    ann = {ROBOT_ID_ANNOTATION: str(robot.id)} if robot.id is not None else {}
    ann.update({k: v for k, v in annotations.items() if v})
    meta = _meta(spec, name)
    if ann:
        meta["annotations"] = ann
    return meta


def pull_secret(spec: Spec, registry: str, robot: Robot) -> dict[str, Any]:
    """The imagePullSecret of the namespace (the cluster's pull robot)."""
    return labelled(
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": _robot_meta(spec, PULL_SECRET, robot),
            "type": "kubernetes.io/dockerconfigjson",
            "stringData": {".dockerconfigjson": dockerconfig(registry, robot)},
        },
        spec,
        "registry",
    )


def push_secret(
    spec: Spec, registry: str, robot: Robot, ci_synced: str | None = None
) -> dict[str, Any]:
    """The CI push robot's credentials (what Woodpecker's pipeline secrets are set from)."""
    meta = _robot_meta(spec, PUSH_SECRET, robot, **{CI_SYNCED_ANNOTATION: ci_synced})
    return labelled(
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": meta,
            "type": "Opaque",
            "stringData": {"registry": registry, "username": robot.name, "password": robot.secret},
        },
        spec,
        "registry",
    )


def _secrets(spec: Spec) -> list[dict[str, Any]]:
    if not spec.entry.secrets:
        return []
    return [
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": _meta(spec, f"{spec.name}-secrets"),
            "type": "Opaque",
            "stringData": dict(spec.entry.secrets),
        }
    ]


def _database(plan: Plan, spec: Spec) -> list[dict[str, Any]]:
    db = spec.entry.database
    assert db is not None
    cluster = cnpg_cluster(spec.name, spec.namespace, db).manifest
    store = plan.defaults.object_store
    if db.backup is None or store is None:
        return [cluster]
    return [cluster, *backup_objects(cluster, spec.name, db, store, lambda n: _meta(spec, n))]


def _application(plan: Plan, spec: Spec) -> dict[str, Any]:
    d = plan.defaults
    annotations = {
        f"{IMAGE_UPDATER}/image-list": f"app={spec.image}",
        f"{IMAGE_UPDATER}/app.update-strategy": d.image_update_strategy,
        f"{IMAGE_UPDATER}/app.pull-secret": f"pullsecret:{spec.namespace}/{PULL_SECRET}",
        f"{IMAGE_UPDATER}/write-back-method": "argocd",
    }
    return {
        "apiVersion": ARGO_API,
        "kind": "Application",
        "metadata": _meta(spec, spec.name, spec.ns["argocd"], annotations=annotations),
        "spec": {
            "project": d.argocd_project,
            "source": {
                "repoURL": d.deployments_repo or "",
                "targetRevision": d.deployments_revision,
                "path": spec.overlay,
            },
            "destination": {"server": IN_CLUSTER, "namespace": spec.namespace},
            "syncPolicy": {
                "automated": {"prune": True, "selfHeal": True},
                "syncOptions": ["CreateNamespace=false"],
            },
        },
    }


def _ingress(spec: Spec) -> dict[str, Any]:
    url = f"https://{spec.public_host}"
    return tailscale_ingress(
        spec.name, spec.namespace, spec.name, spec.entry.port, url, funnel=True
    )


def _rule(spec: Spec, alert: str, expr: str, for_: str | None, severity: str, summary: str):
    rule: dict[str, Any] = {
        "alert": alert,
        "expr": expr,
        "labels": {"severity": severity, "service": spec.name},
        "annotations": {"summary": summary},
    }
    if for_:
        rule["for"] = for_
    return rule


def _monitoring(plan: Plan, spec: Spec) -> list[dict[str, Any]]:
    svc, mon = spec.entry, plan.defaults.monitoring
    labels = dict(mon.labels)
    ns = spec.namespace
    rules = [
        _rule(
            spec,
            "ServiceTargetDown",
            f'up{{namespace="{ns}"}} == 0',
            "5m",
            "warning",
            f"A scrape target of {spec.name} is down",
        ),
        _rule(
            spec,
            "ServiceRestartLoop",
            f'increase(kube_pod_container_status_restarts_total{{namespace="{ns}"}}[15m]) > 3',
            None,
            "warning",
            f"A container of {spec.name} keeps restarting",
        ),
    ]
    for a in svc.alerts:
        rules.append(_rule(spec, a.name, a.expr, a.for_, a.severity, a.summary or a.name))
    out: list[dict[str, Any]] = [
        {
            "apiVersion": MON_API,
            "kind": "PrometheusRule",
            "metadata": _meta(spec, spec.name, labels=dict(labels)),
            "spec": {"groups": [{"name": spec.name, "rules": rules}]},
        }
    ]
    if svc.metrics is not None:
        m = svc.metrics
        out.append(
            {
                "apiVersion": MON_API,
                "kind": "ServiceMonitor",
                "metadata": _meta(spec, spec.name, labels=dict(labels)),
                "spec": {
                    "selector": {"matchLabels": {"app.kubernetes.io/name": spec.name}},
                    "namespaceSelector": {"matchNames": [ns]},
                    "endpoints": [
                        {"targetPort": m.port or svc.port, "path": m.path, "interval": m.interval}
                    ],
                },
            }
        )
    if spec.public_host and plan.prober:
        probe = blackbox_probe(
            spec.name,
            ns,
            f"https://{spec.public_host}",
            plan.prober,
            job=f"{spec.name}-public",
            module=mon.module,
        )
        probe["metadata"]["labels"] = dict(labels)
        probe["spec"]["targets"]["staticConfig"]["labels"] = {"service": spec.name}
        out.append(probe)
    return out
