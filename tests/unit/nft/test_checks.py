"""Safe defaults: the k3s profile opens the cluster ports only to the cluster (@cluster:
firewall:cluster_nodes and k3s:server_url, else the Tailscale ranges; @pods for the API
and the kubelet), and a pillar that opens etcd or VXLAN to everyone is refused unless
forced."""

import copy

import pytest

from palplat import config, nft
from palplat.errors import PillarError
from tests.unit.nft.support import BASE, cfg_of


def texts(t, name):
    return [r.text() for r in t.groups()[name]]


def test_profile_ports_are_open_only_to_the_cluster_and_its_pods():
    t = nft.desired(cfg_of(cluster_nodes=["192.168.1.10/32", "192.168.1.11/32", "fd00::11/128"]))
    assert texts(t, "etcd") == [
        'tcp dport 2379-2380 ip saddr @s_cluster_v4 accept comment "etcd"',
        'tcp dport 2379-2380 ip6 saddr @s_cluster_v6 accept comment "etcd"',
    ]
    assert (
        texts(t, "flannel-vxlan")[0]
        == 'udp dport 8472 ip saddr @s_cluster_v4 accept comment "flannel-vxlan"'
    )
    assert 'tcp dport 6443 ip saddr @s_pods_v4 accept comment "k3s-api"' in texts(t, "k3s-api")
    assert 'tcp dport 10250 ip saddr @s_pods_v4 accept comment "kubelet"' in texts(t, "kubelet")
    assert nft.addr_elements(4, t.sets["s_cluster_v4"].elements) == ["192.168.1.10/31"]
    assert nft.addr_elements(4, t.sets["s_pods_v4"].elements) == ["10.42.0.0/16"]
    for proto, port in (("tcp", 2379), ("udp", 8472), ("tcp", 6443), ("tcp", 10250)):
        got = nft.reach(t, proto, port)["*"]
        assert not nft.covers(got[4], nft.FULL[4]) and not nft.covers(got[6], nft.FULL[6])


def test_the_cluster_set_without_nodes_is_the_tailnet_and_takes_the_servers_address():
    t = nft.desired(cfg_of())
    assert nft.addr_elements(4, t.sets["s_cluster_v4"].elements) == ["100.64.0.0/10"]
    assert nft.addr_elements(6, t.sets["s_cluster_v6"].elements) == ["fd7a:115c:a1e0::/48"]
    p = copy.deepcopy(BASE)
    p["k3s"] = {"role": "agent", "server_url": "https://192.168.1.10:6443", "token": "t0k3n-x"}
    agent = nft.desired(config.load({"palplat": p}))
    assert nft.addr_elements(4, agent.sets["s_cluster_v4"].elements) == ["192.168.1.10"]
    assert "etcd" not in agent.groups()
    p = copy.deepcopy(BASE)
    p["k3s"]["config"]["cluster-cidr"] = "10.60.0.0/16,fd60::/56"
    dual = nft.desired(config.load({"palplat": p}))
    assert nft.addr_elements(6, dual.sets["s_pods_v6"].elements) == ["fd60::/56"]


@pytest.mark.parametrize(
    "fw, path, words",
    [
        ({"allow": [{"name": "vx", "proto": "udp", "ports": [8472]}]},
         "palplat:firewall:allow:0", "flannel VXLAN (udp 8472) to everyone"),
        ({"allow": [{"name": "etcd", "proto": "tcp", "ports": ["2379-2380"],
                     "from": ["0.0.0.0/0", "::/0"]}]},
         "palplat:firewall:allow:0", "etcd (tcp 2379-2380) to everyone"),
        ({"allow": [{"name": "wide", "proto": "tcp", "ports": ["2000-3000"], "from": ["@all"]}],
          "sets": {"all": ["::/0"]}},
         "palplat:firewall:allow:0", "etcd"),
        ({"default_policy": "accept"}, "palplat:firewall:default_policy", "to everyone"),
        ({"allow": [], "sets": {"cluster": ["10.0.0.0/8"]}}, "palplat:firewall:sets:cluster",
         "palplat fills itself"),
        ({"allow": [{"name": "x", "proto": "tcp", "ports": [1], "from": ["@pod"]}]},
         "palplat:firewall:allow:0:from:0", "did you mean '@pods'"),
    ],
)  # fmt: skip
def test_etcd_and_vxlan_never_open_to_everyone_unless_forced(fw, path, words):
    p = copy.deepcopy(BASE)
    p["firewall"].update(fw)
    with pytest.raises(PillarError) as exc:
        config.load({"palplat": p})
    found = {pr.path: str(pr) for pr in exc.value.problems}
    assert path in found and words in found[path], str(exc.value)
    if "everyone" in words:
        p["firewall"]["force"] = True
        config.load({"palplat": p})


def test_a_rule_from_the_cluster_or_an_interface_is_fine():
    ok = cfg_of(
        allow=[
            {"name": "flannel-vxlan", "proto": "udp", "ports": [8472], "from": ["@cluster"]},
            {"name": "etcd", "proto": "tcp", "ports": ["2379-2380"], "iif": "wg0"},
        ]
    )
    assert [r.text() for r in nft.desired(ok).groups()["etcd"]] == [
        'iifname "wg0" tcp dport 2379-2380 accept comment "etcd"'
    ]
