"""Where palplat keeps its files: under ``firewall.root``."""

import pytest

from palplat import config, nft


@pytest.mark.parametrize("root", ["/", "/tmp/x"])
def test_paths_are_rooted(root):
    fw = config.load({"palplat": {"firewall": {"root": root}}}).firewall
    p = nft.Paths.of(fw)
    prefix = "" if root == "/" else root
    assert p.persist_file == f"{prefix}/etc/nftables.d/palplat-palplat.nft"
    assert p.main_config == f"{prefix}/etc/nftables.conf"
    assert p.record.startswith(f"{prefix}/var/lib/palplat/nftables/pending-host-inet-palplat")
