"""palplat.nft without nft: rendering, the k3s profile, normalization of nft's JSON, the
rule-level diff, the lock-out guard, reachability, and schema errors for bad input."""

import copy

import pytest

from palplat import config, nft
from palplat.errors import PillarError

BASE = {
    "firewall": {
        "management": {"ssh_port": 22, "allow_from": ["192.168.1.0/24"]},
        "trusted_interfaces": ["cni0"],
        "sets": {"office": ["10.0.0.0/24", "10.0.1.0/24", "2001:db8::/48"]},
        "allow": [
            {"name": "web", "proto": "tcp", "ports": [80, 443, "30000-32767"]},
            {
                "name": "office-dns",
                "proto": "udp",
                "ports": [53],
                "from": ["@office", "10.9.9.9/32"],
            },
        ],
    },
    "k3s": {"config": {"flannel-backend": "vxlan"}},
}


def cfg_of(**fw):
    p = copy.deepcopy(BASE)
    p["firewall"].update(fw)
    return config.load({"palplat": p})


def names(table):
    return list(table.groups())


def test_desired_has_builtins_management_profile_and_user_rules():
    t = nft.desired(cfg_of())
    assert names(t) == [
        "builtin:established", "builtin:invalid", "builtin:loopback", "builtin:icmp",
        "builtin:icmpv6", "trusted:tailscale0", "trusted:cni0", "mgmt:ssh", "mgmt:salt",
        "k3s-api", "etcd", "kubelet", "flannel-vxlan", "web", "office-dns",
    ]  # fmt: skip
    assert t.sets["s_office_v4"].elements == ((0x0A000000, 0x0A0001FF),)  # merged /23
    dns = [r.text() for r in t.groups()["office-dns"]]
    assert dns == [
        'udp dport 53 ip saddr 10.9.9.9 accept comment "office-dns"',
        'udp dport 53 ip saddr @s_office_v4 accept comment "office-dns"',
        'udp dport 53 ip6 saddr @s_office_v6 accept comment "office-dns"',
    ]
    script = nft.render(t)
    assert script.startswith("table inet palplat\ndelete table inet palplat\ntable inet palplat {")
    assert 'tcp dport { 80, 443, 30000-32767 } accept comment "web"' in script
    assert "elements = { 10.0.0.0/23 }" in script


@pytest.mark.parametrize(
    "k3s, has, lacks",
    [
        ({"role": "agent", "server_url": "https://a:6443", "token": "t0k3n-x"},
         {"kubelet", "flannel-vxlan"}, {"k3s-api", "etcd"}),
        ({"config": {"flannel-backend": "wireguard-native"}}, {"flannel-wireguard"},
         {"flannel-vxlan"}),
        ({"config": {"datastore-endpoint": "postgres://x"}}, {"k3s-api"}, {"etcd"}),
        ({"cluster_init": False}, {"k3s-api"}, {"etcd"}),
        ({"cluster_init": False, "server_url": "https://a:6443", "token": "t0k3n-x"},
         {"etcd"}, set()),
        ({"mode": "external"}, set(), {"kubelet", "k3s-api", "trusted:tailscale0"}),
    ],
)  # fmt: skip
def test_profile_follows_the_k3s_role(k3s, has, lacks):
    p = copy.deepcopy(BASE)
    p["k3s"] = k3s
    got = set(names(nft.desired(config.load({"palplat": p}))))
    assert has <= got and not (lacks & got)


def test_profile_rule_is_replaced_by_a_user_rule_and_can_be_off():
    c = cfg_of(allow=[{"name": "k3s-api", "proto": "tcp", "ports": [6443], "from": ["10.0.0.0/8"]}])
    api = [r.text() for r in nft.desired(c).groups()["k3s-api"]]
    assert api == ['tcp dport 6443 ip saddr 10.0.0.0/8 accept comment "k3s-api"']
    assert "kubelet" not in names(nft.desired(cfg_of(profile=False)))


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


def test_diff_is_by_rule_name():
    old = nft.desired(cfg_of())
    new_cfg = cfg_of(
        allow=[
            {"name": "web", "proto": "tcp", "ports": [443]},
            {"name": "grafana", "proto": "tcp", "ports": [3000], "from": ["10.0.0.0/8"]},
        ],
        sets={"office": ["10.0.0.0/24"]},
    )
    ch = nft.diff(old, nft.desired(new_cfg))
    assert ch["rules"]["grafana"]["old"] is None
    assert ch["rules"]["office-dns"]["new"] is None
    assert ch["rules"]["web"]["old"] == ['tcp dport { 80, 443, 30000-32767 } accept comment "web"']
    assert ch["rules"]["web"]["new"] == ['tcp dport 443 accept comment "web"']
    assert "mgmt:ssh" not in ch["rules"]
    assert ch["sets"]["s_office_v4"]["removed"] == ["10.0.0.0/23"]
    assert ch["sets"]["s_office_v6"]["new"] is None
    assert "add rules grafana" in nft.summary(ch) and "remove rules office-dns" in nft.summary(ch)
    assert nft.diff(None, old)["table"] == {"old": None, "new": "inet palplat"}


def test_lockout_guard():
    fw_cfg = cfg_of(management={"allow_from": []}, allow=[], sets={})
    problems = nft.lockout_problems(fw_cfg.firewall, nft.desired(fw_cfg))
    assert problems and "blocks SSH (tcp 22) from everywhere" in str(problems[0])
    assert "palplat:firewall:management:allow_from" in str(problems[0])
    forced = cfg_of(management={"allow_from": []}, allow=[], sets={}, force=True)
    assert nft.lockout_problems(forced.firewall, nft.desired(forced)) == []
    opened = cfg_of(
        management={"allow_from": [], "salt_ports": []},
        allow=[{"name": "ssh", "proto": "tcp", "ports": [22]}],
        sets={},
    )
    assert nft.lockout_problems(opened.firewall, nft.desired(opened)) == []
    accept = cfg_of(management={"allow_from": []}, default_policy="accept", allow=[], sets={})
    assert nft.lockout_problems(accept.firewall, nft.desired(accept)) == []
    ok = cfg_of()
    assert nft.lockout_problems(ok.firewall, nft.desired(ok)) == []


def test_narrows_only_when_management_access_shrinks():
    a = nft.desired(cfg_of())
    ports = [22, 4505, 4506]
    assert nft.narrows(None, a, ports) == ports  # from an open host to a policy drop
    wider = nft.desired(cfg_of(management={"allow_from": ["192.168.0.0/16"]}))
    assert nft.narrows(a, wider, ports) == []
    narrower = nft.desired(cfg_of(management={"allow_from": ["192.168.1.0/25"]}))
    assert nft.narrows(a, narrower, ports) == ports
    salt_only = nft.desired(
        cfg_of(management={"allow_from": ["192.168.1.0/24"], "salt_ports": [4506]})
    )
    assert nft.narrows(a, salt_only, ports) == [4505]
    web = nft.desired(cfg_of(allow=[{"name": "x", "proto": "tcp", "ports": [8080]}], sets={}))
    assert nft.narrows(a, web, ports) == []
    no_trust = nft.desired(cfg_of(trusted_interfaces=[]))
    assert nft.narrows(a, no_trust, ports) == ports  # cni0 no longer reaches port 22


def test_intervals():
    assert nft.merge([(5, 9), (1, 3), (4, 4), (20, 30)]) == ((1, 9), (20, 30))
    assert nft.covers(((1, 9),), ((2, 3), (9, 9)))
    assert not nft.covers(((1, 9),), ((9, 10),))
    assert nft.port_intervals([443, "80-90", 91]) == ((80, 91), (443, 443))


@pytest.mark.parametrize(
    "mutate, path, words",
    [
        (lambda f: f["management"].update(allow_from=["10.0.0.1/8"]),
         "palplat:firewall:management:allow_from:0", "did you mean 10.0.0.0/8"),
        (lambda f: f["allow"][0].update(**{"from": ["300.1.1.0/24"]}),
         "palplat:firewall:allow:0:from:0", "CIDR"),
        (lambda f: f["allow"][0].update(ports=[0]), "palplat:firewall:allow:0:ports:0",
         "between 1 and 65535"),
        (lambda f: f["allow"][0].update(ports=[70000]), "palplat:firewall:allow:0:ports:0",
         "between 1 and 65535"),
        (lambda f: f["allow"][0].update(ports=["90-80"]), "palplat:firewall:allow:0:ports:0",
         "LOW-HIGH"),
        (lambda f: f["allow"][0].update(proto="sctp"), "palplat:firewall:allow:0:proto",
         "'tcp' or 'udp'"),
        (lambda f: f["allow"].append(dict(f["allow"][0])), "palplat:firewall:allow:2:name",
         "duplicate rule name"),
        (lambda f: f["allow"][1].update(**{"from": ["@ofice"]}),
         "palplat:firewall:allow:1:from:0", "did you mean '@office'"),
        (lambda f: f.update(confirm_seconds=5), "palplat:firewall:confirm_seconds",
         "greater than or equal to 10"),
        (lambda f: f["management"].update(ssh_port=70000), "palplat:firewall:management:ssh_port",
         "less than or equal to 65535"),
    ],
)  # fmt: skip
def test_bad_input_is_a_schema_error_naming_the_path(mutate, path, words):
    p = copy.deepcopy(BASE)
    mutate(p["firewall"])
    with pytest.raises(PillarError) as exc:
        config.load({"palplat": p})
    found = {pr.path: str(pr) for pr in exc.value.problems}
    assert path in found, str(exc.value)
    assert words in found[path], str(exc.value)
