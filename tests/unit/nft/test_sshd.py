"""The lock-out guard protects the port sshd really listens on: when the host stage does
not manage sshd, ``sshd -T`` says which (a host on 2222 while the pillar keeps 22)."""

import pytest

from palplat import config, nft, proc
from palplat.errors import PillarError
from palplat.nft import sshd
from tests.unit.nft.support import BASE, cfg_of

SSHD_T = """port 2222
addressfamily any
listenaddress [::]:2222
listenaddress 0.0.0.0:2222
passwordauthentication yes
"""


def runner(stdout=SSHD_T, rc=0):
    calls = []

    def run(argv, **kw):
        calls.append(list(argv))
        return proc.Result(list(argv), rc, stdout, "" if rc == 0 else "no hostkeys available")

    run.calls = calls
    return run


def test_parse_sshd_t_ports_and_listen_addresses():
    assert sshd.parse_sshd_t(SSHD_T) == [2222]
    assert sshd.parse_sshd_t("port 22\nport 2200\nlistenaddress 10.0.0.1:2201\n") == [
        22,
        2200,
        2201,
    ]
    assert sshd.parse_sshd_t("listenaddress 10.0.0.1\nport 22\n") == [22]


def test_unmanaged_sshd_is_asked_managed_comes_from_the_pillar():
    cfg = cfg_of()  # no operator accounts: the host stage leaves sshd alone
    run = runner()
    got = sshd.live_ports(cfg, run)
    assert got.ports == (2222,) and "sshd -T" in got.source
    assert run.calls == [["sshd", "-T"]]
    p = {**BASE, "host": {"ssh": {"manage": True}, "users": {"pal": {"ssh_keys": [KEY]}}}}
    managed = config.load({"palplat": p})
    run = runner()
    assert sshd.live_ports(managed, run).ports == (22,) and run.calls == []
    failed = sshd.live_ports(cfg, runner("", rc=255))
    assert failed.ports == (22,) and "sshd -T failed" in failed.source


def test_the_guard_refuses_a_table_that_only_opens_the_pillars_port():
    cfg = cfg_of()
    ssh = sshd.live_ports(cfg, runner())
    problems = nft.lockout_problems(cfg.firewall, nft.desired(cfg), ssh)
    assert [p.path for p in problems] == ["palplat:firewall:management:ssh_port"]
    assert "sshd listens on 2222" in str(problems[0]) and "set " in str(problems[0])
    assert nft.management_ports(cfg.firewall, ssh.ports) == [2222, 4505, 4506]


def test_plan_guards_the_real_port(monkeypatch):
    cfg = cfg_of()

    class NoNft:
        def live(self, name):
            raise AssertionError("the guard runs before nft is asked")

    with pytest.raises(PillarError, match="sshd listens on 2222"):
        nft.plan(cfg, NoNft(), runner())
    fixed = cfg_of(management={"ssh_port": 2222, "allow_from": ["192.168.1.0/24"]})
    assert (
        nft.lockout_problems(fixed.firewall, nft.desired(fixed), sshd.live_ports(fixed, runner()))
        == []
    )


KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAII9tKpvm7L3if9tl6l4f16S3E0VMyCmL/yVTNj+p52wd pal@laptop"
