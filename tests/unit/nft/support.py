"""Shared by the nft unit tests: a pillar with every kind of rule, and a builder."""

import copy

from palplat import config

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
