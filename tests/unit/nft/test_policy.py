"""Reachability of the management ports: the lock-out guard and what counts as narrowing
access (a commit-confirmed change)."""

from palplat import config, nft
from tests.unit.nft.support import cfg_of


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
    # policy accept on a k3s node opens etcd and VXLAN to everyone (refused, test_checks):
    # a node of an external cluster
    accept = config.load(
        {
            "palplat": {
                "firewall": {"management": {"allow_from": []}, "default_policy": "accept"},
                "k3s": {"mode": "external"},
            }
        }
    )
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
