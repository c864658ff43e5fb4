"""The firewall plan on a host without nft yet: against an empty ruleset, no nft call;
the firewall stage installs nftables first (firewall.sls)."""

from palplat import nft, proc
from tests.unit.nft.support import cfg_of


def test_plan_without_nft_creates_the_whole_table_and_runs_nothing():
    calls = []

    def run(argv, **kw):
        if argv == ["sshd", "-T"]:  # the lock-out guard reads sshd's port (changes nothing)
            return proc.Result(argv, 1, "", "sshd: not installed yet")
        calls.append(argv)
        raise AssertionError(f"no program may run: {argv}")

    cfg = cfg_of(persist=False)
    plan = nft.plan(cfg, nft=nft.NotInstalled(None, run), run=run)
    assert plan.changed and plan.live is None
    assert "would" in plan.comment(test=True)
    assert calls == []


def test_installed_looks_on_path():
    assert nft.installed(lambda name: "/usr/sbin/nft") is True
    assert nft.installed(lambda name: None) is False
