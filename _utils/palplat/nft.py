"""palplat's host firewall: one nftables table, rendered, diffed and applied atomically.

* :func:`desired` builds the table from ``palplat:firewall`` plus the node's k3s profile.
  Every rule carries its name in its comment; addresses go into named interval sets.
* :func:`render` writes an ``nft -f`` script that replaces only palplat's table in one
  transaction (``table`` + ``delete table`` + the new table); other tables are never named.
* :func:`parse` reads ``nft -j list table`` back into the same model, normalized (set
  elements and port lists become merged intervals), so "changed?" is an equality test and
  the diff is per rule name.
* :func:`lockout_problems` refuses a table that blocks the management ports from
  ``management.allow_from``; :func:`narrows` tells whether a change takes away access to
  the management ports, which is then applied commit-confirmed (see :class:`Firewall`).
"""

from __future__ import annotations

import ipaddress
import json
import os
import re
import shutil
import socket
import sys
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from palplat import nft_rollback, proc
from palplat.errors import CommandError, PalplatError, PillarError, PillarProblem

FAMILY = "inet"
CHAIN = "input"
MAX = {4: 2**32 - 1, 6: 2**128 - 1}
FULL = {4: ((0, MAX[4]),), 6: ((0, MAX[6]),)}
NFT_TIMEOUT = 120

Interval = tuple[int, int]
Intervals = tuple[Interval, ...]


# ------------------------------------------------------------------------ intervals


def merge(intervals: Iterable[Interval]) -> Intervals:
    """Sorted, non-overlapping, non-adjacent intervals (the normal form of a set)."""
    out: list[list[int]] = []
    for lo, hi in sorted(intervals):
        if out and lo <= out[-1][1] + 1:
            out[-1][1] = max(out[-1][1], hi)
        else:
            out.append([lo, hi])
    return tuple((a, b) for a, b in out)


def covers(big: Intervals, small: Intervals) -> bool:
    """Every interval of ``small`` lies inside one interval of merged ``big``."""
    big = merge(big)
    return all(any(a <= lo and hi <= b for a, b in big) for lo, hi in small)


def _ip_int(addr: str) -> tuple[int, int]:
    if ":" in addr:
        return 6, int.from_bytes(socket.inet_pton(socket.AF_INET6, addr), "big")
    return 4, int.from_bytes(socket.inet_pton(socket.AF_INET, addr), "big")


def net_interval(cidr: str) -> tuple[int, Interval]:
    """``10.0.0.0/8`` -> (4, (first, last)); a bare address is a single host."""
    addr, _, plen = cidr.partition("/")
    try:
        ver, ip = _ip_int(addr)
    except OSError:
        raise ValueError(f"not an IP address: {addr}") from None
    bits = 32 if ver == 4 else 128
    host = bits - (int(plen) if plen else bits)
    lo = ip >> host << host
    return ver, (lo, lo | ((1 << host) - 1))


def split_cidrs(cidrs: Iterable[str]) -> dict[int, Intervals]:
    out: dict[int, list[Interval]] = {4: [], 6: []}
    for c in cidrs:
        ver, iv = net_interval(c)
        out[ver].append(iv)
    return {v: merge(ivs) for v, ivs in out.items()}


def _ip_str(ver: int, value: int) -> str:
    if ver == 4:
        return socket.inet_ntop(socket.AF_INET, value.to_bytes(4, "big"))
    return socket.inet_ntop(socket.AF_INET6, value.to_bytes(16, "big"))


def addr_elements(ver: int, intervals: Intervals) -> list[str]:
    """Render intervals as the fewest CIDRs (single hosts as bare addresses)."""
    bits = 32 if ver == 4 else 128
    cls = ipaddress.IPv4Address if ver == 4 else ipaddress.IPv6Address
    out: list[str] = []
    for lo, hi in intervals:
        size = hi - lo + 1
        if size & (size - 1) == 0 and lo % size == 0:  # exactly one prefix (fast path)
            plen = bits - (size.bit_length() - 1)
            out.append(_ip_str(ver, lo) if plen == bits else f"{_ip_str(ver, lo)}/{plen}")
            continue
        for net in ipaddress.summarize_address_range(cls(lo), cls(hi)):
            out.append(str(net.network_address) if net.prefixlen == net.max_prefixlen else str(net))
    return out


def port_intervals(ports: Iterable[int | str]) -> Intervals:
    ivs = []
    for p in ports:
        if isinstance(p, int):
            ivs.append((p, p))
        else:
            lo, hi = (int(x) for x in str(p).split("-"))
            ivs.append((lo, hi))
    return merge(ivs)


def _ports_text(ports: Intervals) -> str:
    items = [str(lo) if lo == hi else f"{lo}-{hi}" for lo, hi in ports]
    return items[0] if len(items) == 1 else "{ " + ", ".join(items) + " }"


# ---------------------------------------------------------------------------- model


@dataclass(frozen=True)
class Rule:
    """One nft rule in palplat's input chain, in normal form. ``name`` is its comment."""

    name: str
    verdict: str = "accept"
    iif: str | None = None
    ct: tuple[str, ...] | None = None
    l4proto: str | None = None
    proto: str | None = None
    ports: Intervals | None = None
    family: int | None = None  # 4 / 6 when the rule matches a source address
    saddr_set: str | None = None
    saddr: Intervals | None = None
    raw: str | None = None  # a live rule palplat does not write (kept verbatim)

    def text(self) -> str:
        if self.raw is not None:
            return f"<not written by palplat> {self.raw}"
        parts = []
        if self.iif is not None:
            parts.append(f'iifname "{self.iif}"')
        if self.ct is not None:
            parts.append("ct state " + ",".join(self.ct))
        if self.l4proto is not None:
            parts.append(f"meta l4proto {self.l4proto}")
        if self.proto is not None:
            parts.append(f"{self.proto} dport {_ports_text(self.ports)}")
        if self.family is not None:
            kw = "ip" if self.family == 4 else "ip6"
            if self.saddr_set is not None:
                parts.append(f"{kw} saddr @{self.saddr_set}")
            else:
                elems = addr_elements(self.family, self.saddr)
                parts.append(
                    f"{kw} saddr "
                    + (elems[0] if len(elems) == 1 else "{ " + ", ".join(elems) + " }")
                )
        parts.append(self.verdict)
        parts.append(f'comment "{self.name}"')
        return " ".join(parts)


@dataclass
class NftSet:
    name: str
    version: int
    elements: Intervals

    @property
    def type(self) -> str:
        return "ipv4_addr" if self.version == 4 else "ipv6_addr"

    def text(self) -> str:
        elems = addr_elements(self.version, self.elements)
        body = f"\t\ttype {self.type}\n\t\tflags interval\n"
        if elems:
            body += "\t\telements = { " + ",\n\t\t\t".join(elems) + " }\n"
        return f"\tset {self.name} {{\n{body}\t}}\n"


@dataclass
class Table:
    name: str
    policy: str = "drop"
    sets: dict[str, NftSet] = field(default_factory=dict)
    rules: list[Rule] = field(default_factory=list)
    chain: tuple = ("filter", "input", 0)
    foreign: list[str] = field(default_factory=list)  # chains/objects palplat never writes

    def key(self) -> tuple:
        return (
            self.chain,
            self.policy,
            tuple(sorted((n, s.version, s.elements) for n, s in self.sets.items())),
            tuple(self.rules),
            tuple(sorted(self.foreign)),
        )

    def groups(self) -> dict[str, list[Rule]]:
        out: dict[str, list[Rule]] = {}
        for r in self.rules:
            out.setdefault(r.name, []).append(r)
        return out


# ------------------------------------------------------------------- desired table


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


def management_ports(fw) -> list[int]:
    return sorted({fw.management.ssh_port, *fw.management.salt_ports})


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


def render(t: Table, header: str = "") -> str:
    """An ``nft -f`` script that atomically replaces table ``inet <name>`` (only it)."""
    lines = [header] if header else []
    lines += [
        f"table {FAMILY} {t.name}",
        f"delete table {FAMILY} {t.name}",
        f"table {FAMILY} {t.name} {{",
    ]
    body = [s.text() for _, s in sorted(t.sets.items())]
    chain = f"\tchain {CHAIN} {{\n\t\ttype filter hook input priority filter; policy {t.policy};\n"
    chain += "".join(f"\t\t{r.text()}\n" for r in t.rules)
    chain += "\t}\n"
    body.append(chain)
    return "\n".join(lines) + "\n" + "\n".join(body) + "}\n"


def removal_script(name: str) -> str:
    return f"table {FAMILY} {name}\ndelete table {FAMILY} {name}\n"


# ------------------------------------------------------------------------ live table


def _addr(value: Any) -> tuple[int, list[Interval]] | None:
    if isinstance(value, str):
        ver, ip = _ip_int(value)
        return ver, [(ip, ip)]
    if isinstance(value, dict) and "prefix" in value:
        ver, iv = net_interval(f"{value['prefix']['addr']}/{value['prefix']['len']}")
        return ver, [iv]
    if isinstance(value, dict) and "range" in value:
        (ver, lo), (_, hi) = (_ip_int(x) for x in value["range"])
        return ver, [(lo, hi)]
    if isinstance(value, dict) and "set" in value:
        ver, ivs = None, []
        for v in value["set"]:
            got = _addr(v)
            if got is None:
                return None
            ver = got[0]
            ivs += got[1]
        return (ver, ivs) if ver else None
    return None


def _ports(value: Any) -> list[Interval] | None:
    if isinstance(value, int):
        return [(value, value)]
    if isinstance(value, dict) and "range" in value:
        return [tuple(value["range"])]
    if isinstance(value, dict) and "set" in value:
        out: list[Interval] = []
        for v in value["set"]:
            got = _ports(v)
            if got is None:
                return None
            out += got
        return out
    return None


def _rule(obj: dict) -> Rule:
    name = obj.get("comment") or f"<handle {obj.get('handle')}>"
    kw: dict[str, Any] = {}
    verdict = None
    unknown = False
    for e in obj.get("expr", []):
        if "accept" in e or "drop" in e:
            verdict = "accept" if "accept" in e else "drop"
            continue
        m = e.get("match")
        if not m or m.get("op") not in ("==", "in"):
            unknown = True
            continue
        left, right = m.get("left", {}), m.get("right")
        if left.get("meta", {}).get("key") == "iifname" and isinstance(right, str):
            kw["iif"] = right
        elif left.get("meta", {}).get("key") == "l4proto" and isinstance(right, str):
            kw["l4proto"] = right
        elif left.get("ct", {}).get("key") == "state":
            kw["ct"] = tuple(sorted([right] if isinstance(right, str) else right))
        elif left.get("payload", {}).get("field") == "dport" and left["payload"].get(
            "protocol"
        ) in ("tcp", "udp"):
            ports = _ports(right)
            if ports is None:
                unknown = True
            else:
                kw["proto"] = left["payload"]["protocol"]
                kw["ports"] = merge(ports)
        elif left.get("payload", {}).get("field") == "saddr" and left["payload"].get(
            "protocol"
        ) in ("ip", "ip6"):
            kw["family"] = 4 if left["payload"]["protocol"] == "ip" else 6
            if isinstance(right, str) and right.startswith("@"):
                kw["saddr_set"] = right[1:]
            else:
                got = _addr(right)
                if got is None:
                    unknown = True
                else:
                    kw["saddr"] = merge(got[1])
        else:
            unknown = True
    if unknown or verdict is None:
        return Rule(name, raw=json.dumps(obj.get("expr", []), sort_keys=True))
    return Rule(name, verdict=verdict, **kw)


def parse(listing: dict, name: str) -> Table:
    """The normal form of ``nft -j list table inet <name>``."""
    t = Table(name=name, chain=(), policy="")
    have_chain = False
    for item in listing.get("nftables", []):
        if "set" in item:
            s = item["set"]
            ver = {"ipv4_addr": 4, "ipv6_addr": 6}.get(s.get("type"))
            if ver is None or s.get("flags") not in (["interval"], None):
                t.foreign.append(f"set {s.get('name')} ({s.get('type')})")
                continue
            ivs: list[Interval] = []
            for el in s.get("elem", []):
                if isinstance(el, dict) and "elem" in el:  # element with options
                    el = el["elem"].get("val")
                got = _addr(el)
                if got is None:
                    t.foreign.append(f"set {s['name']} element {json.dumps(el)}")
                else:
                    ivs += got[1]
            t.sets[s["name"]] = NftSet(s["name"], ver, merge(ivs))
        elif "chain" in item:
            c = item["chain"]
            if c.get("name") == CHAIN and not have_chain:
                have_chain = True
                t.chain = (c.get("type"), c.get("hook"), c.get("prio"))
                t.policy = c.get("policy", "accept")
            else:
                t.foreign.append(f"chain {c.get('name')}")
        elif "rule" in item:
            r = item["rule"]
            if r.get("chain") == CHAIN:
                t.rules.append(_rule(r))
        elif any(k in item for k in ("map", "flowtable", "counter", "quota", "ct helper", "limit")):
            t.foreign.append(json.dumps(item, sort_keys=True)[:200])
    return t


# ---------------------------------------------------------------------------- diff

SHOW = 50


def diff(live: Table | None, want: Table) -> dict[str, Any]:
    """Rule-level diff keyed by rule name (the comment), plus sets and chain policy."""
    if live is not None and live.key() == want.key():
        return {}
    changes: dict[str, Any] = {}
    if live is None:
        changes["table"] = {"old": None, "new": f"{FAMILY} {want.name}"}
    old_g = live.groups() if live else {}
    new_g = want.groups()
    rules: dict[str, Any] = {}
    for name in list(new_g) + [n for n in old_g if n not in new_g]:
        if old_g.get(name) != new_g.get(name):
            rules[name] = {
                "old": [r.text() for r in old_g[name]] if name in old_g else None,
                "new": [r.text() for r in new_g[name]] if name in new_g else None,
            }
    if rules:
        changes["rules"] = rules
    old_sets = live.sets if live else {}
    sets: dict[str, Any] = {}
    for name in sorted(set(old_sets) | set(want.sets)):
        o, n = old_sets.get(name), want.sets.get(name)
        if o is not None and n is not None and (o.version, o.elements) == (n.version, n.elements):
            continue
        oe = set(addr_elements(o.version, o.elements)) if o else set()
        ne = set(addr_elements(n.version, n.elements)) if n else set()
        entry: dict[str, Any] = {
            "old": None if o is None else f"{len(oe)} elements",
            "new": None if n is None else f"{len(ne)} elements",
        }
        if ne - oe:
            entry["added"] = sorted(ne - oe)[:SHOW]
        if oe - ne:
            entry["removed"] = sorted(oe - ne)[:SHOW]
        sets[name] = entry
    if sets:
        changes["sets"] = sets
    if live is not None and (live.chain, live.policy) != (want.chain, want.policy):
        changes["chain"] = {
            "old": f"{'/'.join(map(str, live.chain))} policy {live.policy}",
            "new": f"{'/'.join(map(str, want.chain))} policy {want.policy}",
        }
    if live is not None and live.foreign:
        changes["foreign"] = {"old": list(live.foreign), "new": None}
    if not changes:  # same rules, other order
        changes["order"] = {
            "old": [r.name for r in live.rules] if live else None,
            "new": [r.name for r in want.rules],
        }
    return changes


def summary(changes: dict[str, Any]) -> str:
    rules = changes.get("rules", {})
    added = [n for n, c in rules.items() if c["old"] is None]
    removed = [n for n, c in rules.items() if c["new"] is None]
    changed = [n for n, c in rules.items() if c["old"] is not None and c["new"] is not None]
    out = []
    for word, names in (("add", added), ("remove", removed), ("change", changed)):
        if names:
            shown = ", ".join(names[:10]) + (
                f" and {len(names) - 10} more" if len(names) > 10 else ""
            )
            out.append(f"{word} rules {shown}")
    if changes.get("sets"):
        out.append("update sets " + ", ".join(changes["sets"]))
    if changes.get("chain"):
        out.append(f"set {changes['chain']['new']}")
    if changes.get("foreign"):
        out.append("drop objects palplat does not write")
    if changes.get("order"):
        out.append("restore rule order")
    return "; ".join(out)


# -------------------------------------------------------------------- reachability


def reach(t: Table | None, proto: str, port: int) -> dict[str, dict[int, Intervals]]:
    """Sources accepted for a new connection to ``proto``/``port``: interface -> version ->
    intervals (``*``: any interface). No table, or policy accept: everything."""
    if t is None or t.policy == "accept":
        return {"*": dict(FULL)}
    acc: dict[str, dict[int, list[Interval]]] = {}
    for r in t.rules:
        if r.raw is not None:
            continue  # unknown rules are not trusted to open anything
        if r.verdict != "accept" or r.ct is not None or r.l4proto is not None:
            continue
        if r.proto is not None and (r.proto != proto or not covers(r.ports, ((port, port),))):
            continue
        slot = acc.setdefault(r.iif or "*", {4: [], 6: []})
        if r.family is None:
            slot[4].append(FULL[4][0])
            slot[6].append(FULL[6][0])
        elif r.saddr_set is not None:
            s = t.sets.get(r.saddr_set)
            if s is not None and s.version == r.family:
                slot[r.family] += s.elements
        else:
            slot[r.family] += r.saddr or ()
    out = {k: {v: merge(ivs) for v, ivs in d.items()} for k, d in acc.items()}
    out.setdefault("*", {4: (), 6: ()})
    return out


def narrows(old: Table | None, new: Table, ports: Iterable[int]) -> list[int]:
    """Management ports some source could reach before ``new`` and cannot after it."""
    lost = []
    for port in ports:
        a, b = reach(old, "tcp", port), reach(new, "tcp", port)
        for iif in set(a) | {"*"}:
            for ver in (4, 6):
                before = a.get(iif, {}).get(ver, ()) + a["*"][ver]
                after = b.get(iif, {}).get(ver, ()) + b["*"][ver]
                if not covers(after, merge(before)):
                    lost.append(port)
    return sorted(set(lost))


def lockout_problems(fw, t: Table) -> list[PillarProblem]:
    """The management ports must stay open from ``management.allow_from`` (from
    everywhere when it is empty) on any interface, unless ``force``."""
    if fw.force:
        return []
    sources = split_cidrs(fw.management.allow_from) if fw.management.allow_from else dict(FULL)
    where = (
        "from " + ", ".join(fw.management.allow_from)
        if fw.management.allow_from
        else "from everywhere (management:allow_from is empty)"
    )
    problems = []
    for port in management_ports(fw):
        got = reach(t, "tcp", port)["*"]
        if not all(covers(got[v], sources[v]) for v in (4, 6) if sources[v]):
            what = "SSH" if port == fw.management.ssh_port else "Salt"
            problems.append(
                PillarProblem(
                    "palplat:firewall",
                    f"this ruleset blocks {what} (tcp {port}) {where}, which can lock you out "
                    "of the host; list the networks you manage it from in "
                    "palplat:firewall:management:allow_from (or allow the port with a rule), "
                    "or set palplat:firewall:force: true if you really mean it",
                )
            )
    return problems


# ------------------------------------------------------------------------------ nft


class NftRejected(PalplatError):
    """``nft -c`` refused a script: nothing was applied."""


class Nft:
    """Runs ``nft`` (inside ``netns`` when set) through :func:`palplat.proc.run`."""

    def __init__(self, netns: str | None = None, run: Callable[..., proc.Result] = proc.run):
        self.netns = netns
        self.run = run
        self.prefix = (["ip", "netns", "exec", netns] if netns else []) + ["nft"]

    def _list(self, args: list[str]) -> str | None:
        res = self.run(self.prefix + args, check=False, timeout=NFT_TIMEOUT)
        if res.returncode != 0:
            if "No such file or directory" in res.stderr:
                return None
            raise CommandError(res.argv, res.returncode, res.stderr, res.stdout)
        return res.stdout

    def list_json(self, name: str) -> dict | None:
        out = self._list(["-j", "list", "table", FAMILY, name])
        return None if out is None else json.loads(out)

    def list_text(self, name: str) -> str | None:
        return self._list(["list", "table", FAMILY, name])

    def live(self, name: str) -> Table | None:
        data = self.list_json(name)
        return None if data is None else parse(data, name)

    def check(self, script: str) -> None:
        try:
            self.run(self.prefix + ["-c", "-f", "/dev/stdin"], input=script, timeout=NFT_TIMEOUT)
        except CommandError as exc:
            raise NftRejected(
                "nft -c rejected the rendered ruleset, so nothing was changed: "
                f"{exc.stderr.strip()[-1500:]} -- check the names in palplat:firewall "
                "(interfaces, sets) and that nftables is 0.9.3 or newer"
            ) from None

    def load(self, script: str) -> None:
        self.run(self.prefix + ["-f", "/dev/stdin"], input=script, timeout=NFT_TIMEOUT)

    def restore_argv(self, path: str) -> list[str]:
        return self.prefix + ["-f", path]


# ------------------------------------------------------------------ files and paths


def rooted(root: str, path: str) -> str:
    return path if (root or "/") == "/" else os.path.join(root, path.lstrip("/"))


def _key(fw) -> str:
    where = re.sub(r"[^A-Za-z0-9_.-]", "_", fw.netns) if fw.netns else "host"
    return f"{where}-{FAMILY}-{fw.table}"


@dataclass
class Paths:
    persist_file: str
    main_config: str
    state_dir: str
    record: str

    @classmethod
    def of(cls, fw) -> Paths:
        state = rooted(fw.root, "/var/lib/palplat/nftables")
        return cls(
            persist_file=rooted(fw.root, f"/etc/nftables.d/palplat-{fw.table}.nft"),
            main_config=rooted(fw.root, fw.main_config),
            state_dir=state,
            record=os.path.join(state, f"pending-{_key(fw)}.json"),
        )

    @property
    def include_line(self) -> str:
        return f'include "{self.persist_file}"'


INCLUDE_COMMENT = "# palplat: its firewall table (palplat_nftables; the file is managed by Salt)"
PERSIST_HEADER = (
    "#!/usr/sbin/nft -f\n# Managed by palplat (Salt state palplat_nftables.managed); edits are "
    "replaced.\n# Replaces only table {family} {name}; included from {main}."
)


def _read(path: str) -> str | None:
    try:
        with open(path, encoding="utf-8") as fh:
            return fh.read()
    except FileNotFoundError:
        return None


def _write_atomic(path: str, text: str, mode: int = 0o644) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    try:
        mode = os.stat(path).st_mode & 0o7777
    except FileNotFoundError:
        pass
    tmp = f"{path}.palplat-tmp"
    with open(tmp, "w", encoding="utf-8") as fh:
        fh.write(text)
    os.chmod(tmp, mode)
    os.replace(tmp, path)


def persist_plan(paths: Paths, content: str) -> dict[str, Any]:
    """What persisting ``content`` would change: the table file and the include line."""
    changes: dict[str, Any] = {}
    cur = _read(paths.persist_file)
    if cur != content:
        changes[paths.persist_file] = {
            "old": None if cur is None else "differs",
            "new": "palplat's table",
        }
    main = _read(paths.main_config)
    if main is None or paths.include_line not in main.splitlines():
        changes[paths.main_config] = {
            "old": None if main is None else "no palplat include",
            "new": paths.include_line,
        }
    return changes


def persist_write(paths: Paths, content: str) -> None:
    """Write palplat's table file; append one include line to the distribution's main file
    (its content is otherwise kept byte for byte; created when the distribution has none)."""
    if _read(paths.persist_file) != content:
        _write_atomic(paths.persist_file, content)
    main = _read(paths.main_config)
    if main is None:
        _write_atomic(
            paths.main_config, f"#!/usr/sbin/nft -f\n{INCLUDE_COMMENT}\n{paths.include_line}\n"
        )
    elif paths.include_line not in main.splitlines():
        sep = "" if main.endswith("\n") or not main else "\n"
        _write_atomic(paths.main_config, f"{main}{sep}{INCLUDE_COMMENT}\n{paths.include_line}\n")


# ---------------------------------------------------------------- nftables.service

SERVICE = "nftables.service"


def _systemctl(root: str) -> list[str] | None:
    if not shutil.which("systemctl"):
        return None
    return ["systemctl"] + ([f"--root={root}"] if (root or "/") != "/" else [])


def service_enabled(root: str, run=proc.run) -> bool | None:
    """Whether nftables.service starts at boot; None when there is no systemctl."""
    base = _systemctl(root)
    if base is None:
        return None
    res = run(base + ["is-enabled", SERVICE], check=False, timeout=60)
    if res.returncode != 0 and not res.stdout.strip():
        where = "" if (root or "/") == "/" else f" under {root}"
        raise PalplatError(
            f"{SERVICE} is not installed{where} ({res.stderr.strip()}): install the nftables "
            "package (Debian and Arch: nftables), or set palplat:firewall:persist: false"
        )
    return res.stdout.strip() in ("enabled", "enabled-runtime", "static", "alias")


def service_enable(root: str, run=proc.run) -> None:
    base = _systemctl(root)
    if base is not None:
        run(base + ["enable", SERVICE], timeout=60)


# --------------------------------------------------------------- commit-confirmed


def systemd_running() -> bool:
    return os.path.isdir("/run/systemd/system")


def _libdir() -> str:
    return os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def pending(paths: Paths) -> dict | None:
    return nft_rollback.read(paths.record)


def last_outcome(paths: Paths) -> dict | None:
    return nft_rollback.read(nft_rollback.outcome_path(paths.record))


def schedule(fw, paths: Paths, nft: Nft, previous: str, persist: dict | None, run=proc.run) -> dict:
    """Arm the rollback of the change about to be applied: restore ``previous`` (an nft
    script) after ``confirm_seconds`` unless :func:`confirm` runs first. An unconfirmed
    earlier change keeps its restore script (the last confirmed table) and gets a new
    deadline. Returns the pending record."""
    os.makedirs(paths.state_dir, mode=0o700, exist_ok=True)
    with nft_rollback.locked(paths.record):
        old = nft_rollback.read(paths.record)
        if old is not None:
            _cancel(old, run)
            script_path = old["restore_script"]
        else:
            script_path = os.path.join(paths.state_dir, f"restore-{_key(fw)}.nft")
            nft.check(previous)  # never arm a rollback that nft would refuse
            proc.write_private(script_path, previous)
        token = uuid.uuid4().hex
        deadline = time.time() + fw.confirm_seconds
        rec = {
            "token": token,
            "created": time.time(),
            "deadline": deadline,
            "confirm_seconds": fw.confirm_seconds,
            "table": f"{FAMILY} {fw.table}",
            "netns": fw.netns,
            "restore_script": script_path,
            "restore_argv": nft.restore_argv(script_path),
            "persist": persist,
        }
        mech = fw.rollback_timer
        if mech == "auto":
            mech = "systemd" if systemd_running() and shutil.which("systemd-run") else "process"
        rec["mechanism"] = mech
        argv = [sys.executable, "-m", "palplat.nft_rollback", paths.record, "--token", token]
        if mech == "systemd":
            unit = f"palplat-nft-rollback-{token[:12]}"
            run(
                [
                    "systemd-run",
                    f"--unit={unit}",
                    "--description=palplat: roll back an unconfirmed firewall change",
                    f"--on-active={fw.confirm_seconds}",
                    "--timer-property=AccuracySec=1s",
                    f"--setenv=PYTHONPATH={_libdir()}",
                    "--quiet",
                    "--",
                    *argv,
                ],
                timeout=60,
            )
            rec["unit"] = unit
        else:
            res = run(
                argv + ["--detach", "--at", repr(deadline)],
                env={"PYTHONPATH": _libdir()},
                timeout=60,
            )
            rec["pid"] = int(res.stdout.strip().splitlines()[-1])
        nft_rollback.write(paths.record, rec)
        return rec


def _cancel(rec: dict, run=proc.run) -> None:
    if rec.get("unit"):
        run(["systemctl", "stop", f"{rec['unit']}.timer"], check=False, timeout=60)
    pid = rec.get("pid")
    if pid:
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as fh:
                cmd = fh.read().decode(errors="replace")
        except OSError:
            return
        if "palplat.nft_rollback" in cmd and rec.get("token", "-") in cmd:
            try:
                os.kill(pid, 15)
            except OSError:
                pass


def confirm(fw, paths: Paths, run=proc.run) -> dict[str, Any]:
    """Confirm a pending change: disarm its rollback and write the deferred persistence.

    Raises :class:`PalplatError` when the change was already rolled back."""
    with nft_rollback.locked(paths.record) if os.path.isdir(paths.state_dir) else _nolock():
        rec = nft_rollback.read(paths.record)
        if rec is None:
            last = last_outcome(paths)
            if last and last.get("outcome") != "confirmed" and not last.get("seen"):
                last["seen"] = True
                nft_rollback.write(nft_rollback.outcome_path(paths.record), last)
                raise PalplatError(
                    f"the firewall change to {last.get('table')} was {last.get('outcome')} "
                    f"at {time.strftime('%H:%M:%S', time.localtime(last.get('at', 0)))} "
                    "because it was not confirmed in time; run the firewall state again and "
                    "confirm within confirm_seconds"
                )
            return {"confirmed": False, "comment": "no firewall change is waiting for confirmation"}
        if rec.get("persist"):
            persist_write(Paths(**rec["persist"]["paths"]), rec["persist"]["content"])
        _cancel(rec, run)
        if os.path.exists(rec["restore_script"]):
            os.unlink(rec["restore_script"])
        os.unlink(paths.record)
        nft_rollback.write(
            nft_rollback.outcome_path(paths.record),
            {
                "outcome": "confirmed",
                "token": rec["token"],
                "at": time.time(),
                "table": rec["table"],
            },
        )
        left = max(0, int(rec["deadline"] - time.time()))
        return {
            "confirmed": True,
            "comment": f"confirmed the firewall change to {rec['table']} "
            f"({left}s before its rollback)",
        }


class _nolock:  # noqa: N801
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def rollback_now(paths: Paths) -> dict[str, Any]:
    """Roll back a pending change immediately (what the timer would do)."""
    rec = nft_rollback.read(paths.record)
    if rec is None:
        return {"rolled_back": False, "comment": "no firewall change is waiting for confirmation"}
    rc = nft_rollback.fire(paths.record)
    out = last_outcome(paths) or {}
    if rc != 0:
        raise PalplatError(f"rollback failed: {out.get('stderr', '').strip()}")
    _cancel(rec)
    out["seen"] = True
    nft_rollback.write(nft_rollback.outcome_path(paths.record), out)
    return {"rolled_back": True, "comment": f"restored the last confirmed {rec['table']}"}


# ----------------------------------------------------------------------- plan/apply


@dataclass
class Plan:
    fw: Any
    paths: Paths
    want: Table
    live: Table | None
    script: str
    changes: dict[str, Any]
    table_changed: bool
    risky_ports: list[int]
    pending: dict | None
    persist: dict[str, Any]  # what persisting changes now ({} when deferred or up to date)
    persist_content: str | None
    service: bool  # nftables.service needs enabling

    @property
    def changed(self) -> bool:
        return bool(self.changes)

    def comment(self, test: bool) -> str:
        if not self.changed:
            c = f"firewall table {FAMILY} {self.want.name} is in the desired state"
            if self.pending:
                left = max(0, int(self.pending["deadline"] - time.time()))
                c += (
                    f"; an earlier change is NOT confirmed yet and rolls back in {left}s: run "
                    "palplat_nftables.confirm"
                )
            return c
        verb = "would" if test else "did"
        parts = []
        if self.table_changed:
            parts.append(f"{verb} {summary(self.changes)} in table {FAMILY} {self.want.name}")
        if self.risky_ports:
            parts.append(
                f"the change narrows access to management port(s) "
                f"{', '.join(map(str, self.risky_ports))}: it {'would roll' if test else 'rolls'} "
                f"back in {self.fw.confirm_seconds}s unless confirmed with "
                "palplat_nftables.confirm"
                + (" (persistence waits for the confirmation)" if self.persist_content else "")
            )
        if self.persist:
            parts.append(f"{verb} write the boot-time config ({', '.join(self.persist)})")
        if self.service:
            parts.append(f"{verb} enable {SERVICE}")
        return "; ".join(parts)


def _persist_wanted(fw) -> bool:
    # The boot-time config belongs to the host's namespace: a netns table is persisted
    # only under a non-default root (sandbox, tests).
    return fw.persist and not (fw.netns and (fw.root or "/") == "/")


def plan(cfg, nft: Nft | None = None, run=proc.run) -> Plan:
    """Desired vs live: raises :class:`PillarError` on a lock-out, :class:`CommandError`
    when ``nft -c`` rejects the rendered table. Changes nothing."""
    fw = cfg.firewall
    nft = nft or Nft(fw.netns, run)
    paths = Paths.of(fw)
    want = desired(cfg)
    problems = lockout_problems(fw, want)
    if problems:
        raise PillarError(problems)
    live = nft.live(fw.table)
    changes = diff(live, want)
    script = render(want)
    risky: list[int] = []
    if changes:
        nft.check(script)
        risky = narrows(live, want, management_ports(fw))
    rec = pending(paths)
    content = None
    persist: dict[str, Any] = {}
    service = False
    if _persist_wanted(fw):
        header = PERSIST_HEADER.format(family=FAMILY, name=fw.table, main=paths.main_config)
        content = f"{header}\n{script}"  # == render(want, header), rendered once
        # Deferred to palplat_nftables.confirm while a change is unconfirmed.
        if not risky and rec is None:
            persist = persist_plan(paths, content)
        enabled = service_enabled(fw.root, run)
        service = enabled is False
    all_changes = dict(changes)
    if risky:
        all_changes["confirm"] = {
            "old": None,
            "new": f"rollback in {fw.confirm_seconds}s unless palplat_nftables.confirm",
        }
    if persist:
        all_changes["persist"] = persist
    if service:
        all_changes["service"] = {"old": "disabled", "new": f"{SERVICE} enabled"}
    return Plan(
        fw,
        paths,
        want,
        live,
        script,
        all_changes,
        bool(changes),
        risky,
        rec,
        persist,
        content,
        service,
    )


def apply(p: Plan, nft: Nft | None = None, run=proc.run, progress=None) -> Table:
    """Carry out a plan: arm the rollback (risky changes), load the table in one
    transaction, re-read and verify, persist, enable the service. Returns the live table."""
    fw = p.fw
    nft = nft or Nft(fw.netns, run)
    say = progress or (lambda *a, **k: None)
    live = p.live
    if p.table_changed:
        rec = None
        if p.risky_ports or p.pending:
            persist = (
                {"paths": p.paths.__dict__, "content": p.persist_content}
                if p.persist_content is not None
                else None
            )
            previous = ""  # a pending change keeps the last confirmed table's script
            if not p.pending:
                previous = removal_script(fw.table) + (nft.list_text(fw.table) or "")
            rec = schedule(fw, p.paths, nft, previous, persist, run)
            say(
                "armed",
                f"rollback of {FAMILY} {fw.table} armed ({rec['mechanism']}), "
                f"{fw.confirm_seconds}s to confirm",
                force=True,
            )
        try:
            nft.load(p.script)
        except PalplatError:
            if rec is not None and not p.pending:
                with nft_rollback.locked(p.paths.record):
                    _cancel(rec, run)
                    os.unlink(p.paths.record)
            raise
        live = nft.live(fw.table)
        if live is None or live.key() != p.want.key():
            left = diff(live, p.want)
            raise PalplatError(
                f"nft loaded table {FAMILY} {fw.table} but the live table differs from the "
                f"rendered one ({summary(left)}); check for another tool rewriting it"
            )
        say("applied", f"table {FAMILY} {fw.table} applied: {summary(p.changes) or 'persistence'}")
    if p.persist:
        persist_write(p.paths, p.persist_content)
        left = persist_plan(p.paths, p.persist_content)
        if left:
            raise PalplatError(f"wrote the boot-time config but it still differs: {left}")
    if p.service:
        service_enable(fw.root, run)
    return live
