"""The table palplat wants on this node: built from ``palplat:firewall`` plus the node's
k3s port profile. Every rule carries its name in its comment; addresses go into named
interval sets."""

from __future__ import annotations

import ipaddress
import urllib.parse
from collections.abc import Iterable
from typing import Any

from palplat.nft.intervals import Intervals, port_intervals, split_cidrs
from palplat.nft.ruleset import NftSet, Rule, Table


def _set_name(name: str, ver: int) -> str:
    return f"s_{name}_v{ver}"


# The Tailscale address ranges (CGNAT IPv4, Tailscale's ULA IPv6): the cluster's nodes when
# the pillar does not list them (nodes that talk over the tailnet).
TAILSCALE_RANGES = ("100.64.0.0/10", "fd7a:115c:a1e0::/48")
CLUSTER_SET = "cluster"  # the cluster's nodes (firewall:cluster_nodes, k3s:server_url)
PODS_SET = "pods"  # k3s's cluster-cidr (pods on this node reach it over cni0)
BUILTIN_SETS = (CLUSTER_SET, PODS_SET)
DEFAULT_CLUSTER_CIDR = "10.42.0.0/16"


def cluster_sources(cfg) -> list[str]:
    """The set @cluster: ``firewall:cluster_nodes`` plus the host of ``k3s:server_url`` when
    it is an address; without any, the Tailscale ranges."""
    fw, k3s = cfg.firewall, cfg.k3s
    out = list(fw.cluster_nodes)
    host = urllib.parse.urlsplit(k3s.server_url or "").hostname
    if host:
        try:
            ip = ipaddress.ip_address(host)
            out.append(f"{ip}/{ip.max_prefixlen}")
        except ValueError:
            pass  # a name: list the server's address in cluster_nodes
    return out or list(TAILSCALE_RANGES)


def pod_sources(cfg) -> list[str]:
    """The set @pods: k3s's ``cluster-cidr`` (comma-separated when dual-stack)."""
    raw = (cfg.k3s.config or {}).get("cluster-cidr") or DEFAULT_CLUSTER_CIDR
    parts = raw if isinstance(raw, list) else str(raw).split(",")
    out = []
    for part in parts:
        try:
            out.append(str(ipaddress.ip_network(str(part).strip(), strict=False)))
        except ValueError:
            continue  # k3s refuses it; the k3s stage reports it
    return out


def profile_rules(cfg) -> list[dict[str, Any]]:
    """Ports the node's k3s role needs (as allow-rule dicts), from the cluster only.

    Servers: API 6443, embedded etcd 2379-2380 (cluster_init or joining server, no
    external datastore). Every node: kubelet 10250 and the flannel backend's port (vxlan
    udp 8472, wireguard-native udp 51820/51821). Sources: the set @cluster (the cluster's
    nodes) for every port, plus @pods (this node's pods: the API through the kubernetes
    Service, metrics-server to the kubelet) for the API and the kubelet. Nothing is open
    to the world: etcd and VXLAN are unauthenticated or node-to-node only, and a trusted
    interface (tailscale0) reaches everything anyway. ``k3s.mode: external``: none.
    """
    k3s = cfg.k3s
    if k3s.mode != "install":
        return []
    conf = k3s.config or {}
    nodes, pods = [f"@{CLUSTER_SET}"], [f"@{CLUSTER_SET}", f"@{PODS_SET}"]
    rules: list[dict[str, Any]] = []
    if k3s.role == "server":
        rules.append({"name": "k3s-api", "proto": "tcp", "ports": [6443], "from": pods})
        if "datastore-endpoint" not in conf and (k3s.cluster_init or k3s.server_url):
            rules.append({"name": "etcd", "proto": "tcp", "ports": ["2379-2380"], "from": nodes})
    rules.append({"name": "kubelet", "proto": "tcp", "ports": [10250], "from": pods})
    backend = str(conf.get("flannel-backend", "vxlan"))
    if backend == "vxlan":
        rules.append({"name": "flannel-vxlan", "proto": "udp", "ports": [8472], "from": nodes})
    elif backend == "wireguard-native":
        rules.append(
            {"name": "flannel-wireguard", "proto": "udp", "ports": [51820, 51821], "from": nodes}
        )
    return rules


def builtin_sets(cfg) -> dict[str, list[str]]:
    """The sets palplat fills itself while the k3s profile is on (rules may name them;
    a table holds those some rule uses)."""
    if not cfg.firewall.profile:
        return {}
    return {CLUSTER_SET: cluster_sources(cfg), PODS_SET: pod_sources(cfg)}


def desired(cfg) -> Table:
    """palplat's table for this node, from the validated pillar model."""
    fw = cfg.firewall
    t = Table(name=fw.table, policy=fw.default_policy)
    sets_by_name: dict[str, dict[int, Intervals]] = {}

    def add_set(name: str, cidrs: Iterable[str]) -> dict[int, Intervals]:
        parts = split_cidrs(cidrs)
        for ver, ivs in parts.items():
            if ivs:
                t.sets[_set_name(name, ver)] = NftSet(_set_name(name, ver), ver, ivs)
        sets_by_name[name] = parts
        return parts

    used = {
        src[1:]
        for rule in [*profile_rules(cfg), *({"from": r.from_} for r in fw.allow)]
        for src in rule.get("from") or ()
        if src.startswith("@")
    }
    builtin = {n: c for n, c in builtin_sets(cfg).items() if n in used}
    for name, cidrs in sorted({**builtin, **fw.sets}.items()):
        add_set(name, cidrs)

    R = t.rules.append  # noqa: N806
    R(Rule("builtin:established", ct=("established", "related")))
    R(Rule("builtin:invalid", verdict="drop", ct=("invalid",)))
    R(Rule("builtin:loopback", iif="lo"))
    R(Rule("builtin:icmp", l4proto="icmp"))
    R(Rule("builtin:icmpv6", l4proto="ipv6-icmp"))
    trusted = list(fw.trusted_interfaces)
    if fw.profile and cfg.k3s.mode == "install" and "tailscale0" not in trusted:
        trusted.insert(0, "tailscale0")
    for iface in trusted:
        R(Rule(f"trusted:{iface}", iif=iface))

    def add(name, proto, ports, sources, iif=None):
        pivs = port_intervals(ports)
        if not sources:
            R(Rule(name, iif=iif, proto=proto, ports=pivs))
            return
        inline = split_cidrs(s for s in sources if not s.startswith("@"))
        for ver in (4, 6):
            if inline[ver]:
                R(Rule(name, iif=iif, proto=proto, ports=pivs, family=ver, saddr=inline[ver]))
            for s in sources:
                if s.startswith("@") and sets_by_name.get(s[1:], {}).get(ver):
                    R(
                        Rule(
                            name,
                            iif=iif,
                            proto=proto,
                            ports=pivs,
                            family=ver,
                            saddr_set=_set_name(s[1:], ver),
                        )
                    )

    mgmt = fw.management
    if mgmt.allow_from:
        add_set("mgmt", mgmt.allow_from)
        add("mgmt:ssh", "tcp", [mgmt.ssh_port], ["@mgmt"])
        if mgmt.salt_ports:
            add("mgmt:salt", "tcp", sorted(set(mgmt.salt_ports)), ["@mgmt"])
    user = {r.name for r in fw.allow}
    if fw.profile:
        for pr in profile_rules(cfg):
            if pr["name"] not in user:
                add(pr["name"], pr["proto"], pr["ports"], pr["from"])
    for r in fw.allow:
        add(r.name, r.proto, r.ports, r.from_, r.iif)
    return t
