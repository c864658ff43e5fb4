"""The NetworkPolicies of a service namespace: default deny, then only what it needs.

- ``palplat-default-deny``: no traffic in or out of any pod of the namespace;
- ``palplat-allow-dns``: egress to the cluster DNS (kube-system, k8s-app=kube-dns, 53);
- ``palplat-allow-monitoring``: ingress from the monitoring namespace (Prometheus,
  the blackbox exporter);
- ``palplat-allow-tailscale`` (funnel): ingress from the Tailscale operator's proxies to
  the service port;
- ``palplat-allow-database`` and ``palplat-database`` (database): the workload reaches
  its own database on 5432; the database pods talk to each other, to the CloudNativePG
  operator, to the API server and to the backup object store;
- ``palplat-extra-ingress`` / ``palplat-extra-egress``: the entry's ``network`` peers.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from palplat.services.pillar import Peer
from palplat.services.resolve import Plan, Spec

API = "networking.k8s.io/v1"
NS_LABEL = "kubernetes.io/metadata.name"
POSTGRES_PORT = 5432
CNPG_STATUS_PORT = 8000
API_SERVER_PORTS = (443, 6443)


def _policy(spec: Spec, name: str, body: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": API,
        "kind": "NetworkPolicy",
        "metadata": {"name": name, "namespace": spec.namespace},
        "spec": body,
    }


def _ns(name: str, pods: dict[str, str] | None = None) -> dict[str, Any]:
    peer: dict[str, Any] = {"namespaceSelector": {"matchLabels": {NS_LABEL: name}}}
    if pods:
        peer["podSelector"] = {"matchLabels": dict(pods)}
    return peer


def _ports(ports, protocol: str = "TCP") -> list[dict[str, Any]]:
    return [{"protocol": protocol, "port": p} for p in ports]


def _rule(direction: str, peers: list[dict], ports: list[dict] | None = None) -> dict:
    rule: dict[str, Any] = {direction: peers}
    if ports:
        rule["ports"] = ports
    return rule


def _peer(p: Peer) -> dict[str, Any]:
    if p.cidr:
        return {"ipBlock": {"cidr": p.cidr}}
    if p.namespace:
        return _ns(p.namespace, p.pods)
    return {"podSelector": {"matchLabels": dict(p.pods)}}


def _store_port(url: str) -> int:
    parts = urlsplit(url)
    return parts.port or (443 if parts.scheme == "https" else 80)


def policies(plan: Plan, spec: Spec) -> list[dict[str, Any]]:
    """Every NetworkPolicy of ``spec``'s namespace."""
    svc = spec.entry
    db = {"matchLabels": {"cnpg.io/cluster": spec.db_cluster}}
    out = [
        _policy(
            spec,
            "palplat-default-deny",
            {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]},
        ),
        _policy(
            spec,
            "palplat-allow-dns",
            {
                "podSelector": {},
                "policyTypes": ["Egress"],
                "egress": [
                    _rule(
                        "to",
                        [_ns("kube-system", {"k8s-app": "kube-dns"})],
                        _ports([53], "UDP") + _ports([53]),
                    )
                ],
            },
        ),
        _policy(
            spec,
            "palplat-allow-monitoring",
            {
                "podSelector": {},
                "policyTypes": ["Ingress"],
                "ingress": [_rule("from", [_ns(spec.ns["monitoring"])])],
            },
        ),
    ]
    if svc.funnel:
        out.append(
            _policy(
                spec,
                "palplat-allow-tailscale",
                {
                    "podSelector": {},
                    "policyTypes": ["Ingress"],
                    "ingress": [_rule("from", [_ns(spec.ns["tailscale"])], _ports([svc.port]))],
                },
            )
        )
    if svc.database is not None:
        out.append(
            _policy(
                spec,
                "palplat-allow-database",
                {
                    "podSelector": {},
                    "policyTypes": ["Egress"],
                    "egress": [_rule("to", [{"podSelector": db}], _ports([POSTGRES_PORT]))],
                },
            )
        )
        out.append(_policy(spec, "palplat-database", _database(plan, spec, db)))
    for way, direction in (("ingress", "from"), ("egress", "to")):
        peers = getattr(svc.network, way)
        if not peers:
            continue
        rules = [
            _rule(direction, [_peer(p)], _ports(p.ports, p.protocol) if p.ports else None)
            for p in peers
        ]
        out.append(
            _policy(
                spec,
                f"palplat-extra-{way}",
                {"podSelector": {}, "policyTypes": [way.capitalize()], way: rules},
            )
        )
    return out


def _database(plan: Plan, spec: Spec, db: dict[str, Any]) -> dict[str, Any]:
    """The database pods: replication among themselves, the operator, the API server and
    (with backups) the object store."""
    egress = [
        _rule("to", [{"podSelector": db}], _ports([POSTGRES_PORT])),
        _rule("to", [{"ipBlock": {"cidr": "0.0.0.0/0"}}], _ports(API_SERVER_PORTS)),
    ]
    store = plan.defaults.object_store
    backup = spec.entry.database is not None and spec.entry.database.backup is not None
    if backup and store is not None:
        port = _ports([_store_port(store.endpoint)])
        where = spec.ns.get("object_store")
        egress.append(
            _rule("to", [_ns(where)] if where else [{"ipBlock": {"cidr": "0.0.0.0/0"}}], port)
        )
    return {
        "podSelector": db,
        "policyTypes": ["Ingress", "Egress"],
        "ingress": [
            _rule("from", [{"podSelector": {}}], _ports([POSTGRES_PORT])),
            _rule("from", [_ns(spec.ns["cnpg"])], _ports([CNPG_STATUS_PORT, POSTGRES_PORT])),
        ],
        "egress": egress,
    }
