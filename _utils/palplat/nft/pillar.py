"""The ``palplat:firewall`` pillar section (re-exported by :mod:`palplat.model`): palplat's
own nftables table, its management access and allowed flows. Cross checks with the rest
of the pillar (lock-out) live in :mod:`palplat.nft.policy`."""

from __future__ import annotations

import ipaddress
import re
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, Field, PlainValidator

from palplat.fields import Cidr, DnsLabel, Interface, Model, Port, SafePath, _cidr


class Management(Model):
    """Management access (SSH and Salt): never blocked by a palplat change."""

    ssh_port: Port = 22
    """sshd's port: always open to allow_from, guarded against lock-out (host:ssh:port follows it).
    """
    salt_ports: list[Port] = Field(
        [4505, 4506], description="Salt master ports kept open from allow_from (servers)."
    )
    allow_from: list[Cidr] = Field(
        default_factory=list,
        description="Sources that must always reach the management ports.",
    )


def _port_or_range(v: Any) -> int | str:
    if isinstance(v, bool) or not isinstance(v, (int, str)):
        raise ValueError("must be a port number or a range 'LOW-HIGH'")
    if isinstance(v, int):
        if not 1 <= v <= 65535:
            raise ValueError("port must be between 1 and 65535")
        return v
    m = re.match(r"^([0-9]{1,5})-([0-9]{1,5})$", v)
    if not m:
        raise ValueError("must be a port number or a range 'LOW-HIGH'")
    lo, hi = int(m.group(1)), int(m.group(2))
    if not (1 <= lo < hi <= 65535):
        raise ValueError("range must be LOW-HIGH with 1 <= LOW < HIGH <= 65535")
    return v


def _source(v: str) -> str:
    if v.startswith("@"):
        if not re.match(r"^@[a-z][a-z0-9_]{0,31}$", v):
            raise ValueError("is not a set reference: write '@' and a name from firewall:sets")
        return v
    return _cidr(v)


PortOrRange = Annotated[
    Any,
    PlainValidator(
        _port_or_range,
        json_schema_input_type=int | Annotated[str, Field(pattern=r"^[0-9]+-[0-9]+$")],
    ),
    Field(description="A port (443) or an inclusive range ('30000-32767')."),
]
Source = Annotated[str, AfterValidator(_source)]


class FirewallRule(Model):
    """One allowed flow: a named rule."""

    name: DnsLabel = Field(description="Unique rule name; shown in diffs and rule comments.")
    proto: Literal["tcp", "udp"]
    """tcp or udp."""
    ports: list[PortOrRange] = Field(min_length=1)
    """Ports and ranges ('30000-32767'), at least one."""
    from_: list[Source] = Field(
        default_factory=list,
        alias="from",
        description="Source networks or '@set' names; empty means from anywhere.",
    )
    iif: Interface | None = Field(None, description="Only traffic arriving on this interface.")


def _minion_or_master(v: str) -> str:
    if not re.match(r"^[A-Za-z0-9][A-Za-z0-9_.@-]{0,252}$", v):
        raise ValueError("must be 'master' or a minion id (letters, digits, '.', '-', '_', '@')")
    return v


def _ip_address(v: str) -> str:
    try:
        return str(ipaddress.ip_address(v))
    except ValueError:
        raise ValueError("must be an IPv4 or IPv6 address (no prefix length)") from None


class Confirm(Model):
    """How ``palplat.full`` proves that a commit-confirmed change keeps SSH reachable
    before it keeps the change (docs/firewall.md)."""

    probe_from: Annotated[
        list[Annotated[str, AfterValidator(_minion_or_master)]], Field(min_length=1)
    ] = Field(
        default_factory=lambda: ["master"],
        description="Where the new SSH connection is opened from: 'master' (the Salt "
        "master; proves nothing when it runs on this node) and/or ids of minions on other "
        "machines (they run Salt's network.connect).",
    )
    addresses: list[Annotated[str, AfterValidator(_ip_address)]] = Field(
        default_factory=list,
        description="This node's addresses to connect to; default: its global addresses.",
    )
    timeout: Annotated[int, Field(ge=1, le=60)] = Field(
        3, description="Seconds each probe connection may take."
    )
    probe_netns: str | None = Field(
        None,
        description="Open the master's probe connections inside this network namespace "
        "(the sandbox and the tests: a namespace stands for the operator's machine).",
    )


class Firewall(Model):
    """The firewall stage: palplat's own nftables table, commit-confirmed when a change narrows
    management access. See docs/firewall.md.
    """

    enabled: bool = True
    """false: palplat leaves nftables alone (no table, no package)."""
    table: Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]{0,31}$")] = "palplat"
    """Name of palplat's own table (family inet); nothing else is touched."""
    netns: str | None = Field(
        None,
        description="Apply inside this named network namespace instead of the host's "
        "(the sandbox and the tests use it).",
    )
    management: Management = Management()
    confirm_seconds: Annotated[int, Field(ge=10, le=3600)] = 120
    """A change that narrows access to management ports rolls back after this many seconds unless
    confirmed (palplat.full confirms it only after a NEW SSH connection from outside the node
    succeeds: confirm).
    """
    confirm: Confirm = Confirm()
    """How palplat.full proves SSH access before it keeps a commit-confirmed change."""
    trusted_interfaces: list[Interface] = []
    """Interfaces whose traffic is accepted (the tailnet; the pod network's interfaces let
    every pod reach every host port: prefer rules from @pods)."""
    cluster_nodes: list[Cidr] = Field(
        default_factory=list,
        description="Addresses of the cluster's k3s servers and agents (the set @cluster): "
        "the k3s profile opens the API, kubelet, etcd and flannel ports only to them (and "
        "to the trusted interfaces). Empty: the Tailscale range (nodes that talk over the "
        "tailnet).",
    )
    sets: dict[Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]{0,31}$")], list[Cidr]] = Field(
        default_factory=dict, description="Named address sets, referenced as '@name' in rules."
    )
    allow: list[FirewallRule] = []
    """Extra allowed traffic, one rule per entry (name, proto, ports, from, iif)."""
    default_policy: Literal["drop", "accept"] = "drop"
    """What the input chain does with everything else."""
    force: bool = Field(
        False,
        description="Allow a ruleset that blocks the management ports from allow_from, or "
        "opens etcd or flannel VXLAN to everyone. Dangerous: you can lose access to the "
        "host, or expose the cluster.",
    )
    persist: bool = Field(True, description="Write the table to the boot-time nftables config.")
    profile: bool = Field(
        True,
        description="Add the node's k3s ports (k3s-api, kubelet, flannel-*, etcd), open only "
        "to the cluster (@cluster) and, for the API and the kubelet, its pods (@pods), and "
        "trust tailscale0. A rule in allow with the same name replaces a profile rule.",
    )
    rollback_timer: Literal["auto", "systemd", "process"] = Field(
        "auto",
        description="How an unconfirmed change is rolled back: a transient systemd timer "
        "(systemd-run), or a detached process. auto: systemd where it is PID 1.",
    )
    root: SafePath = Field(
        "/",
        description="Filesystem root of the persistence and rollback files (tests use a tmp dir).",
    )
    main_config: SafePath = Field(
        "/etc/nftables.conf",
        description="The distribution's boot-time nftables file (under root); palplat only "
        "adds one include line to it.",
    )
