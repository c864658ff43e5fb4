"""The table model's representations: parsing nft's JSON listing back into the same
normal form that :func:`palplat.nft.render` writes."""

from palplat import nft
from tests.unit.nft.support import cfg_of


def _json_of(t):
    """nft -j output for table ``t``, in the shape nft 1.0 prints (see the functional tests,
    which compare against the real nft)."""
    items = [
        {"metainfo": {"json_schema_version": 1}},
        {"table": {"family": "inet", "name": t.name}},
    ]
    for s in t.sets.values():
        elems = []
        for e in nft.addr_elements(s.version, s.elements):
            a, _, ln = e.partition("/")
            elems.append({"prefix": {"addr": a, "len": int(ln)}} if ln else a)
        items.append(
            {"set": {"name": s.name, "type": s.type, "flags": ["interval"], "elem": elems}}
        )
    items.append({"chain": {"name": "input", "type": "filter", "hook": "input", "prio": 0,
                            "policy": t.policy}})  # fmt: skip
    for r in t.rules:
        ex = []
        if r.iif:
            ex.append({"match": {"op": "==", "left": {"meta": {"key": "iifname"}}, "right": r.iif}})
        if r.ct:
            right = list(r.ct) if len(r.ct) > 1 else r.ct[0]
            ex.append({"match": {"op": "in", "left": {"ct": {"key": "state"}}, "right": right}})
        if r.l4proto:
            ex.append({"match": {"op": "==", "left": {"meta": {"key": "l4proto"}},
                                 "right": r.l4proto}})  # fmt: skip
        if r.proto:
            ps = [p if p[0] != p[1] else p[0] for p in r.ports]
            ps = [{"range": list(p)} if isinstance(p, tuple) else p for p in ps]
            right = ps[0] if len(ps) == 1 else {"set": ps}
            ex.append({"match": {"op": "==", "left": {"payload": {"protocol": r.proto,
                                                                  "field": "dport"}},
                                 "right": right}})  # fmt: skip
        if r.family:
            proto = "ip" if r.family == 4 else "ip6"
            if r.saddr_set:
                right = "@" + r.saddr_set
            else:
                el = nft.addr_elements(r.family, r.saddr)
                conv = [{"prefix": {"addr": e.split("/")[0], "len": int(e.split("/")[1])}}
                        if "/" in e else e for e in el]  # fmt: skip
                right = conv[0] if len(conv) == 1 else {"set": conv}
            ex.append({"match": {"op": "==", "left": {"payload": {"protocol": proto,
                                                                  "field": "saddr"}},
                                 "right": right}})  # fmt: skip
        ex.append({r.verdict: None})
        items.append({"rule": {"chain": "input", "comment": r.name, "expr": ex}})
    return {"nftables": items}


def test_parse_of_the_listing_equals_the_desired_table():
    want = nft.desired(cfg_of())
    live = nft.parse(_json_of(want), "palplat")
    assert live.key() == want.key()
    assert nft.diff(live, want) == {}


def test_parse_normalizes_split_prefixes_and_port_sets():
    listing = {"nftables": [
        {"set": {"name": "s_x_v4", "type": "ipv4_addr", "flags": ["interval"],
                 "elem": [{"prefix": {"addr": "172.16.0.0", "len": 22}},
                          {"prefix": {"addr": "172.16.4.0", "len": 24}}, "172.16.5.0"]}},
        {"chain": {"name": "input", "type": "filter", "hook": "input", "prio": 0,
                   "policy": "drop"}},
        {"rule": {"chain": "input", "comment": "p", "expr": [
            {"match": {"op": "==", "left": {"payload": {"protocol": "tcp", "field": "dport"}},
                       "right": {"set": [80, 81, {"range": [82, 90]}]}}}, {"accept": None}]}},
        {"rule": {"chain": "input", "comment": "c", "expr": [
            {"counter": {"packets": 0, "bytes": 0}}, {"accept": None}]}},
    ]}  # fmt: skip
    t = nft.parse(listing, "palplat")
    assert nft.addr_elements(4, t.sets["s_x_v4"].elements) == ["172.16.0.0/22", "172.16.4.0/24",
                                                               "172.16.5.0"]  # fmt: skip
    assert t.rules[0].ports == ((80, 90),)
    assert t.rules[1].raw is not None  # a counter palplat never writes: kept, so it differs


def test_l4proto_rendered_by_number_and_read_back_by_name_or_number():
    """A host without /etc/protocols (no netbase) cannot parse ``ipv6-icmp``: palplat
    writes the number; nft lists it by name (with netbase) or by number (without)."""
    from palplat.nft.ruleset import Rule, l4proto_name

    assert "meta l4proto 58 accept" in Rule("builtin:icmpv6", l4proto="ipv6-icmp").text()
    assert "meta l4proto 1 accept" in Rule("builtin:icmp", l4proto="icmp").text()
    assert l4proto_name(58) == l4proto_name("58") == l4proto_name("icmpv6") == "ipv6-icmp"
    assert l4proto_name("ipv6-icmp") == "ipv6-icmp" and l4proto_name(1) == "icmp"
