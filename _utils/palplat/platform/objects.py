"""What the platform stage creates beside the Helm releases, and in which order.

Three groups of manifests, each applied by server-side apply with its own owner label
(``palplat_kube`` machinery, :func:`palplat.kube.converge`):

- ``secrets`` (owner ``palplat-platform-secrets``): for every release with ``secrets``
  or ``generated``, its namespace and those Secrets (values from the GPG pillar, or made
  by palplat once and kept: :mod:`.generated`; masked in every diff), for charts that
  read an ``existingSecret``. Applied before any release; pruned (Secrets only): an entry
  removed from the pillar removes its Secret.
- ``databases`` (owner ``palplat-platform-databases``): for every release with
  ``database``, its namespace and CloudNativePG Cluster ``<key>-db`` (with ``backup``:
  barman to ``s3://<bucket>/platform/<key>`` of ``services:defaults:object_store``, its
  keys' Secret and a ScheduledBackup). Pruned for those two kinds only: a backup
  removed from the pillar removes its ScheduledBackup; the Cluster stays. Applied after the
  releases that do not need a database (CloudNativePG among them: it serves the Cluster
  kind) and before the releases that do (their pods read ``<key>-db-app``). Removing
  ``database`` from a release leaves the Cluster and its data (delete it by hand).
- ``dora`` (owner ``palplat-platform-dora``): with ``palplat:dora:enabled``, in the
  namespace of the kube-prometheus-stack release, the PrometheusRule ``palplat-dora``
  (recording rules and alerts over palplat's DORA metrics) and the Grafana dashboard
  ConfigMap ``palplat-dora-dashboard`` (:mod:`palplat.dora.rules`). Applied after every
  release; pruned.
- ``access`` (owner ``palplat-platform-access``): for every release with ``expose``, a
  Tailscale Ingress ``palplat-<key>`` in its namespace and (``probe``) a blackbox Probe
  ``palplat-<key>`` in the blackbox exporter's namespace. Applied after every release;
  pruned: an ``expose`` removed from the pillar removes its Ingress and Probe.

Every object but the namespaces carries ``palplat.io/release: <key>``, the release key it
belongs to. Pruning touches only objects of keys still in ``palplat:platform:releases``
(enabled, or ``enabled: false``, which removes them): an object whose key left the pillar
(a renamed key, a typo) is reported as orphaned and left alone, like a service that left
the pillar, so the running chart keeps its ``existingSecret`` and a database keeps its
backups until the key says ``enabled: false``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from palplat.dora import rules as dora_rules
from palplat.model import PalplatPillar, Release
from palplat.platform import generated
from palplat.platform.access import MON_API, blackbox_probe, tailscale_ingress
from palplat.platform.database import backup_objects, cnpg_cluster

RELEASE_LABEL = "palplat.io/release"
SECRETS = "secrets"
DATABASES = "databases"
ACCESS = "access"
DORA = "dora"
OWNERS = {
    SECRETS: "palplat-platform-secrets",
    DATABASES: "palplat-platform-databases",
    ACCESS: "palplat-platform-access",
    DORA: "palplat-platform-dora",
}
MONITORING_CHART = "kube-prometheus-stack"
BLACKBOX_CHART = "prometheus-blackbox-exporter"
BLACKBOX_PORT = 9115
# The kinds of the access group, pruned even when none is left in the manifests
ACCESS_KINDS = (("networking.k8s.io/v1", "Ingress"), (MON_API, "Probe"))
SECRET_KINDS = (("v1", "Secret"),)
BACKUP_KINDS = (("postgresql.cnpg.io/v1", "ScheduledBackup"), ("v1", "Secret"))


@dataclass
class Group:
    """Manifests applied together under one owner."""

    name: str
    owner: str
    manifests: list[dict[str, Any]] = field(default_factory=list)
    prune: bool = False
    prune_kinds: tuple[tuple[str, str], ...] = ()
    # the release keys in the pillar: only their objects are pruned, others are orphans
    # (None: the group's objects belong to no release key, all are prunable)
    known: frozenset[str] | None = None


def chart_name(rel: Release) -> str:
    """The chart's name: ``chart.name``, else the last segment of ``oci``/``path``."""
    c = rel.chart
    if c.name:
        return c.name
    ref = (c.oci or c.path or "").rstrip("/")
    base = ref.rsplit("/", 1)[-1]
    return base[: -len(".tgz")] if base.endswith(".tgz") else base


def fullname(key: str, rel: Release) -> str:
    """The ``<chart>.fullname`` most charts give their objects (helm create's helper):
    ``fullnameOverride``, else the release name when it contains the chart name, else
    ``<release>-<chart>``; at most 63 characters."""
    override = rel.values.get("fullnameOverride")
    if isinstance(override, str) and override:
        return override[:63].rstrip("-")
    name = rel.release_name or key
    chart = rel.values.get("nameOverride") or chart_name(rel)
    out = name if chart in name else f"{name}-{chart}"
    return out[:63].rstrip("-")


def blackbox(releases: Mapping[str, Release]) -> tuple[str, Release] | None:
    """The blackbox exporter's release (the first, by key, of chart
    prometheus-blackbox-exporter), or None."""
    for key in sorted(releases):
        rel = releases[key]
        if rel.enabled and chart_name(rel) == BLACKBOX_CHART:
            return key, rel
    return None


def prober(releases: Mapping[str, Release]) -> tuple[str, str] | None:
    """``(namespace, host:port)`` of the blackbox exporter's Service, or None."""
    found = blackbox(releases)
    if found is None:
        return None
    key, rel = found
    return rel.namespace, f"{fullname(key, rel)}.{rel.namespace}.svc:{BLACKBOX_PORT}"


def layout(releases: Mapping[str, Release]) -> tuple[list[str], list[str]]:
    """``(first, second)``: the releases converged before the databases, and those after
    (every release with ``database`` and every release that needs one of them)."""
    second = {k for k, r in releases.items() if r.database is not None and r.enabled}
    grew = True
    while grew:
        grew = False
        for k, r in releases.items():
            if k not in second and any(n in second for n in r.needs):
                second.add(k)
                grew = True
    return [k for k in releases if k not in second], [k for k in releases if k in second]


def _of(key: str, manifest: dict[str, Any]) -> dict[str, Any]:
    """``manifest`` labelled with the release key it belongs to."""
    meta = dict(manifest.get("metadata") or {})
    meta["labels"] = {**(meta.get("labels") or {}), RELEASE_LABEL: key}
    return {**manifest, "metadata": meta}


def release_of(obj: Mapping[str, Any]) -> str | None:
    return ((obj.get("metadata") or {}).get("labels") or {}).get(RELEASE_LABEL)


def _namespaces(names: list[str]) -> list[dict[str, Any]]:
    return [{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": n}} for n in names]


def secrets_group(
    releases: Mapping[str, Release], live: Mapping[tuple[str, str], dict] | None = None
) -> Group:
    """The Secrets of every enabled release's ``secrets`` and ``generated`` (values kept
    from ``live``, the generated Secrets in the cluster) and their namespaces."""
    group = Group(
        SECRETS, OWNERS[SECRETS], prune=True, prune_kinds=SECRET_KINDS, known=frozenset(releases)
    )
    namespaces: list[str] = []
    made = generated.manifests(releases, live or {})
    key_of = {
        (rel.namespace, name): key
        for key, rel in releases.items()
        if rel.enabled
        for name in (rel.generated or {})
    }
    for i, m in enumerate(made):
        if m["kind"] == "Namespace":
            namespaces.append(m["metadata"]["name"])
        else:  # the release key it belongs to: a renamed key keeps its generated values
            where = (m["metadata"].get("namespace", ""), m["metadata"]["name"])
            made[i] = _of(key_of[where], m) if where in key_of else m
    for key in sorted(releases):
        rel = releases[key]
        if not rel.enabled or not rel.secrets:
            continue
        if rel.namespace not in namespaces:
            namespaces.append(rel.namespace)
        for name, data in sorted(rel.secrets.items()):
            group.manifests.append(
                _of(
                    key,
                    {
                        "apiVersion": "v1",
                        "kind": "Secret",
                        "metadata": {"name": name, "namespace": rel.namespace},
                        "type": "Opaque",
                        "stringData": dict(data),
                    },
                )
            )
    group.manifests.extend(m for m in made if m["kind"] != "Namespace")
    group.manifests[:0] = _namespaces(namespaces)
    return group


def groups(
    cfg: PalplatPillar,
    releases: Mapping[str, Release],
    live: Mapping[tuple[str, str], dict] | None = None,
) -> dict[str, Group]:
    """The ``secrets``, ``databases`` and ``access`` groups of the enabled ``releases``
    (in the order they are first applied). A namespace belongs to one group: the first
    that needs it."""
    secrets = secrets_group(releases, live)
    # pruned: a backup removed from the pillar takes its ScheduledBackup and keys along
    # (never the Cluster or its namespace: those hold data)
    known = frozenset(releases)
    dbs = Group(DATABASES, OWNERS[DATABASES], prune=True, prune_kinds=BACKUP_KINDS, known=known)
    access = Group(ACCESS, OWNERS[ACCESS], prune=True, prune_kinds=ACCESS_KINDS, known=known)
    probe_at = prober(releases)
    made = {m["metadata"]["name"] for m in secrets.manifests if m["kind"] == "Namespace"}
    namespaces: list[str] = []
    seen: set[tuple[str, str, str]] = set()
    for key in sorted(releases):
        rel = releases[key]
        if not rel.enabled:
            continue
        if rel.database is not None:
            if rel.namespace not in namespaces and rel.namespace not in made:
                namespaces.append(rel.namespace)
            cluster = cnpg_cluster(key, rel.namespace, rel.database).manifest
            dbs.manifests.append(_of(key, cluster))
            store = cfg.services.defaults.object_store
            if rel.database.backup is not None and store is not None:
                ns = rel.namespace
                for m in backup_objects(
                    cluster, f"platform/{key}", rel.database, store,
                    lambda n, ns=ns: {"name": n, "namespace": ns},
                ):  # fmt: skip
                    # one keys' Secret per namespace, however many of its databases back up
                    if (m["kind"], m["metadata"]["name"], ns) not in seen:
                        seen.add((m["kind"], m["metadata"]["name"], ns))
                        dbs.manifests.append(_of(key, m))
        ex = rel.expose
        if ex is None:
            continue
        access.manifests.append(
            _of(
                key,
                tailscale_ingress(
                    f"palplat-{key}", rel.namespace, ex.service, ex.port, ex.url, funnel=ex.funnel
                ),
            )
        )
        if ex.probe and probe_at is not None:
            ns, url = probe_at
            access.manifests.append(
                _of(key, blackbox_probe(f"palplat-{key}", ns, ex.url, url, job=key))
            )
    dbs.manifests[:0] = _namespaces(namespaces)
    return {SECRETS: secrets, DATABASES: dbs, ACCESS: access, DORA: dora_group(cfg, releases)}


def dora_group(cfg: PalplatPillar, releases: Mapping[str, Release]) -> Group:
    """The DORA recording rules, alerts and dashboard, beside the first enabled
    kube-prometheus-stack release (none without one, or with ``dora:enabled: false``)."""
    group = Group(DORA, OWNERS[DORA], prune=True, prune_kinds=dora_rules.DORA_KINDS)
    if not cfg.dora.enabled:
        return group
    for key in sorted(releases):
        rel = releases[key]
        if rel.enabled and chart_name(rel) == MONITORING_CHART:
            d = cfg.dora
            group.manifests = [
                dora_rules.prometheus_rule(rel.namespace, d.window_days, d.year),
                dora_rules.dashboard_configmap(rel.namespace, d.window_days),
            ]
            break
    return group
