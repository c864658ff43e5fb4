"""palplat_host states through Salt's loader-module test helper: test mode takes the same
path and reports the same changes with result None, and changes nothing; a bad pillar or
host fails before anything runs."""

import pytest

from _modules import palplat_host as host_mod
from _states import palplat_host
from palplat.host import kernel, verify

PILLAR = {"palplat": {"host": {"timezone": "Etc/UTC"}}}
SWAP = {"active": {"old": ["/swapfile"], "new": []}}


@pytest.fixture
def opts():
    return {"test": False}


@pytest.fixture
def configure_loader_modules(opts):
    d = {
        "__opts__": opts,
        "__pillar__": PILLAR,
        "__salt__": {},
        "__context__": {},
        "__grains__": {"os_family": "Debian"},
    }
    return {palplat_host: dict(d), host_mod: dict(d)}


@pytest.mark.parametrize("test", [True, False])
def test_swap_off_same_changes_in_test_mode(monkeypatch, opts, test):
    opts["test"] = test
    done = []
    monkeypatch.setattr(kernel, "swap_plan", lambda root="/": dict(SWAP))
    monkeypatch.setattr(kernel, "swap_off", lambda root="/": done.append(1) or SWAP)
    ret = palplat_host.swap_off()
    assert ret["changes"] == SWAP
    assert (ret["result"], done) == ((None, []) if test else (True, [1]))


@pytest.mark.parametrize("test", [True, False])
def test_modules_loaded_same_changes_in_test_mode(monkeypatch, opts, test):
    opts["test"] = test
    loaded = []
    monkeypatch.setattr(kernel, "missing_modules", lambda names, root="/": ["br_netfilter"])
    monkeypatch.setattr(kernel, "load_modules", lambda names, root="/": loaded.append(names))
    ret = palplat_host.modules_loaded()
    assert ret["changes"] == {"br_netfilter": {"old": "not loaded", "new": "loaded"}}
    assert (ret["result"], bool(loaded)) == ((None, False) if test else (True, True))


@pytest.mark.parametrize("test, result", [(True, None), (False, False)])
def test_verified_reports_what_does_not_hold(monkeypatch, opts, test, result):
    opts["test"] = test
    monkeypatch.setattr(verify, "verify", lambda s: {"sshd": "port 2222"})
    ret = palplat_host.verified()
    assert ret["result"] is result and "sshd: port 2222" in ret["comment"] and ret["changes"] == {}
    monkeypatch.setattr(verify, "verify", lambda s: {})
    assert palplat_host.verified()["result"] is True


@pytest.mark.parametrize("test", [True, False])
def test_checked_fails_on_a_host_problem_in_both_modes(monkeypatch, opts, test):
    from palplat.errors import PillarProblem
    from palplat.host import facts

    opts["test"] = test
    monkeypatch.setattr(
        facts, "problems", lambda cfg, **kw: [PillarProblem("palplat:host:sysctl:x.y", "no such")]
    )
    ret = palplat_host.checked()
    assert ret["result"] is False and "palplat:host:sysctl:x.y" in ret["comment"]


def test_no_palplat_pillar_fails_every_state(monkeypatch):
    monkeypatch.setattr(palplat_host, "__pillar__", {"other": 1})
    for fn in (palplat_host.checked, palplat_host.swap_off, palplat_host.verified):
        ret = fn()
        assert ret["result"] is False and "palplat: is missing" in ret["comment"]


def test_settings_for_the_sls(monkeypatch):
    s = host_mod.settings()
    assert s["valid"] and s["timezone"] == "Etc/UTC" and s["os_family"] == "Debian"
    monkeypatch.setattr(host_mod, "__pillar__", {"palplat": {"host": {"packages": ["a b"]}}})
    bad = host_mod.settings()
    assert bad["valid"] is False and bad["manage"] is False
    assert "palplat:host:packages:0" in bad["problems"][0]


@pytest.mark.parametrize("test", [True, False])
def test_states_leave_an_unmanaged_host_alone(monkeypatch, opts, test):
    """host:manage false (the sandbox): a state called on its own (state.single) changes
    nothing either, in both modes; Tailscale's states need tailscale:enabled."""
    from palplat.host import tailscale

    opts["test"] = test

    def boom(*a, **kw):
        raise AssertionError("must not be called")

    for mod, fn in ((kernel, "missing_modules"), (kernel, "swap_plan"), (verify, "verify")):
        monkeypatch.setattr(mod, fn, boom)
    monkeypatch.setattr(palplat_host.facts, "problems", boom)
    for fn in ("install_plan", "join_plan", "install", "join"):
        monkeypatch.setattr(tailscale, fn, boom)
    monkeypatch.setattr(palplat_host, "__pillar__", {"palplat": {"host": {"manage": False}}})
    states = ("checked", "modules_loaded", "swap_off", "tailscale_installed", "tailscale_joined")
    for state in states:
        ret = getattr(palplat_host, state)()
        assert ret["result"] is True and ret["changes"] == {}, (state, ret)
        assert "manage is false" in ret["comment"]
    assert "manage is false" in palplat_host.verified()["comment"]
    monkeypatch.setattr(palplat_host, "__pillar__", PILLAR)  # tailscale not enabled
    for state in ("tailscale_installed", "tailscale_joined"):
        ret = getattr(palplat_host, state)()
        assert ret["result"] is True and "tailscale:enabled is false" in ret["comment"]


@pytest.mark.parametrize("test", [True, False])
def test_keys_planned_on_a_host_without_openssh(opts, test):
    """host.sls renders it in test mode when Salt's ssh module is not loaded (no OpenSSH
    yet): the plan shows the keys; a real run never gets there, and would say why."""
    opts["test"] = test
    key = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAII9tKpvm7L3if9tl6l4f16S3E0VMyCmL pal@laptop"
    ret = palplat_host.keys_planned("palplat-host-keys-pal", "pal", [key])
    if test:
        assert ret["result"] is None and "would add 1 key(s) to ~pal/" in ret["comment"]
        assert ret["changes"]["pal:authorized_keys"]["old"] is None
    else:
        assert ret["result"] is False and "install OpenSSH" in ret["comment"]
