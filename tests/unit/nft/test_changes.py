"""The rule-level diff, keyed by rule name, and its summary."""

from palplat import nft
from tests.unit.nft.support import cfg_of


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
