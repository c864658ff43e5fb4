"""State modules' test-mode branches through Salt's loader-module test helper: the same
call in test mode returns ``result: None`` with the changes the real run reports, and
changes nothing; a bad pillar fails before anything runs."""

import types

import pytest

from _states import palplat_config, palplat_kube, palplat_nftables
from palplat import kube, nft

PILLAR = {"palplat": {"k3s": {"mode": "external", "kubeconfig": "/nonexistent/kubeconfig"}}}
CHANGES = {"rules": {"ssh": {"old": None, "new": "tcp dport 22 accept"}}}


@pytest.fixture
def opts():
    return {"test": False}


@pytest.fixture
def configure_loader_modules(opts):
    dunders = {"__opts__": opts, "__pillar__": PILLAR, "__salt__": {}, "__context__": {}}
    return {palplat_config: dict(dunders), palplat_nftables: dict(dunders), palplat_kube: dunders}


def test_validated_fails_on_a_bad_pillar_in_both_modes(opts):
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(palplat_config, "__pillar__", {"palplat": {"k3s": {"rol": "server"}}})
        for test in (False, True):
            opts["test"] = test
            ret = palplat_config.validated()
            assert ret["result"] is False and "palplat:k3s:rol" in ret["comment"]


class FakePlan:
    def __init__(self, changes):
        self.changes = changes

    @property
    def changed(self):
        return bool(self.changes)

    def comment(self, test):
        return ("would" if test else "did") + f" change {len(self.changes)}"


@pytest.mark.parametrize("test", [True, False])
def test_firewall_managed_test_mode_same_changes(monkeypatch, opts, test):
    opts["test"] = test
    applied = []
    monkeypatch.setattr(nft, "plan", lambda cfg: FakePlan(CHANGES))
    monkeypatch.setattr(nft, "apply", lambda plan, progress=None: applied.append(plan))
    monkeypatch.setattr(
        palplat_nftables.loaderkit.Env,
        "config",
        lambda self: types.SimpleNamespace(firewall=types.SimpleNamespace(enabled=True)),
    )
    ret = palplat_nftables.managed()
    assert ret["changes"] == CHANGES
    if test:
        assert ret["result"] is None and ret["comment"].startswith("would") and not applied
    else:
        assert ret["result"] is True and len(applied) == 1


def test_firewall_managed_no_change_is_true_in_test_mode(monkeypatch, opts):
    opts["test"] = True
    monkeypatch.setattr(nft, "plan", lambda cfg: FakePlan({}))
    monkeypatch.setattr(
        palplat_nftables.loaderkit.Env,
        "config",
        lambda self: types.SimpleNamespace(firewall=types.SimpleNamespace(enabled=True)),
    )
    ret = palplat_nftables.managed()
    assert ret["result"] is True and ret["changes"] == {}


@pytest.mark.parametrize("test", [True, False])
def test_kube_present_passes_test_mode_as_dry_run(monkeypatch, opts, test):
    opts["test"] = test
    seen = {}
    cm = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a", "namespace": "n"}}

    def converge(k, items, owner, dry_run, prune, prune_kinds, progress):
        seen.update(dry_run=dry_run, owner=owner, items=items)
        return {
            "changes": {"ConfigMap/n/a": {"data": {"old": None, "new": 1}}},
            "actions": {"ConfigMap/n/a": "create"},
        }

    monkeypatch.setattr(kube, "converge", converge)
    monkeypatch.setattr(kube, "Kube", lambda path: object())
    ret = palplat_kube.present("my objects", manifests=[cm])
    assert seen["dry_run"] is test and seen["owner"] == "my-objects"
    assert set(ret["changes"]) == {"ConfigMap/n/a"}
    assert ret["result"] is (None if test else True)
    assert ("would create 1" if test else "created 1") in ret["comment"]


def test_kube_present_bad_input_fails_without_a_client(monkeypatch, opts):
    monkeypatch.setattr(kube, "Kube", lambda path: pytest.fail("no client for bad input"))
    ret = palplat_kube.present("x")
    assert ret["result"] is False and "give manifest" in ret["comment"]
