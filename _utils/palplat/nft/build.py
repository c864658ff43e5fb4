"""The table palplat wants on this node: built from ``palplat:firewall`` plus the node's
k3s port profile. Every rule carries its name in its comment; addresses go into named
interval sets."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from palplat.nft.intervals import Intervals, port_intervals, split_cidrs
from palplat.nft.ruleset import NftSet, Rule, Table


def _set_name(name: str, ver: int) -> str:
    return f"s_{name}_v{ver}"


def profile_rules(cfg) -> list[dict[str, Any]]:
    """Ports the node's k3s role needs (as allow-rule dicts), from anywhere.

    Servers: API 6443, embedded etcd 2379-2380 (cluster_init or joining server, no
    external datastore). Every node: kubelet 10250 and the flannel backend's port (vxlan
    udp 8472, wireguard-native udp 51820/51821). ``k3s.mode: external``: none.
    """
    k3s = cfg.k3s
    if k3s.mode != "install":
        return []
    conf = k3s.config or {}
    rules: list[dict[str, Any]] = []
    if k3s.role == "server":
        rules.append({"name": "k3s-api", "proto": "tcp", "ports": [6443]})
        if "datastore-endpoint" not in conf and (k3s.cluster_init or k3s.server_url):
            rules.append({"name": "etcd", "proto": "tcp", "ports": ["2379-2380"]})
    rules.append({"name": "kubelet", "proto": "tcp", "ports": [10250]})
    backend = str(conf.get("flannel-backend", "vxlan"))
    if backend == "vxlan":
        rules.append({"name": "flannel-vxlan", "proto": "udp", "ports": [8472]})
    elif backend == "wireguard-native":
        rules.append({"name": "flannel-wireguard", "proto": "udp", "ports": [51820, 51821]})
    return rules


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

    for name, cidrs in sorted(fw.sets.items()):
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
                add(pr["name"], pr["proto"], pr["ports"], [])
    for r in fw.allow:
        add(r.name, r.proto, r.ports, r.from_, r.iif)
    return t
