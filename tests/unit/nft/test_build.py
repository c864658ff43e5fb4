"""The desired table: builtins, management, the k3s profile and user rules; and schema
errors for bad input, which stop before a table is built."""

import copy

import pytest

from palplat import config, nft
from palplat.errors import PillarError
from tests.unit.nft.support import BASE, cfg_of, names


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
