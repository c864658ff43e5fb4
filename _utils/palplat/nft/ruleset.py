"""palplat's table in normal form (:class:`Table` of :class:`Rule` and :class:`NftSet`),
and its two representations: :func:`render` writes the ``nft -f`` script, :func:`parse`
reads ``nft -j list table`` back into the same model (set elements and port lists become
merged intervals), so "changed?" is an equality test of :meth:`Table.key`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from palplat.nft.intervals import (
    Interval,
    Intervals,
    addr_elements,
    ip_int,
    merge,
    net_interval,
    ports_text,
)

FAMILY = "inet"
CHAIN = "input"


# the layer-4 protocols palplat's rules match by meta l4proto, by IANA number; nft lists
# them back by name where /etc/protocols exists, by number where it does not
L4PROTO_NUMBERS = {"icmp": 1, "tcp": 6, "udp": 17, "ipv6-icmp": 58}
_L4PROTO_NAMES = {n: name for name, n in L4PROTO_NUMBERS.items()} | {"icmpv6": "ipv6-icmp"}


def l4proto_name(value: str | int) -> str:
    """The canonical name of a listed ``meta l4proto`` value (``58``, ``"icmpv6"`` ->
    ``"ipv6-icmp"``)."""
    if isinstance(value, int) or (isinstance(value, str) and value.isdigit()):
        return _L4PROTO_NAMES.get(int(value), str(value))
    return _L4PROTO_NAMES.get(value, value)


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
            # by number: a name is looked up in /etc/protocols (netbase), which a minimal
            # host may not have ("ipv6-icmp" then fails to parse)
            parts.append(f"meta l4proto {L4PROTO_NUMBERS.get(self.l4proto, self.l4proto)}")
        if self.proto is not None:
            parts.append(f"{self.proto} dport {ports_text(self.ports)}")
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


# ------------------------------------------------------------ the live table (nft -j)


def _addr(value: Any) -> tuple[int, list[Interval]] | None:
    if isinstance(value, str):
        ver, ip = ip_int(value)
        return ver, [(ip, ip)]
    if isinstance(value, dict) and "prefix" in value:
        ver, iv = net_interval(f"{value['prefix']['addr']}/{value['prefix']['len']}")
        return ver, [iv]
    if isinstance(value, dict) and "range" in value:
        (ver, lo), (_, hi) = (ip_int(x) for x in value["range"])
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
        elif left.get("meta", {}).get("key") == "l4proto" and isinstance(right, (str, int)):
            kw["l4proto"] = l4proto_name(right)
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
